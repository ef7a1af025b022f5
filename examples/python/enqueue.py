#!/usr/bin/env python3
"""Enqueue jobstream jobs from Python with nothing but Redis and MessagePack.

This is the worked example of docs/wire-format.md (wire format v1): it
enqueues `send_email` jobs for the quickstart worker, either to run now
(XADD to the ready stream) or after a delay (ZADD to the scheduled set), and
prints the job ids, one per line.

    pip install -r examples/python/requirements.txt
    python3 examples/python/enqueue.py --count 3
    python3 examples/python/enqueue.py --count 3 --delay-ms 10000

Stats of the queue are printed to stderr afterwards, so stdout holds only ids.
"""

import argparse
import os
import re
import secrets
import sys
import time

try:
    import msgpack
    import redis
except ImportError as e:  # pragma: no cover - depends on the environment
    sys.exit(f"enqueue.py: missing Python package ({e.name}); "
             "run: pip install -r examples/python/requirements.txt")

PREFIX = "jobstream"
# Same rule as the Rust QueueName: 1-128 of A-Z a-z 0-9 _ - . :
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def check_queue_name(name):
    """Raises ValueError when `name` is not a valid queue name."""
    if not name:
        raise ValueError("it is empty")
    if len(name.encode()) > 128:
        raise ValueError("it is longer than 128 bytes")
    if "{" in name or "}" in name:
        raise ValueError("braces would break the Redis Cluster hash tag")
    if not QUEUE_NAME.fullmatch(name):
        raise ValueError("only A-Z, a-z, 0-9, '_', '-', '.' and ':' are allowed")


def keys(queue):
    """The keys of one queue. `{queue}` is the Redis Cluster hash tag."""
    base = f"{PREFIX}:{{{queue}}}"
    return {
        "ready": f"{base}:ready",          # stream
        "scheduled": f"{base}:scheduled",  # zset, score = due unix ms
        "dead": f"{base}:dead",            # stream
        "stats": f"{base}:stats",          # hash of counters
    }


def now_ms():
    return time.time_ns() // 1_000_000


def new_job_id(ms):
    """A unique, time-ordered job id (same shape as the Rust producer's)."""
    return f"j{ms:012x}{secrets.randbits(64):016x}"


def enqueue_now(r, queue, job_type, payload):
    """XADD one job to the ready stream; its job id is the entry id."""
    entry_id = r.xadd(keys(queue)["ready"], {"type": job_type, "payload": payload})
    return entry_id.decode()


# The script that reserves a uniqueness key and enqueues in one atomic step
# (scripts/README.md, "enqueue-6"); a plain XADD would reserve nothing.
ENQUEUE_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "enqueue-6.lua")


def server_ms(r):
    """The Redis server's clock, unix ms: deadlines are read against it."""
    sec, usec = r.time()
    return sec * 1000 + usec // 1000


def enqueue_unique(r, queue, job_type, payload, unique_key, extra):
    """Enqueues one job now, unique by `unique_key` until it is done.
    Returns (job id, True) when enqueued, (holder's id, False) for a
    duplicate."""
    with open(ENQUEUE_SCRIPT) as f:
        script = r.register_script(f.read())
    job_id = new_job_id(now_ms())
    base = f"{PREFIX}:{{{queue}}}"
    fields = ["type", job_type, "payload", payload, "id", job_id,
              "unique_key", unique_key, "unique_for", "done", *extra]
    code, holder = script(
        keys=[f"{base}:ready", f"{base}:scheduled", f"{base}:stats",
              f"{base}:unique:{unique_key}", f"{base}:job:{job_id}", f"{base}:done:{job_id}"],
        args=[job_id, "done", 0, 0, server_ms(r), 0, job_type, *fields])
    return holder.decode(), code == 1


def enqueue_delayed(r, queue, job_type, payload, delay_ms):
    """ZADD one job to the scheduled set, due `delay_ms` from now by the
    Redis server's clock (the promoter reads due times against it)."""
    ms = server_ms(r)
    job_id = new_job_id(ms)
    member = msgpack.packb(
        {
            "type": job_type,
            "payload": payload,        # bytes -> MessagePack bin
            "id": job_id,              # makes the member unique
            "enqueued_at": str(ms),    # all values are strings
        },
        use_bin_type=True,
    )
    r.zadd(keys(queue)["scheduled"], {member: ms + delay_ms})
    return job_id


def queue_stats(r, queue):
    """Lengths of the queue's structures and its counters."""
    k = keys(queue)
    pipe = r.pipeline(transaction=False)
    pipe.xlen(k["ready"])
    pipe.zcard(k["scheduled"])
    pipe.xlen(k["dead"])
    pipe.hgetall(k["stats"])
    ready, scheduled, dead, counters = pipe.execute()
    stats = {"ready": ready, "scheduled": scheduled, "dead": dead}
    stats.update({name.decode(): int(value) for name, value in counters.items()})
    return stats


def display_url(url):
    """`url` without a password, for messages."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Enqueue send_email jobs for the jobstream quickstart worker.")
    p.add_argument("--url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"),
                   help="Redis URL (default: $REDIS_URL or redis://127.0.0.1:6379)")
    p.add_argument("--queue", default="emails", help="queue name (default: emails)")
    p.add_argument("--count", type=int, default=1, help="number of jobs (default: 1)")
    p.add_argument("--delay-ms", type=int, default=0,
                   help="run the jobs this many ms from now (default: 0 = now)")
    p.add_argument("--to", default="someone@example.com", help="recipient written into the payload")
    p.add_argument("--unique", metavar="KEY",
                   help="uniqueness key: while a job with KEY is queued or running, no other is enqueued")
    p.add_argument("--start-within-ms", type=int, default=0,
                   help="start deadline: not run unless started within this many ms (server clock)")
    args = p.parse_args(argv)
    try:
        check_queue_name(args.queue)
    except ValueError as e:
        p.error(f"invalid queue name {args.queue!r}: {e}")
    if args.count < 1:
        p.error("--count must be at least 1")
    if args.delay_ms < 0:
        p.error("--delay-ms must not be negative")
    if args.unique is not None and not 1 <= len(args.unique.encode()) <= 256:
        p.error("--unique must be 1 to 256 bytes")
    if args.start_within_ms < 0:
        p.error("--start-within-ms must not be negative")
    if args.delay_ms > 0 and (args.unique or args.start_within_ms):
        p.error("--unique and --start-within-ms go with jobs to run now (no --delay-ms)")
    return args


def main(argv=None):
    args = parse_args(argv)
    payload = msgpack.packb(
        {"to": args.to, "subject": "hello from python", "delay_ms": 5},
        use_bin_type=True,
    )
    try:
        r = redis.Redis.from_url(args.url, socket_connect_timeout=5, socket_timeout=10)
        r.ping()
        # Lets `jobstream stats` list the queue (no hash tag: its own command).
        r.sadd(f"{PREFIX}:queues", args.queue)
        ids = []
        extra = []
        if args.start_within_ms:
            extra = ["deadline_ms", str(server_ms(r) + args.start_within_ms)]
        for _ in range(args.count):
            if args.delay_ms > 0:
                ids.append(enqueue_delayed(r, args.queue, "send_email", payload, args.delay_ms))
            elif args.unique:
                job_id, new = enqueue_unique(r, args.queue, "send_email", payload, args.unique, extra)
                ids.append(job_id if new else f"{job_id} (duplicate)")
            elif extra:
                ids.append(r.xadd(keys(args.queue)["ready"],
                                  {"type": "send_email", "payload": payload, **dict(zip(extra[::2], extra[1::2]))}).decode())
            else:
                ids.append(enqueue_now(r, args.queue, "send_email", payload))
            print(ids[-1], flush=True)
        stats = queue_stats(r, args.queue)
    except ValueError as e:  # a malformed URL
        print(f"enqueue.py: bad Redis URL {display_url(args.url)!r}: {e}", file=sys.stderr)
        return 2
    except redis.exceptions.ConnectionError as e:
        print(f"enqueue.py: cannot connect to Redis at {display_url(args.url)}: {e}", file=sys.stderr)
        return 1
    except redis.exceptions.RedisError as e:
        print(f"enqueue.py: Redis error: {e}", file=sys.stderr)
        return 1
    print(f"queue {args.queue}: " + " ".join(f"{k}={v}" for k, v in stats.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
