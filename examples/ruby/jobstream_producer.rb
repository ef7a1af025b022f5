# frozen_string_literal: true

# A jobstream producer for Ruby: enqueue jobs with the `redis` and `msgpack`
# gems only (Debian: ruby-redis, ruby-msgpack; tested with redis-rb 4.8).
#
# It writes wire format v1 (docs/wire-format.md) like the Rust producer, so
# any jobstream worker runs the jobs (one difference: enqueued_at on every
# job, the Rust producer writes it only on delayed ones):
#
#   require "redis"
#   require_relative "jobstream_producer"
#
#   producer = Jobstream::Producer.new(Redis.new(url: "redis://127.0.0.1:6379"))
#   producer.enqueue("emails", "send_email", { "to" => "a@example.com" })             # now
#   producer.enqueue("emails", "send_email", { "to" => "b@example.com" }, delay_ms: 30_000)
#   r = producer.enqueue("emails", "sync", { "account" => 42 }, unique_key: "account-42")
#   puts "already queued as #{r.holder}" if r.duplicate
#   producer.enqueue_many("emails", [                                              # one round trip
#     { type: "send_email", payload: { "to" => "c@example.com" } },
#     { type: "send_email", payload: { "to" => "d@example.com" }, delay_ms: 1000 },
#   ])
#
# What it writes, per job:
# - to run now: XADD PREFIX:{Q}:ready * type T payload P id ID enqueued_at MS ...
# - delayed: ZADD PREFIX:{Q}:scheduled DUE MEMBER, MEMBER a MessagePack map of
#   the same fields (str keys, str values, payload as bin);
# - with a uniqueness key (or a record): EVALSHA of scripts/enqueue-6.lua,
#   which reserves the key and adds the job in one atomic step;
# - and SADD PREFIX:queues Q (its own command: no hash tag).
#
# Ids are UUIDv7 (RFC 9562), made before anything is sent. Times
# (enqueued_at, due times, deadlines) come from the Redis server's clock
# (TIME, read at most once a minute and extended with the monotonic clock).
# Payloads are MessagePack.pack(payload): Hashes keep their keys, UTF-8
# Strings are str, binary (ASCII-8BIT) Strings are bin. docs/wire-format.md
# sets no payload size limit, so none is checked unless max_payload_bytes is
# given.

require "digest/sha1"
require "msgpack"
require "redis"
require "securerandom"

module Jobstream
  # Queue names: 1 to 128 of A-Z a-z 0-9 _ - . : (docs/wire-format.md).
  QUEUE_NAME = /\A[A-Za-z0-9_.:-]{1,128}\z/.freeze

  # Field names of wire format v1: a job's extra fields may not use them.
  RESERVED_FIELDS = %w[
    type payload id attempt enqueued_at max_attempts timeout_ms idempotency_key
    traceparent tracestate last_error_class last_error deadline_ms on_deadline
    unique_key unique_for unique_ttl_ms record_ms chain prev_result batch
    batch_done group rate_key prev_entry reason error_class error deliveries
    failed_at worker queue raw wire_version
  ].freeze

  MAX_FIELDS = 1000            # fields per job
  MAX_ID_LEN = 256             # bytes, as the Rust producer's NewJob::with_id
  MAX_UNIQUE_KEY_LEN = 256     # bytes
  MAX_ATTEMPTS = 1000          # workers cap max_attempts here
  MAX_TIMEOUT_MS = 86_400_000  # 24 h, workers cap timeout_ms here
  MAX_LIFETIME_MS = 10**15 - 1 # enqueue-6 refuses longer lifetimes
  CLOCK_RESYNC_MS = 60_000     # how long a reading of the server clock is trusted
  UNIQUE_MODES = %w[queued done ttl].freeze
  DEADLINE_ACTIONS = %w[dead discard].freeze
  OPTIONS = %i[id delay_ms run_at_ms unique_key unique_for unique_ttl_ms deadline_ms
               deadline_in_ms on_deadline max_attempts timeout_ms idempotency_key
               record_ms fields].freeze

  # What happened to one job. +id+ is its id; +duplicate+ is true (and
  # +holder+ the id of the job holding the key) when its uniqueness key was
  # held and nothing was enqueued; +entry_id+ the ready entry id of a job
  # added with a plain XADD (nil otherwise); +due_ms+ the due time of a
  # delayed job (server clock, unix ms).
  EnqueueResult = Struct.new(:id, :duplicate, :holder, :entry_id, :due_ms, keyword_init: true)

  # A checked job, ready to be sent.
  Prepared = Struct.new(:id, :job_type, :fields, :due_ms, :unique, :record_ms, keyword_init: true)

  # Raises ArgumentError unless +queue+ is a valid queue name.
  def self.check_queue_name(queue)
    return if queue.is_a?(String) && QUEUE_NAME.match?(queue)

    raise ArgumentError, "invalid queue name #{queue.inspect}: 1 to 128 characters of " \
                         "A-Z a-z 0-9 _ - . : (no braces, spaces or non-ASCII)"
  end

  # A UUIDv7 string (RFC 9562): 48 bits of unix ms, version 7, 74 random
  # bits, variant 10. Time-ordered across milliseconds.
  def self.uuid7(unix_ms = (Time.now.to_r * 1000).to_i)
    bytes = SecureRandom.random_bytes(16).bytes
    6.times { |i| bytes[i] = (unix_ms >> (8 * (5 - i))) & 0xff }
    bytes[6] = 0x70 | (bytes[6] & 0x0f)
    bytes[8] = 0x80 | (bytes[8] & 0x3f)
    h = bytes.pack("C*").unpack1("H*")
    "#{h[0, 8]}-#{h[8, 4]}-#{h[12, 4]}-#{h[16, 4]}-#{h[20, 12]}"
  end

  # Enqueues jobstream jobs through a redis-rb client.
  #
  # +prefix+ is the deployment's key prefix; +scripts_dir+ the folder holding
  # enqueue-6.lua (default: the repository's scripts/, relative to this
  # file; read on the first unique job); +max_payload_bytes+, if given,
  # refuses larger encoded payloads before anything is sent.
  class Producer
    attr_reader :redis, :prefix, :scripts_dir

    def initialize(redis, prefix: "jobstream", scripts_dir: nil, max_payload_bytes: nil)
      raise ArgumentError, "prefix must not be empty" if prefix.to_s.empty?

      @redis = redis
      @prefix = prefix
      @scripts_dir = scripts_dir || File.expand_path("../../scripts", __dir__)
      @max_payload_bytes = max_payload_bytes
      @script = nil # [sha1, source] of enqueue-6
      @script_loaded = false # loaded by this producer (NOSCRIPT still possible after a restart)
      @clock = nil  # [server ms, monotonic ms] of the last TIME
    end

    # The key PREFIX:{queue}:name; {queue} is the Redis Cluster hash tag.
    def key(queue, name)
      "#{@prefix}:{#{queue}}:#{name}"
    end

    # The Redis server's clock, unix ms: read with TIME at most once a
    # minute, extended with the monotonic clock in between.
    def server_now_ms
      mono = monotonic_ms
      if @clock.nil? || mono - @clock[1] >= CLOCK_RESYNC_MS
        start = monotonic_ms
        sec, usec = @redis.time
        @clock = [Integer(sec) * 1000 + Integer(usec) / 1000, (start + monotonic_ms) / 2]
        mono = monotonic_ms
      end
      @clock[0] + (mono - @clock[1])
    end

    # Enqueues one job of type +job_type+ on +queue+; returns its
    # EnqueueResult. Raises ArgumentError for a bad argument (nothing is
    # sent) and Redis errors as they are.
    #
    # - +id+: the job's id (1-256 bytes, unique within the queue); default a UUIDv7.
    # - +delay_ms+ (from now) or +run_at_ms+ (unix ms): run later, by the
    #   server's clock; a due time not in the future runs now.
    # - +unique_key+ (1-256 bytes): enqueue nothing while another job of the
    #   queue holds it. +unique_for+: "done" (default: released when the job
    #   is final), "queued" (when a worker starts it), "ttl" (after
    #   +unique_ttl_ms+, required then; an optional safety limit otherwise).
    # - +deadline_ms+ (unix ms) or +deadline_in_ms+ (from when the job is due,
    #   by the server's clock; may be negative): not started by then, it is
    #   not run. +on_deadline+: "dead" (reason expired, the worker's default)
    #   or "discard" (dropped, counted in expired).
    # - +max_attempts+ (1-1000), +timeout_ms+ (1-86400000): per-job overrides.
    # - +idempotency_key+: your business key, handed to the handler.
    # - +record_ms+: keep a job record this long after the job is final.
    # - +fields+: extra fields (name => String or Integer), carried unchanged
    #   through retries and into dead.
    def enqueue(queue, job_type, payload = nil, **options)
      enqueue_many(queue, [options.merge(type: job_type, payload: payload)]).first
    end

    # Enqueues many jobs on +queue+ in one pipeline (one round trip, plus a
    # TIME at most once a minute). Each job is a Hash with :type, :payload
    # and any option of #enqueue (or those options under :options); String
    # keys work too. Every job is checked before anything is sent. Returns
    # one EnqueueResult per job, in order.
    #
    # Not a transaction: if Redis refuses a command, the others still ran,
    # and the first error is raised after the whole pipeline ran. If the
    # server does not have enqueue-6 cached (NOSCRIPT: a restarted server),
    # the script is loaded and the unique jobs are sent again: enqueue-6
    # adds nothing twice for one id (its key or record already holds it),
    # but the entry ids of that call's plain jobs are then unknown (nil).
    def enqueue_many(queue, jobs)
      Jobstream.check_queue_name(queue)
      specs = jobs.map { |job| spec_of(job) }
      return [] if specs.empty?

      now = server_now_ms
      prepared = specs.map { |spec| prepare(spec, now) }
      scripted = prepared.each_index.select { |i| scripted?(prepared[i]) }
      load_script if !scripted.empty? && !@script_loaded
      replies = begin
        @redis.pipelined do |pipe|
          pipe.call(:sadd, "#{@prefix}:queues", queue)
          prepared.each { |job| send_job(pipe, queue, job, now) }
        end.drop(1)
      rescue Redis::CommandError => e
        raise unless e.message.start_with?("NOSCRIPT")

        load_script
        again = @redis.pipelined { |pipe| scripted.each { |i| send_job(pipe, queue, prepared[i], now) } }
        Array.new(prepared.size).tap { |all| scripted.each_with_index { |i, k| all[i] = again[k] } }
      end
      prepared.zip(replies).map { |job, reply| result_of(job, reply) }
    end

    private

    def spec_of(job)
      raise ArgumentError, "a job must be a Hash" unless job.is_a?(Hash)

      spec = job.transform_keys(&:to_sym)
      spec = spec.merge((spec.delete(:options) || {}).transform_keys(&:to_sym))
      spec[:type] = spec.delete(:job_type) if spec.key?(:job_type)
      unknown = spec.keys - OPTIONS - %i[type payload]
      raise ArgumentError, "unknown job option(s): #{unknown.join(', ')}" unless unknown.empty?

      spec
    end

    # Checks one job and builds its fields, in the Rust producer's order.
    def prepare(s, now)
      job_type = s[:type]
      raise ArgumentError, "job type must be a non-empty String" unless job_type.is_a?(String) && !job_type.empty?

      payload = MessagePack.pack(s[:payload]).b
      if @max_payload_bytes && payload.bytesize > @max_payload_bytes
        raise ArgumentError, "payload is #{payload.bytesize} bytes, over max_payload_bytes (#{@max_payload_bytes})"
      end

      id = s[:id]
      if id.nil?
        id = Jobstream.uuid7
      elsif !id.is_a?(String) || !id.bytesize.between?(1, MAX_ID_LEN)
        raise ArgumentError, "id must be a String of 1 to #{MAX_ID_LEN} bytes"
      end

      raise ArgumentError, "give delay_ms or run_at_ms, not both" if s[:delay_ms] && s[:run_at_ms]

      due = now
      due = now + int(:delay_ms, s[:delay_ms], 0, MAX_LIFETIME_MS) if s[:delay_ms]
      due = [now, int(:run_at_ms, s[:run_at_ms], 0, MAX_LIFETIME_MS)].max if s[:run_at_ms]

      fields = [["type", job_type], ["payload", payload], ["id", id], ["enqueued_at", now.to_s]]
      fields << ["max_attempts", int(:max_attempts, s[:max_attempts], 1, MAX_ATTEMPTS).to_s] if s[:max_attempts]
      fields << ["timeout_ms", int(:timeout_ms, s[:timeout_ms], 1, MAX_TIMEOUT_MS).to_s] if s[:timeout_ms]
      unless s[:idempotency_key].nil?
        key = s[:idempotency_key]
        raise ArgumentError, "idempotency_key must be a non-empty String" unless key.is_a?(String) && !key.empty?

        fields << ["idempotency_key", key]
      end

      unique = nil
      if s[:unique_key].nil?
        raise ArgumentError, "unique_for and unique_ttl_ms need a unique_key" if s[:unique_for] || s[:unique_ttl_ms]
      else
        key = s[:unique_key]
        unless key.is_a?(String) && key.bytesize.between?(1, MAX_UNIQUE_KEY_LEN)
          raise ArgumentError, "unique_key must be a String of 1 to #{MAX_UNIQUE_KEY_LEN} bytes"
        end

        mode = (s[:unique_for] || "done").to_s
        raise ArgumentError, "unique_for must be one of #{UNIQUE_MODES.join(', ')}" unless UNIQUE_MODES.include?(mode)
        raise ArgumentError, "unique_for \"ttl\" needs unique_ttl_ms" if mode == "ttl" && s[:unique_ttl_ms].nil?

        ttl = s[:unique_ttl_ms].nil? ? 0 : int(:unique_ttl_ms, s[:unique_ttl_ms], 1, MAX_LIFETIME_MS)
        fields << ["unique_key", key] << ["unique_for", mode]
        fields << ["unique_ttl_ms", ttl.to_s] if ttl.positive?
        unique = [key, mode, ttl]
      end
      record_ms = 0
      if s[:record_ms]
        record_ms = int(:record_ms, s[:record_ms], 1, MAX_LIFETIME_MS)
        fields << ["record_ms", record_ms.to_s]
      end

      raise ArgumentError, "give deadline_ms or deadline_in_ms, not both" if s[:deadline_ms] && s[:deadline_in_ms]

      deadline = nil
      deadline = due + int(:deadline_in_ms, s[:deadline_in_ms], -MAX_LIFETIME_MS, MAX_LIFETIME_MS) if s[:deadline_in_ms]
      deadline = int(:deadline_ms, s[:deadline_ms], 0, MAX_LIFETIME_MS) if s[:deadline_ms]
      on_deadline = s[:on_deadline]&.to_s
      if on_deadline
        raise ArgumentError, "on_deadline must be \"dead\" or \"discard\"" unless DEADLINE_ACTIONS.include?(on_deadline)
        raise ArgumentError, "on_deadline needs deadline_ms or deadline_in_ms" if deadline.nil?
      end
      if deadline
        fields << ["deadline_ms", [deadline, 0].max.to_s]
        fields << ["on_deadline", on_deadline] if on_deadline
      end

      (s[:fields] || {}).each do |name, value|
        name = name.to_s
        raise ArgumentError, "field name #{name.inspect} is empty or reserved by the wire format" if name.empty? || RESERVED_FIELDS.include?(name)
        raise ArgumentError, "field #{name.inspect} must be a String or an Integer" unless value.is_a?(String) || value.is_a?(Integer)

        fields << [name, value.is_a?(Integer) ? value.to_s : value]
      end
      raise ArgumentError, "a job has at most #{MAX_FIELDS} fields (#{fields.size} here)" if fields.size > MAX_FIELDS

      Prepared.new(id: id, job_type: job_type, fields: fields, due_ms: due > now ? due : nil,
                   unique: unique, record_ms: record_ms)
    end

    def scripted?(job)
      !job.unique.nil? || job.record_ms.positive?
    end

    # Adds the command that enqueues +job+ to the pipeline.
    def send_job(pipe, queue, job, now)
      unless scripted?(job)
        if job.due_ms.nil?
          pipe.call(:xadd, key(queue, "ready"), "*", *job.fields.flatten)
        else
          pipe.call(:zadd, key(queue, "scheduled"), job.due_ms, member(job.fields))
        end
        return
      end
      ukey, mode, ttl = job.unique || [nil, "", 0]
      keys = [key(queue, "ready"), key(queue, "scheduled"), key(queue, "stats"),
              # Any key of the queue when there is no uniqueness key.
              ukey.nil? ? key(queue, "ready") : key(queue, "unique:#{ukey}"),
              key(queue, "job:#{job.id}"), key(queue, "done:#{job.id}")]
      args = [job.id, mode, ttl, job.record_ms, now, job.due_ms || 0, job.job_type]
      args += job.due_ms.nil? ? job.fields.flatten : [member(job.fields)]
      pipe.call(:evalsha, script[0], keys.size, *keys, *args)
    end

    # [sha1, source] of enqueue-6.lua, read once.
    def script
      @script ||= begin
        source = File.binread(File.join(@scripts_dir, "enqueue-6.lua"))
        [Digest::SHA1.hexdigest(source), source]
      end
    end

    def load_script
      @redis.call(:script, "load", script[1])
      @script_loaded = true
    end

    def result_of(job, reply)
      if scripted?(job)
        code, holder = reply
        return EnqueueResult.new(id: job.id, duplicate: true, holder: holder.to_s) if Integer(code).zero?

        return EnqueueResult.new(id: job.id, duplicate: false, due_ms: job.due_ms)
      end
      EnqueueResult.new(id: job.id, duplicate: false, due_ms: job.due_ms,
                        entry_id: job.due_ms.nil? && reply ? reply.to_s : nil)
    end

    # A scheduled member: a MessagePack map, str keys, str or bin values
    # (UTF-8 Strings are str, the binary payload is bin).
    def member(fields)
      MessagePack.pack(fields.to_h).b
    end

    def int(name, value, low, high)
      raise ArgumentError, "#{name} must be an Integer" unless value.is_a?(Integer)
      raise ArgumentError, "#{name} must be between #{low} and #{high}" unless value.between?(low, high)

      value
    end

    def monotonic_ms
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :millisecond)
    end
  end
end
