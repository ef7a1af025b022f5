#!/usr/bin/env python3
"""Conformance driver for jobstream_producer.py (conformance/README.md,
"Producer cases").

The runner starts it with REDIS_URL, JOBSTREAM_QUEUE, JOBSTREAM_CASES (the
path of conformance/v1/producer.json) and JOBSTREAM_SCRIPTS (the scripts/
folder). It enqueues every case's jobs with the library, in file order (a
case with several jobs in one `enqueue_many` call), and prints one JSON
line per case on stdout:

    {"case": "with_id", "ids": ["conf-fixed-1"]}
    {"case": "unique_again", "ids": [], "duplicate": true, "holder": "conf-unique-1"}

A case the library refuses prints {"case": ..., "error": "..."}; the driver
then exits 1 after the last case.

    /work/tgt-me/debug/jobstream-conformance producer --url redis://127.0.0.1:6379 \\
        -- python3 examples/python/conformance_driver.py
"""

import json
import os
import sys

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jobstream_producer import Producer  # noqa: E402


def options_of(job):
    """A case's options as keyword options of the library. The protocol's
    deadline_in_ms counts from the server's time at enqueue; the library's
    counts from when the job is due (as the Rust producer's start_within),
    so a delayed job's is shifted by its delay."""
    options = dict(job.get("options", {}))
    if options.get("deadline_in_ms") is not None and options.get("delay_ms"):
        options["deadline_in_ms"] -= options["delay_ms"]
    return options


def job_spec(job):
    """A case's job as a job of Producer.enqueue_many."""
    return {"job_type": job["type"], "payload": job.get("payload"), **options_of(job)}


def line(case, results):
    """The driver's line for one case."""
    out = {"case": case, "ids": [r.id for r in results if not r.duplicate]}
    dups = [r for r in results if r.duplicate]
    if dups:
        out["duplicate"] = True
        out["holder"] = dups[0].holder
    return out


def main():
    env = os.environ
    r = redis.Redis.from_url(env.get("REDIS_URL", "redis://127.0.0.1:6379"))
    producer = Producer(r, scripts_dir=env.get("JOBSTREAM_SCRIPTS"))
    queue = env["JOBSTREAM_QUEUE"]
    with open(env["JOBSTREAM_CASES"], encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    failed = False
    for case in cases:
        jobs = case["enqueue"]
        try:
            if len(jobs) == 1:
                j = jobs[0]
                results = [producer.enqueue(queue, j["type"], j.get("payload"), **options_of(j))]
            else:
                results = producer.enqueue_many(queue, [job_spec(j) for j in jobs])
            out = line(case["name"], results)
        except (ValueError, TypeError, redis.RedisError) as e:
            failed = True
            out = {"case": case["name"], "error": str(e)}
        print(json.dumps(out, ensure_ascii=False), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
