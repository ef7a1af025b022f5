"""A jobstream producer for Python: enqueue jobs with `redis` and `msgpack` only.

This module writes wire format v1 (docs/wire-format.md) like the Rust
producer, so any jobstream worker runs the jobs (one difference: it writes
`enqueued_at` on every job, the Rust producer only on delayed ones):

    import redis
    from jobstream_producer import Producer

    producer = Producer(redis.Redis.from_url("redis://127.0.0.1:6379"))
    producer.enqueue("emails", "send_email", {"to": "a@example.com"})            # now
    producer.enqueue("emails", "send_email", {"to": "b@example.com"}, delay_ms=30_000)
    r = producer.enqueue("emails", "sync", {"account": 42}, unique_key="account-42")
    if r.duplicate:
        print("already queued as", r.holder)
    producer.enqueue_many("emails", [
        {"job_type": "send_email", "payload": {"to": "c@example.com"}},
        {"job_type": "send_email", "payload": {"to": "d@example.com"}, "delay_ms": 1000},
    ])                                                                       # one round trip

What it writes, per job:

- to run now: `XADD PREFIX:{Q}:ready * type T payload P id ID enqueued_at MS ...`;
- delayed: `ZADD PREFIX:{Q}:scheduled DUE MEMBER`, MEMBER a MessagePack map
  of the same fields (str keys, str values, `payload` as bin);
- with a uniqueness key (or a record): `EVALSHA` of `scripts/enqueue-6.lua`,
  which reserves the key and adds the job in one atomic step;
- and `SADD PREFIX:queues Q` (its own command: no hash tag), so
  `jobstream stats` lists the queue.

Ids are UUIDv7 (RFC 9562: 48 bits of unix ms, then random bits), made
before anything is sent, like the Rust producer's: the id `enqueue` returns is
the id the worker hands to the handler, through retries and dead letters.

Times (`enqueued_at`, due times, deadlines) are read from the Redis
server's clock (`TIME`), as the workers compare them with it. The reading
is kept and extended with this host's monotonic clock, and read again once
a minute: most calls send no `TIME` of their own.

Payloads are encoded with `msgpack.packb(payload, use_bin_type=True)`:
dicts keep their keys, `bytes` become bin. docs/wire-format.md sets no
payload size limit, so none is checked unless `max_payload_bytes` is given
(the Rust producer refuses payloads over 512 KiB by default).
"""

import hashlib
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Iterable, List, Mapping, Optional

import msgpack
import redis

__all__ = ["Producer", "EnqueueResult", "check_queue_name", "uuid7", "RESERVED_FIELDS"]

#: Queue names: 1 to 128 of A-Z a-z 0-9 _ - . : (docs/wire-format.md).
QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

#: Field names of wire format v1: a job's extra `fields` may not use them.
RESERVED_FIELDS = frozenset("""
    type payload id attempt enqueued_at max_attempts timeout_ms idempotency_key
    traceparent tracestate last_error_class last_error deadline_ms on_deadline
    unique_key unique_for unique_ttl_ms record_ms chain prev_result batch
    batch_done group rate_key prev_entry reason error_class error deliveries
    failed_at worker queue raw wire_version
""".split())

MAX_FIELDS = 1000            # fields per job (docs/wire-format.md)
MAX_ID_LEN = 256             # bytes, as the Rust producer's NewJob::with_id
MAX_UNIQUE_KEY_LEN = 256     # bytes
MAX_ATTEMPTS = 1000          # workers cap max_attempts here
MAX_TIMEOUT_MS = 86_400_000  # 24 h, workers cap timeout_ms here
MAX_LIFETIME_MS = 10**15 - 1  # enqueue-6 refuses longer lifetimes
CLOCK_RESYNC_S = 60.0        # how long a reading of the server clock is trusted
UNIQUE_MODES = ("queued", "done", "ttl")
DEADLINE_ACTIONS = ("dead", "discard")


def check_queue_name(queue: str) -> None:
    """Raises ValueError unless `queue` is a valid queue name
    (`^[A-Za-z0-9_.:-]{1,128}$`; braces would break the hash tag)."""
    if not isinstance(queue, str) or not QUEUE_NAME.fullmatch(queue):
        raise ValueError(
            f"invalid queue name {queue!r}: 1 to 128 characters of A-Z a-z 0-9 _ - . : "
            "(no braces, spaces or non-ASCII)")


def uuid7(unix_ms: Optional[int] = None) -> str:
    """A UUIDv7 string (RFC 9562): 48 bits of unix ms, version 7, 12 + 62
    random bits, variant 10. Time-ordered across milliseconds, like the ids
    of the Rust producer."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= secrets.randbits(12) << 64
    value |= 0b10 << 62
    value |= secrets.randbits(62)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class EnqueueResult:
    """What happened to one job.

    `id` is the job's id (the one generated or given). When the job was
    refused as a duplicate of a job holding its uniqueness key,
    `duplicate` is True, nothing was enqueued, and `holder` is the id of
    the job holding the key. `entry_id` is the `ready` stream entry id of
    a job added to run now with a plain XADD (None for delayed jobs,
    duplicates, and jobs enqueued through `enqueue-6`, which returns no
    entry id);
    `due_ms` the due time of a delayed one (server clock, unix ms)."""

    id: str
    duplicate: bool = False
    holder: Optional[str] = None
    entry_id: Optional[str] = None
    due_ms: Optional[int] = None


@dataclass
class _Prepared:
    """A checked job, ready to be sent."""
    id: str
    job_type: str
    fields: List[tuple]          # [(name, str|bytes)] in wire order
    due_ms: Optional[int]        # None: run now
    unique: Optional[tuple]      # (key, mode, ttl_ms)
    record_ms: int


class Producer:
    """Enqueues jobstream jobs through a redis-py client.

    `redis_client` is a `redis.Redis` (or `redis.RedisCluster`); replies
    may be bytes or str (`decode_responses`). `prefix` is the key prefix of
    the deployment (`jobstream` by default). `scripts_dir` is the folder
    holding `enqueue-6.lua` (default: the repository's `scripts/`, found
    relative to this file); it is read on the first unique job.
    `max_payload_bytes`, if given, refuses larger encoded payloads with
    ValueError before anything is sent."""

    def __init__(self, redis_client, prefix: str = "jobstream",
                 scripts_dir: Optional[str] = None,
                 max_payload_bytes: Optional[int] = None):
        if not prefix:
            raise ValueError("prefix must not be empty")
        self.redis = redis_client
        self.prefix = prefix
        self.scripts_dir = scripts_dir or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts")
        self.max_payload_bytes = max_payload_bytes
        self._script = None      # (sha1, source) of enqueue-6
        self._clock = None       # (server ms, monotonic s) of the last TIME

    # ----------------------------------------------------------------- keys

    def key(self, queue: str, name: str) -> str:
        """The key `PREFIX:{queue}:name`; `{queue}` is the Redis Cluster
        hash tag shared by every key of the queue."""
        return f"{self.prefix}:{{{queue}}}:{name}"

    # ---------------------------------------------------------------- clock

    def server_now_ms(self) -> int:
        """The Redis server's clock, unix ms: read with `TIME` at most once
        a minute and extended with this host's monotonic clock between
        readings (so a skewed host clock does not matter)."""
        mono = time.monotonic()
        if self._clock is None or mono - self._clock[1] >= CLOCK_RESYNC_S:
            start = time.monotonic()
            sec, usec = self.redis.time()
            end = time.monotonic()
            self._clock = (int(sec) * 1000 + int(usec) // 1000, (start + end) / 2)
            mono = time.monotonic()
        server_ms, at = self._clock
        return server_ms + int((mono - at) * 1000)

    # -------------------------------------------------------------- enqueue

    def enqueue(self, queue: str, job_type: str, payload: Any = None, *,
                id: Optional[str] = None,
                delay_ms: Optional[int] = None,
                run_at_ms: Optional[int] = None,
                unique_key: Optional[str] = None,
                unique_for: Optional[str] = None,
                unique_ttl_ms: Optional[int] = None,
                deadline_ms: Optional[int] = None,
                deadline_in_ms: Optional[int] = None,
                on_deadline: Optional[str] = None,
                max_attempts: Optional[int] = None,
                timeout_ms: Optional[int] = None,
                idempotency_key: Optional[str] = None,
                record_ms: Optional[int] = None,
                fields: Optional[Mapping[str, Any]] = None) -> EnqueueResult:
        """Enqueues one job of type `job_type` on `queue`; returns its
        EnqueueResult. Raises ValueError for a bad argument (nothing is
        sent) and redis errors as they are.

        - `payload`: any MessagePack-encodable value (a dict is typical).
        - `id`: the job's id (1-256 bytes, unique within the queue);
          default a new UUIDv7.
        - `delay_ms` (from now) or `run_at_ms` (unix ms): run later, by the
          server's clock; a due time not in the future runs now.
        - `unique_key` (1-256 bytes): enqueue nothing while another job of
          the queue holds this key (`duplicate=True`, `holder` its id).
          `unique_for`: when the key is released: `done` (default: when
          the job is final), `queued` (when a worker starts it), `ttl`
          (after `unique_ttl_ms`, required then; optional safety limit
          otherwise).
        - `deadline_ms` (unix ms) or `deadline_in_ms` (from when the job is
          due, by the server's clock; may be negative): a job not started
          by then is not run. `on_deadline`: `dead` (dead-lettered with
          reason `expired`, the worker's default) or `discard` (dropped,
          counted in `expired`).
        - `max_attempts` (1-1000), `timeout_ms` (1-86400000): per-job
          overrides of the handler's policy.
        - `idempotency_key`: your business key, handed to the handler.
        - `record_ms`: keep a job record (`PREFIX:{Q}:job:ID`) this long
          after the job is final (enqueued through `enqueue-6`).
        - `fields`: extra fields (name -> str or bytes; ints are written in
          decimal), carried unchanged through retries and into `dead`.
          Wire-format names are refused.
        """
        job = dict(job_type=job_type, payload=payload, id=id, delay_ms=delay_ms,
                   run_at_ms=run_at_ms, unique_key=unique_key, unique_for=unique_for,
                   unique_ttl_ms=unique_ttl_ms, deadline_ms=deadline_ms,
                   deadline_in_ms=deadline_in_ms, on_deadline=on_deadline,
                   max_attempts=max_attempts, timeout_ms=timeout_ms,
                   idempotency_key=idempotency_key, record_ms=record_ms, fields=fields)
        return self.enqueue_many(queue, [job])[0]

    def enqueue_many(self, queue: str, jobs: Iterable[Mapping[str, Any]]) -> List[EnqueueResult]:
        """Enqueues many jobs on `queue` in one pipeline (one round trip,
        plus a `TIME` at most once a minute). Each job is a mapping with
        `job_type` (or `type`), `payload`, and any keyword option of
        `enqueue` (or those options under `options`). Every job is checked
        before anything is sent, so one bad job enqueues nothing. Returns
        one EnqueueResult per job, in order.

        The pipeline is not a transaction: if Redis refuses one command
        (OOM, a key of the wrong type), the jobs before and after it may be
        enqueued; the first error is raised after the whole pipeline ran."""
        check_queue_name(queue)
        specs = [self._spec(job) for job in jobs]
        if not specs:
            return []
        now = self.server_now_ms()
        prepared = [self._prepare(spec, now) for spec in specs]
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(f"{self.prefix}:queues", queue)
        for job in prepared:
            self._send(pipe, queue, job, now)
        replies = pipe.execute(raise_on_error=False)[1:]
        # enqueue-6 not in the server's script cache (first use, or a
        # restarted server): load it and resend those calls only; an
        # EVALSHA refused with NOSCRIPT changed nothing.
        missing = [i for i, r in enumerate(replies) if _is_noscript(r)]
        if missing:
            self.redis.script_load(self._enqueue_script()[1])
            pipe = self.redis.pipeline(transaction=False)
            for i in missing:
                self._send(pipe, queue, prepared[i], now)
            for i, reply in zip(missing, pipe.execute(raise_on_error=False)):
                replies[i] = reply
        results, error = [], None
        for job, reply in zip(prepared, replies):
            if isinstance(reply, Exception):
                error = error or reply
                results.append(None)
            else:
                results.append(self._result(job, reply))
        if error is not None:
            raise error
        return results

    # -------------------------------------------------------------- helpers

    @staticmethod
    def _spec(job: Mapping[str, Any]) -> dict:
        """A job of `enqueue_many` as keyword arguments of `enqueue`."""
        if not isinstance(job, Mapping):
            raise ValueError(f"a job must be a mapping, not {type(job).__name__}")
        spec = dict(job)
        spec.update(spec.pop("options", None) or {})
        if "type" in spec:
            spec["job_type"] = spec.pop("type")
        allowed = {"job_type", "payload", "id", "delay_ms", "run_at_ms", "unique_key",
                   "unique_for", "unique_ttl_ms", "deadline_ms", "deadline_in_ms",
                   "on_deadline", "max_attempts", "timeout_ms", "idempotency_key",
                   "record_ms", "fields"}
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError(f"unknown job option(s): {', '.join(sorted(unknown))}")
        if "job_type" not in spec:
            raise ValueError("a job needs a job_type")
        return spec

    def _prepare(self, s: dict, now: int) -> _Prepared:
        """Checks one job and builds its fields (in the Rust producer's
        order: type, payload, id, enqueued_at, options, deadline, extras)."""
        job_type = s["job_type"]
        if not isinstance(job_type, str) or not job_type:
            raise ValueError("job_type must be a non-empty string")
        payload = msgpack.packb(s.get("payload"), use_bin_type=True)
        if self.max_payload_bytes is not None and len(payload) > self.max_payload_bytes:
            raise ValueError(f"payload is {len(payload)} bytes, over max_payload_bytes "
                             f"({self.max_payload_bytes})")
        job_id = s.get("id")
        if job_id is None:
            job_id = uuid7()
        elif not isinstance(job_id, str) or not 1 <= len(job_id.encode()) <= MAX_ID_LEN:
            raise ValueError(f"id must be a string of 1 to {MAX_ID_LEN} bytes")

        delay_ms, run_at_ms = s.get("delay_ms"), s.get("run_at_ms")
        if delay_ms is not None and run_at_ms is not None:
            raise ValueError("give delay_ms or run_at_ms, not both")
        due = now
        if delay_ms is not None:
            due = now + _int("delay_ms", delay_ms, 0, MAX_LIFETIME_MS)
        elif run_at_ms is not None:
            due = max(now, _int("run_at_ms", run_at_ms, 0, MAX_LIFETIME_MS))

        fields = [("type", job_type), ("payload", payload), ("id", job_id),
                  ("enqueued_at", str(now))]
        if s.get("max_attempts") is not None:
            fields.append(("max_attempts", str(_int("max_attempts", s["max_attempts"], 1, MAX_ATTEMPTS))))
        if s.get("timeout_ms") is not None:
            fields.append(("timeout_ms", str(_int("timeout_ms", s["timeout_ms"], 1, MAX_TIMEOUT_MS))))
        if s.get("idempotency_key") is not None:
            key = s["idempotency_key"]
            if not isinstance(key, str) or not key:
                raise ValueError("idempotency_key must be a non-empty string")
            fields.append(("idempotency_key", key))

        unique = None
        key, mode, ttl = s.get("unique_key"), s.get("unique_for"), s.get("unique_ttl_ms")
        if key is None:
            if mode is not None or ttl is not None:
                raise ValueError("unique_for and unique_ttl_ms need a unique_key")
        else:
            if not isinstance(key, str) or not 1 <= len(key.encode()) <= MAX_UNIQUE_KEY_LEN:
                raise ValueError(f"unique_key must be a string of 1 to {MAX_UNIQUE_KEY_LEN} bytes")
            mode = "done" if mode is None else mode
            if mode not in UNIQUE_MODES:
                raise ValueError(f"unique_for must be one of {', '.join(UNIQUE_MODES)}")
            if mode == "ttl" and ttl is None:
                raise ValueError("unique_for='ttl' needs unique_ttl_ms")
            ttl = 0 if ttl is None else _int("unique_ttl_ms", ttl, 1, MAX_LIFETIME_MS)
            fields += [("unique_key", key), ("unique_for", mode)]
            if ttl:
                fields.append(("unique_ttl_ms", str(ttl)))
            unique = (key, mode, ttl)
        record_ms = 0
        if s.get("record_ms") is not None:
            record_ms = _int("record_ms", s["record_ms"], 1, MAX_LIFETIME_MS)
            fields.append(("record_ms", str(record_ms)))

        deadline, within = s.get("deadline_ms"), s.get("deadline_in_ms")
        if deadline is not None and within is not None:
            raise ValueError("give deadline_ms or deadline_in_ms, not both")
        if within is not None:
            deadline = due + _int("deadline_in_ms", within, -MAX_LIFETIME_MS, MAX_LIFETIME_MS)
        elif deadline is not None:
            deadline = _int("deadline_ms", deadline, 0, MAX_LIFETIME_MS)
        on_deadline = s.get("on_deadline")
        if on_deadline is not None:
            if on_deadline not in DEADLINE_ACTIONS:
                raise ValueError("on_deadline must be 'dead' or 'discard'")
            if deadline is None:
                raise ValueError("on_deadline needs deadline_ms or deadline_in_ms")
        if deadline is not None:
            fields.append(("deadline_ms", str(max(deadline, 0))))
            if on_deadline is not None:
                fields.append(("on_deadline", on_deadline))

        for name, value in (s.get("fields") or {}).items():
            if not isinstance(name, str) or not name or name in RESERVED_FIELDS:
                raise ValueError(f"field name {name!r} is empty or reserved by the wire format")
            if isinstance(value, bool) or not isinstance(value, (str, bytes, int)):
                raise ValueError(f"field {name!r} must be str, bytes or int")
            fields.append((name, str(value) if isinstance(value, int) else value))
        if len(fields) > MAX_FIELDS:
            raise ValueError(f"a job has at most {MAX_FIELDS} fields ({len(fields)} here)")
        return _Prepared(id=job_id, job_type=job_type, fields=fields,
                         due_ms=due if due > now else None, unique=unique,
                         record_ms=record_ms)

    def _send(self, pipe, queue: str, job: _Prepared, now: int) -> None:
        """Queues the command that enqueues `job` on `pipe`."""
        if job.unique is None and not job.record_ms:
            if job.due_ms is None:
                pipe.xadd(self.key(queue, "ready"), dict(job.fields))
            else:
                pipe.zadd(self.key(queue, "scheduled"), {_member(job.fields): job.due_ms})
            return
        key, mode, ttl = job.unique or (None, "", 0)
        keys = [self.key(queue, "ready"), self.key(queue, "scheduled"),
                self.key(queue, "stats"),
                # Any key of the queue when there is no uniqueness key.
                self.key(queue, f"unique:{key}") if key is not None else self.key(queue, "ready"),
                self.key(queue, f"job:{job.id}"), self.key(queue, f"done:{job.id}")]
        args = [job.id, mode, ttl, job.record_ms, now, job.due_ms or 0, job.job_type]
        if job.due_ms is None:
            args += [x for pair in job.fields for x in pair]
        else:
            args.append(_member(job.fields))
        pipe.evalsha(self._enqueue_script()[0], len(keys), *keys, *args)

    def _enqueue_script(self):
        """(sha1, source) of `enqueue-6.lua`, read once."""
        if self._script is None:
            with open(os.path.join(self.scripts_dir, "enqueue-6.lua"), "rb") as f:
                source = f.read()
            self._script = (hashlib.sha1(source).hexdigest(), source)
        return self._script

    @staticmethod
    def _result(job: _Prepared, reply) -> EnqueueResult:
        if job.unique is not None or job.record_ms:
            code, holder = reply[0], _text(reply[1])
            if int(code) == 0:
                return EnqueueResult(id=job.id, duplicate=True, holder=holder)
            return EnqueueResult(id=job.id, due_ms=job.due_ms)
        if job.due_ms is None:
            return EnqueueResult(id=job.id, entry_id=_text(reply))
        return EnqueueResult(id=job.id, due_ms=job.due_ms)


def _member(fields) -> bytes:
    """A `scheduled` member: a MessagePack map, str keys, str or bin values."""
    return msgpack.packb(dict(fields), use_bin_type=True)


def _int(name: str, value, low: int, high: int) -> int:
    """`value` as an int in [low, high], or ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_noscript(reply) -> bool:
    return isinstance(reply, redis.exceptions.NoScriptError) or (
        isinstance(reply, redis.exceptions.ResponseError) and "NOSCRIPT" in str(reply))
