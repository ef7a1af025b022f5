#!/usr/bin/env ruby
# frozen_string_literal: true

# Conformance driver for jobstream_producer.rb (conformance/README.md,
# "Producer cases").
#
# The runner starts it with REDIS_URL, JOBSTREAM_QUEUE, JOBSTREAM_CASES (the
# path of conformance/v1/producer.json) and JOBSTREAM_SCRIPTS (the scripts/
# folder). It enqueues every case's jobs in file order (a case with several
# jobs in one enqueue_many call) and prints one JSON line per case:
#
#   {"case":"with_id","ids":["conf-fixed-1"]}
#   {"case":"unique_again","ids":[],"duplicate":true,"holder":"conf-unique-1"}
#
# A case the library refuses prints {"case": ..., "error": "..."}; the driver
# then exits 1 after the last case.
#
#   jobstream-conformance producer --url redis://127.0.0.1:6379 -- ruby examples/ruby/conformance_driver.rb

require "json"
require "redis"
require_relative "jobstream_producer"

# A case's options as keyword options of the library. The protocol's
# deadline_in_ms counts from the server's time at enqueue; the library's from
# when the job is due (as the Rust producer's start_within), so a delayed
# job's is shifted by its delay.
def options_of(job)
  options = (job["options"] || {}).transform_keys(&:to_sym)
  options[:deadline_in_ms] -= options[:delay_ms] if options[:deadline_in_ms] && options[:delay_ms]
  options
end

redis = Redis.new(url: ENV.fetch("REDIS_URL", "redis://127.0.0.1:6379"))
producer = Jobstream::Producer.new(redis, scripts_dir: ENV["JOBSTREAM_SCRIPTS"])
queue = ENV.fetch("JOBSTREAM_QUEUE")
cases = JSON.parse(File.read(ENV.fetch("JOBSTREAM_CASES"), encoding: "UTF-8"))["cases"]
$stdout.sync = true
failed = false
cases.each do |c|
  out = begin
    jobs = c["enqueue"]
    results = if jobs.size == 1
                j = jobs.first
                [producer.enqueue(queue, j["type"], j["payload"], **options_of(j))]
              else
                producer.enqueue_many(queue, jobs.map { |j| { type: j["type"], payload: j["payload"], options: options_of(j) } })
              end
    line = { case: c["name"], ids: results.reject(&:duplicate).map(&:id) }
    dup = results.find(&:duplicate)
    line.merge!(duplicate: true, holder: dup.holder) if dup
    line
  rescue ArgumentError, Redis::BaseError => e
    failed = true
    { case: c["name"], error: e.message }
  end
  puts JSON.generate(out)
end
exit(failed ? 1 : 0)
