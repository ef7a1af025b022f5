#!/usr/bin/env python3
"""Conformance of scripts/*.lua as another language calls them.

Every jobstream Lua script is called here from Python, through redis-py's
``register_script`` (EVALSHA, SCRIPT LOAD on NOSCRIPT), with exactly the KEYS
and ARGV its header documents, key names built by hand as
docs/wire-format.md spells them (``jobstream:{Q}:ready`` ...). Each test sets
up state with the commands a worker or producer would send (XGROUP CREATE
... MKSTREAM, XADD, XREADGROUP, ZADD, HSET ...), calls the script and checks
every return value its ``Returns:`` paragraph lists and the documented
effects on Redis (entries moved, fields written, counters in ``stats``).

Where a script does something other than what its header or
scripts/README.md says, the test checks what the script really does and
says so in a comment starting ``# DOC MISMATCH:``.

Usage:
    REDIS_URL=redis://127.0.0.1:6379 python3 conformance/scripts/test_scripts.py -v

Environment:
    REDIS_URL          the server (required). Nothing is flushed: each test
                       uses a queue of its own, conf-scripts-<random>-<n>,
                       and deletes that queue's keys when it ends.
    JOBSTREAM_SCRIPTS  the folder of the .lua files (default: ../../scripts
                       relative to this file).

Needs Python 3.8+, redis-py and msgpack. Exits non-zero on any failure.
"""

import glob
import itertools
import os
import re
import secrets
import sys
import time
import unittest

import msgpack
import redis

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS_DIR = os.environ.get("JOBSTREAM_SCRIPTS") or os.path.normpath(
    os.path.join(HERE, "..", "..", "scripts")
)
RUN = secrets.token_hex(4)
_queue_numbers = itertools.count(1)

GROUP = "workers"
# The largest stream id: a stream whose last id is this refuses XADD *.
MAX_ID = "18446744073709551615-18446744073709551615"
# One id below it: exactly one more XADD * fits, the next one fails.
MAX_ID_LESS_ONE = "18446744073709551615-18446744073709551614"

_client = None
_scripts = {}
# Scripts called at least once during this run, and the test classes that
# ran: the coverage test checks that each class really calls its script.
CALLED = set()
CLASSES_RUN = set()


def client():
    """One connection pool for the run; replies are left raw (no parsing)."""
    global _client
    if _client is None:
        url = os.environ.get("REDIS_URL")
        if not url:
            sys.stderr.write("REDIS_URL is required, e.g. REDIS_URL=redis://127.0.0.1:6379\n")
            sys.exit(2)
        _client = redis.Redis.from_url(url, protocol=2)
        # Raw replies: stream entries as [id, [field, value, ...]] with
        # their order and duplicates, as another language sees them.
        _client.response_callbacks.clear()
    return _client


def script(name):
    if name not in _scripts:
        with open(os.path.join(SCRIPTS_DIR, name + ".lua"), "rb") as f:
            _scripts[name] = client().register_script(f.read())
    return _scripts[name]


def B(x):
    """bytes of a str/bytes/int, as Redis hands values back."""
    if isinstance(x, bytes):
        return x
    return str(x).encode()


def flat(fields):
    return [B(x) for x in fields]


def pack(d):
    """A scheduled member: MessagePack map, names as str, values as given."""
    return msgpack.packb(d, use_bin_type=True)


def server_has(command):
    info = client().execute_command("COMMAND", "INFO", command)
    return bool(info) and info[0] is not None


class ScriptCase(unittest.TestCase):
    SCRIPT = None  # the script this class exercises, e.g. "ack-2"

    @classmethod
    def setUpClass(cls):
        CLASSES_RUN.add(cls.__name__)

    def setUp(self):
        self.r = client()
        self.q = "conf-scripts-%s-%d" % (RUN, next(_queue_numbers))
        self.base = "jobstream:{%s}" % self.q
        self.addCleanup(self._drop_queue)

    def _drop_queue(self):
        cursor = b"0"
        while True:
            cursor, keys = self.x("SCAN", cursor, "MATCH", self.base + ":*", "COUNT", 1000)
            if keys:
                self.x("DEL", *keys)
            if cursor in (b"0", 0):
                break

    # -- names ------------------------------------------------------------
    def k(self, name):
        return "%s:%s" % (self.base, name)

    # -- calling ----------------------------------------------------------
    def call(self, keys, args, name=None):
        name = name or self.SCRIPT
        CALLED.add(name)
        return script(name)(keys=keys, args=args)

    def call_err(self, keys, args, name=None):
        """Calls and expects an error reply; returns its text (redis-py
        strips a leading 'ERR ', other codes stay: 'WRONGTYPE ...')."""
        with self.assertRaises(redis.ResponseError) as cm:
            self.call(keys, args, name)
        return str(cm.exception)

    # -- commands ---------------------------------------------------------
    def x(self, *args):
        return self.r.execute_command(*args)

    def now_ms(self):
        sec, usec = self.x("TIME")
        return int(sec) * 1000 + int(usec) // 1000

    def now_us(self):
        sec, usec = self.x("TIME")
        return int(sec) * 1000000 + int(usec)

    def mkgroup(self, key="ready", group=GROUP):
        self.x("XGROUP", "CREATE", self.k(key), group, "0", "MKSTREAM")

    def xadd(self, fields, key="ready", id="*"):
        return self.x("XADD", self.k(key), id, *fields).decode()

    def fetch(self, consumer, count=1, group=GROUP):
        """XREADGROUP ... > as a worker does; returns the ids delivered."""
        reply = self.x("XREADGROUP", "GROUP", group, consumer, "COUNT", count,
                       "STREAMS", self.k("ready"), ">")
        if not reply:
            return []
        return [e[0].decode() for e in reply[0][1]]

    def pending_job(self, fields, consumer="c1"):
        """XADD a job and fetch it, so it is pending on `consumer`."""
        id = self.xadd(fields)
        got = self.fetch(consumer)
        self.assertEqual(got, [id], "setup: the fetch must deliver the entry just added")
        return id

    def pel(self, group=GROUP):
        """{entry id: (consumer, idle ms, deliveries)} of the group."""
        out = {}
        for e in self.x("XPENDING", self.k("ready"), group, "-", "+", 10000):
            out[e[0].decode()] = (e[1].decode(), int(e[2]), int(e[3]))
        return out

    def entries(self, key):
        """[(id, [field, value, ...])] of a stream, fields as bytes."""
        return [(e[0].decode(), list(e[1])) for e in self.x("XRANGE", self.k(key), "-", "+")]

    def entry(self, key, id):
        got = self.x("XRANGE", self.k(key), id, id)
        return list(got[0][1]) if got else None

    def hash(self, key):
        got = self.x("HGETALL", self.k(key))
        if isinstance(got, dict):
            return {kk.decode(): v for kk, v in got.items()}
        return {got[i].decode(): got[i + 1] for i in range(0, len(got), 2)}

    def stats(self):
        return {kk: int(v) for kk, v in self.hash("stats").items()}

    def zset(self, key):
        got = self.x("ZRANGE", self.k(key), 0, -1, "WITHSCORES")
        return [(got[i], float(got[i + 1])) for i in range(0, len(got), 2)]

    def exhaust(self, key, room=0):
        """Makes XADD * on the stream fail ('ERR The stream has exhausted
        the last possible ID') after `room` more adds (0 or 1)."""
        self.x("XADD", self.k(key), MAX_ID if room == 0 else MAX_ID_LESS_ONE, "exhaust", "1")

    def assertExhausted(self, text):
        self.assertIn("exhausted", text)

    def job(self, n=1, **extra):
        f = ["type", "conf.job", "payload", b"\x91" + bytes([n % 128])]
        for kk, v in extra.items():
            f += [kk, v]
        return f


# ---------------------------------------------------------------------------
# ack-2 / ackdel-2
# ---------------------------------------------------------------------------


class AckTests:
    """Shared by ack-2 and ackdel-2 (same KEYS, ARGV and returns)."""

    def ack_keys(self):
        return [self.k("ready"), self.k("stats")]

    def ack_args(self, consumer, counter, ids):
        lo = min(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
        hi = max(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
        return [GROUP, consumer, counter, lo, hi] + list(ids)

    def test_all_owned_returns_empty_array_deletes_and_counts(self):
        self.mkgroup()
        ids = [self.pending_job(self.job(i)) for i in range(3)]
        lost = self.call(self.ack_keys(), self.ack_args("c1", "processed", ids))
        self.assertEqual(lost, [])
        self.assertEqual(self.x("XLEN", self.k("ready")), 0)
        self.assertEqual(self.pel(), {})
        self.assertEqual(self.stats(), {"processed": 3})

    def test_counter_field_is_the_argument(self):
        # ARGV[3]: "processed" or "discarded" (the README adds "expired").
        self.mkgroup()
        for counter in ("discarded", "expired", "processed"):
            id = self.pending_job(self.job())
            self.assertEqual(self.call(self.ack_keys(), self.ack_args("c1", counter, [id])), [])
        self.assertEqual(self.stats(), {"discarded": 1, "expired": 1, "processed": 1})

    def test_lost_ids_are_returned_and_left_alone(self):
        self.mkgroup()
        mine = self.pending_job(self.job(1), "c1")
        theirs = self.pending_job(self.job(2), "c2")
        undelivered = self.xadd(self.job(3))
        gone = "1-1"  # never existed
        ids = [mine, theirs, undelivered, gone]
        lost = self.call(self.ack_keys(), self.ack_args("c1", "processed", ids))
        self.assertEqual(lost, flat([theirs, undelivered, gone]))
        self.assertIsNone(self.entry("ready", mine))
        self.assertIsNotNone(self.entry("ready", theirs))
        self.assertIsNotNone(self.entry("ready", undelivered))
        self.assertEqual(list(self.pel()), [theirs])
        self.assertEqual(self.pel()[theirs][0], "c2")
        self.assertEqual(self.stats(), {"processed": 1})

    def test_none_owned_changes_nothing_and_repeat_is_harmless(self):
        self.mkgroup()
        id = self.pending_job(self.job())
        self.assertEqual(self.call(self.ack_keys(), self.ack_args("c1", "processed", [id])), [])
        # The same call again (its reply was lost): now lost, counters unchanged.
        self.assertEqual(self.call(self.ack_keys(), self.ack_args("c1", "processed", [id])), flat([id]))
        self.assertEqual(self.stats(), {"processed": 1})
        other = self.pending_job(self.job(), "c2")
        self.assertEqual(self.call(self.ack_keys(), self.ack_args("c1", "processed", [other])), flat([other]))
        self.assertEqual(self.stats(), {"processed": 1})
        self.assertIn(other, self.pel())


class Ack2Test(AckTests, ScriptCase):
    SCRIPT = "ack-2"

    def test_full_xpending_reply_falls_back_to_one_check_per_id(self):
        # 10000 of this consumer's entries in the batch's range fill the
        # XPENDING reply: the script then checks each id on its own.
        self.mkgroup()
        pipe = self.r.pipeline(transaction=False)
        for i in range(10001):
            pipe.execute_command("XADD", self.k("ready"), "*", "type", "t", "payload", "\xc0")
        pipe.execute()
        ids = self.fetch("c1", count=10000)
        self.assertEqual(len(ids), 10000)
        theirs = self.fetch("c2", count=1)[0]
        batch = [ids[0], ids[5000], theirs]
        lost = self.call(self.ack_keys(), [GROUP, "c1", "processed", ids[0], theirs] + batch)
        self.assertEqual(lost, flat([theirs]))
        self.assertIsNone(self.entry("ready", ids[5000]))
        self.assertIsNotNone(self.entry("ready", theirs))
        self.assertEqual(self.stats(), {"processed": 2})


class Ackdel2Test(AckTests, ScriptCase):
    SCRIPT = "ackdel-2"

    def setUp(self):
        super().setUp()
        self.has_xackdel = server_has("XACKDEL")

    def run_or_expect_unknown(self, test):
        if self.has_xackdel:
            return test()
        self.skipTest("server has no XACKDEL (Redis 8.2+): see test_without_xackdel_*")

    def test_all_owned_returns_empty_array_deletes_and_counts(self):
        self.run_or_expect_unknown(super().test_all_owned_returns_empty_array_deletes_and_counts)

    def test_counter_field_is_the_argument(self):
        self.run_or_expect_unknown(super().test_counter_field_is_the_argument)

    def test_lost_ids_are_returned_and_left_alone(self):
        self.run_or_expect_unknown(super().test_lost_ids_are_returned_and_left_alone)

    def test_none_owned_changes_nothing_and_repeat_is_harmless(self):
        self.run_or_expect_unknown(super().test_none_owned_changes_nothing_and_repeat_is_harmless)

    def test_without_xackdel_lost_ids_still_reported(self):
        # Nothing owned: XACKDEL is never reached, on any server.
        self.mkgroup()
        theirs = self.pending_job(self.job(), "c2")
        self.assertEqual(self.call(self.ack_keys(), self.ack_args("c1", "processed", [theirs])), flat([theirs]))
        self.assertEqual(self.stats(), {})

    def test_without_xackdel_fails_as_unknown_with_nothing_changed(self):
        # scripts/README.md: callers "fall back to ack-2 if it fails as unknown".
        if self.has_xackdel:
            self.skipTest("server has XACKDEL")
        self.mkgroup()
        id = self.pending_job(self.job())
        text = self.call_err(self.ack_keys(), self.ack_args("c1", "processed", [id]))
        self.assertRegex(text.lower(), "unknown")
        self.assertIn(id, self.pel())
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# retry-3
# ---------------------------------------------------------------------------


class Retry3Test(ScriptCase):
    SCRIPT = "retry-3"

    def keys(self):
        return [self.k("ready"), self.k("scheduled"), self.k("stats")]

    def member(self, id):
        return pack({"type": "conf.job", "payload": b"\x90", "id": id, "enqueued_at": "1",
                     "attempt": "2", "last_error_class": "retryable", "last_error": "boom",
                     "prev_entry": id})

    def test_returns_1_moves_to_scheduled_and_counts(self):
        self.mkgroup()
        id = self.pending_job(self.job())
        due = self.now_ms() + 60000
        m = self.member(id)
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, due, m]), 1)
        self.assertEqual(self.zset("scheduled"), [(m, float(due))])
        self.assertIsNone(self.entry("ready", id))
        self.assertEqual(self.pel(), {})
        self.assertEqual(self.stats(), {"retried": 1})

    def test_returns_0_when_not_pending_on_this_consumer(self):
        self.mkgroup()
        theirs = self.pending_job(self.job(), "c2")
        undelivered = self.xadd(self.job())
        for id in (theirs, undelivered, "1-0"):
            self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, 1, self.member(id)]), 0)
        self.assertEqual(self.zset("scheduled"), [])
        self.assertEqual(self.x("XLEN", self.k("ready")), 2)
        self.assertEqual(self.pel()[theirs][0], "c2")
        self.assertEqual(self.stats(), {})

    def test_zadd_error_is_returned_with_nothing_changed(self):
        self.mkgroup()
        id = self.pending_job(self.job())
        self.x("SET", self.k("scheduled"), "not a zset")
        text = self.call_err(self.keys(), [GROUP, "c1", id, 1, self.member(id)])
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        self.assertIn(id, self.pel())
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# dead-3
# ---------------------------------------------------------------------------

CONTEXT = ["reason", "permanent", "error_class", "permanent", "error", "no",
           "deliveries", "1", "failed_at", "1735689600000", "worker", "w1", "queue", "q"]


class Dead3Test(ScriptCase):
    SCRIPT = "dead-3"

    def keys(self):
        return [self.k("ready"), self.k("dead"), self.k("stats")]

    def test_returns_1_writes_dead_entry_and_counts(self):
        self.mkgroup()
        id = self.pending_job(self.job(tenant="acme"))
        row = self.job(tenant="acme") + ["id", id, "enqueued_at", id.split("-")[0]] + CONTEXT
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, "0"] + row), 1)
        dead = self.entries("dead")
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0][1], flat(row))
        self.assertIsNone(self.entry("ready", id))
        self.assertEqual(self.pel(), {})
        self.assertEqual(self.stats(), {"dead": 1})

    def test_maxlen_trim_is_counted_in_dead_trimmed(self):
        self.mkgroup()
        pipe = self.r.pipeline(transaction=False)
        for _ in range(250):
            pipe.execute_command("XADD", self.k("dead"), "*", "old", "1")
        pipe.execute()
        id = self.pending_job(self.job())
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, "10"] + self.job() + CONTEXT), 1)
        after = self.x("XLEN", self.k("dead"))
        self.assertLess(after, 251, "MAXLEN ~ 10 must trim whole nodes")
        self.assertEqual(self.stats(), {"dead": 1, "dead_trimmed": 251 - after})

    def test_returns_0_when_not_owned(self):
        self.mkgroup()
        theirs = self.pending_job(self.job(), "c2")
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", theirs, "0"] + self.job() + CONTEXT), 0)
        self.assertEqual(self.x("EXISTS", self.k("dead")), 0)
        self.assertIn(theirs, self.pel())
        self.assertEqual(self.stats(), {})

    def test_xadd_errors_are_returned_with_nothing_changed(self):
        self.mkgroup()
        id = self.pending_job(self.job())
        # WRONGTYPE
        self.x("SET", self.k("dead"), "x")
        text = self.call_err(self.keys(), [GROUP, "c1", id, "0"] + self.job() + CONTEXT)
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        # an exhausted stream id (also through the MAXLEN path)
        self.x("DEL", self.k("dead"))
        self.exhaust("dead")
        for maxlen in ("0", "1000"):
            self.assertExhausted(self.call_err(self.keys(), [GROUP, "c1", id, maxlen] + self.job() + CONTEXT))
        self.assertIn(id, self.pel())
        self.assertEqual(self.x("XLEN", self.k("dead")), 1)
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# extend-1
# ---------------------------------------------------------------------------


class Extend1Test(ScriptCase):
    SCRIPT = "extend-1"

    def test_refreshes_owned_leases_and_returns_lost_ids(self):
        self.mkgroup()
        mine = self.pending_job(self.job(), "c1")
        theirs = self.pending_job(self.job(), "c2")
        for id, owner in ((mine, "c1"), (theirs, "c2")):
            self.x("XCLAIM", self.k("ready"), GROUP, owner, 0, id, "IDLE", 100000, "JUSTID")
        lost = self.call([self.k("ready")], [GROUP, "c1", mine, theirs, "1-0"])
        self.assertEqual(lost, flat([theirs, "1-0"]))
        pel = self.pel()
        self.assertEqual(pel[mine][0], "c1")
        self.assertLess(pel[mine][1], 10000, "idle time reset")
        self.assertEqual(pel[mine][2], 1, "JUSTID does not count a delivery")
        self.assertGreaterEqual(pel[theirs][1], 100000, "another's lease untouched")
        self.assertEqual(pel[theirs][0], "c2")

    def test_all_owned_returns_empty_array(self):
        self.mkgroup()
        ids = [self.pending_job(self.job()) for _ in range(2)]
        self.assertEqual(self.call([self.k("ready")], [GROUP, "c1"] + ids), [])


# ---------------------------------------------------------------------------
# reap-1
# ---------------------------------------------------------------------------


class Reap1Test(ScriptCase):
    SCRIPT = "reap-1"

    def consumers(self):
        out = {}
        for info in self.x("XINFO", "CONSUMERS", self.k("ready"), GROUP):
            d = {info[i].decode(): info[i + 1] for i in range(0, len(info), 2)}
            out[d["name"].decode()] = d
        return out

    def test_removes_idle_consumers_without_pending_entries(self):
        self.mkgroup()
        self.x("XGROUP", "CREATECONSUMER", self.k("ready"), GROUP, "idle-empty")
        self.x("XGROUP", "CREATECONSUMER", self.k("ready"), GROUP, "caller")
        self.pending_job(self.job(), "idle-busy")
        time.sleep(0.15)
        self.x("XGROUP", "CREATECONSUMER", self.k("ready"), GROUP, "fresh")
        self.assertEqual(self.call([self.k("ready")], [GROUP, "100", "caller"]), 1)
        self.assertEqual(sorted(self.consumers()), ["caller", "fresh", "idle-busy"])
        # Nothing left to reap.
        self.assertEqual(self.call([self.k("ready")], [GROUP, "100", "caller"]), 0)

    def test_returns_0_when_no_consumer_is_idle_long_enough(self):
        self.mkgroup()
        self.x("XGROUP", "CREATECONSUMER", self.k("ready"), GROUP, "a")
        self.assertEqual(self.call([self.k("ready")], [GROUP, "3600000", "caller"]), 0)
        self.assertEqual(sorted(self.consumers()), ["a"])


# ---------------------------------------------------------------------------
# requeue-2
# ---------------------------------------------------------------------------


class Requeue2Test(ScriptCase):
    SCRIPT = "requeue-2"

    def keys(self):
        return [self.k("ready"), self.k("stats")]

    def test_gives_owned_jobs_back_with_id_and_enqueued_at(self):
        self.mkgroup()
        plain = self.pending_job(self.job(1))
        explicit = self.pending_job(self.job(2, id="job-2", enqueued_at="123"))
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", plain, explicit]), 2)
        self.assertEqual(self.pel(), {})
        ready = self.entries("ready")
        self.assertEqual([e[1] for e in ready], [
            flat(self.job(1) + ["id", plain, "enqueued_at", plain.split("-")[0]]),
            flat(self.job(2, id="job-2", enqueued_at="123")),
        ])
        self.assertNotIn(plain, [e[0] for e in ready])
        self.assertEqual(self.stats(), {"requeued": 2})

    def test_skips_ids_not_owned_and_acks_owned_deleted_entries(self):
        self.mkgroup()
        theirs = self.pending_job(self.job(), "c2")
        deleted = self.pending_job(self.job(), "c1")
        self.x("XDEL", self.k("ready"), deleted)
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", theirs, deleted, "1-0"]), 0)
        self.assertEqual(list(self.pel()), [theirs], "the deleted entry left the PEL, theirs stayed")
        self.assertEqual(self.x("XLEN", self.k("ready")), 1)
        self.assertEqual(self.stats(), {})

    def test_skips_entries_wider_than_1024_fields(self):
        self.mkgroup()
        wide = []
        for i in range(1025):
            wide += ["f%d" % i, "v"]
        id = self.pending_job(wide)
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id]), 0)
        self.assertIn(id, self.pel())
        self.assertEqual(self.x("XLEN", self.k("ready")), 1)
        self.assertEqual(self.stats(), {})

    def test_xadd_error_before_any_requeue_is_returned(self):
        self.mkgroup()
        id = self.pending_job(self.job())
        self.exhaust("ready")
        self.assertExhausted(self.call_err(self.keys(), [GROUP, "c1", id]))
        self.assertIn(id, self.pel())
        self.assertIsNotNone(self.entry("ready", id))
        self.assertEqual(self.stats(), {})

    def test_xadd_error_after_a_requeue_returns_the_count_so_far(self):
        self.mkgroup()
        first = self.pending_job(self.job(1))
        second = self.pending_job(self.job(2))
        self.exhaust("ready", room=1)
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", first, second]), 1)
        self.assertEqual(list(self.pel()), [second])
        self.assertIsNone(self.entry("ready", first))
        self.assertEqual(self.stats(), {"requeued": 1})


# ---------------------------------------------------------------------------
# replay-3
# ---------------------------------------------------------------------------


class Replay3Test(ScriptCase):
    SCRIPT = "replay-3"

    def keys(self):
        return [self.k("dead"), self.k("ready"), self.k("stats")]

    def dead_row(self, n=1):
        return (self.job(n, id="job-%d" % n, enqueued_at="100", attempt="3", tenant="acme",
                         last_error_class="retryable", last_error="x", traceparent="tp")
                + CONTEXT)

    def test_replays_without_failure_context_and_attempt_1(self):
        d = self.xadd(self.dead_row(), key="dead")
        self.assertEqual(self.call(self.keys(), [d]), 1)
        self.assertEqual(self.x("XLEN", self.k("dead")), 0)
        ready = self.entries("ready")
        self.assertEqual(len(ready), 1)
        self.assertEqual(ready[0][1], flat(self.job(1, id="job-1", enqueued_at="100", tenant="acme",
                                                    traceparent="tp") + ["attempt", "1"]))
        self.assertEqual(self.stats(), {"replayed": 1})

    def test_missing_and_repeated_ids_are_not_counted(self):
        d = self.xadd(self.dead_row(), key="dead")
        self.assertEqual(self.call(self.keys(), [d, d, "1-0"]), 1)
        self.assertEqual(self.call(self.keys(), [d]), 0)
        self.assertEqual(self.x("XLEN", self.k("ready")), 1)
        self.assertEqual(self.stats(), {"replayed": 1})

    def test_raw_and_too_wide_entries_are_skipped_and_stay(self):
        raw = self.xadd(["raw", pack({"type": "t"}), "id", "j", "enqueued_at", "1"] + CONTEXT, key="dead")
        wide_fields = []
        for i in range(1025):
            wide_fields += ["f%d" % i, "v"]
        wide = self.xadd(wide_fields + CONTEXT, key="dead")
        self.assertEqual(self.call(self.keys(), [raw, wide]), 0)
        self.assertEqual([e[0] for e in self.entries("dead")], [raw, wide])
        self.assertEqual(self.x("EXISTS", self.k("ready")), 0)
        self.assertEqual(self.stats(), {})

    def test_xadd_error_keeps_earlier_replays_counted(self):
        d1 = self.xadd(self.dead_row(1), key="dead")
        d2 = self.xadd(self.dead_row(2), key="dead")
        self.exhaust("ready", room=1)
        self.assertExhausted(self.call_err(self.keys(), [d1, d2]))
        self.assertEqual([e[0] for e in self.entries("dead")], [d2])
        self.assertEqual(self.stats(), {"replayed": 1})
        # Nothing replayed before the error: counter unchanged.
        self.assertExhausted(self.call_err(self.keys(), [d2]))
        self.assertEqual(self.stats(), {"replayed": 1})


# ---------------------------------------------------------------------------
# progress-2
# ---------------------------------------------------------------------------


class Progress2Test(ScriptCase):
    SCRIPT = "progress-2"

    def test_returns_1_writes_record_and_refreshes_lease(self):
        self.mkgroup()
        id = self.pending_job(self.job(id="j1"))
        self.x("HSET", self.k("job:j1"), "id", "j1", "state", "active")
        self.x("XCLAIM", self.k("ready"), GROUP, "c1", 0, id, "IDLE", 100000, "JUSTID")
        self.assertEqual(self.call([self.k("ready"), self.k("job:j1")],
                                   [GROUP, "c1", id, "40", "halfway", "1735689600000"]), 1)
        rec = self.hash("job:j1")
        self.assertEqual((rec["progress"], rec["progress_msg"], rec["progress_at"]),
                         (b"40", b"halfway", b"1735689600000"))
        self.assertLess(self.pel()[id][1], 10000)
        self.assertEqual(self.pel()[id][2], 1)

    def test_returns_1_without_record_and_creates_none(self):
        self.mkgroup()
        id = self.pending_job(self.job())
        self.x("XCLAIM", self.k("ready"), GROUP, "c1", 0, id, "IDLE", 100000, "JUSTID")
        self.assertEqual(self.call([self.k("ready"), self.k("job:none")], [GROUP, "c1", id, "5", "", "1"]), 1)
        self.assertEqual(self.x("EXISTS", self.k("job:none")), 0)
        self.assertLess(self.pel()[id][1], 10000)

    def test_returns_0_when_not_owned(self):
        self.mkgroup()
        id = self.pending_job(self.job(), "c2")
        self.x("HSET", self.k("job:j1"), "state", "active")
        self.x("XCLAIM", self.k("ready"), GROUP, "c2", 0, id, "IDLE", 100000, "JUSTID")
        self.assertEqual(self.call([self.k("ready"), self.k("job:j1")], [GROUP, "c1", id, "5", "m", "1"]), 0)
        self.assertEqual(self.hash("job:j1"), {"state": b"active"})
        self.assertGreaterEqual(self.pel()[id][1], 100000)


# ---------------------------------------------------------------------------
# start-3
# ---------------------------------------------------------------------------


class Start3Test(ScriptCase):
    SCRIPT = "start-3"

    def keys(self, job_id="j1", key="u1"):
        return [self.k("ready"), self.k("job:" + job_id), self.k("unique:" + key)]

    def test_returns_1_record_active_and_key_released(self):
        self.mkgroup()
        id = self.pending_job(self.job(id="j1"))
        self.x("HSET", self.k("job:j1"), "id", "j1", "state", "ready", "attempt", "0")
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, "j1", "1000", "1", "w1", "1", "1"]), 1)
        rec = self.hash("job:j1")
        for f, v in (("id", "j1"), ("state", "active"), ("attempt", "1"), ("started_at", "1000"),
                     ("worker", "w1"), ("entry", id)):
            self.assertEqual(rec[f], B(v), f)
        self.assertEqual(self.x("EXISTS", self.k("unique:u1")), 0)
        self.assertIn(id, self.pel(), "start-3 does not acknowledge")

    def test_key_held_by_another_job_and_flags_0_are_left_alone(self):
        self.mkgroup()
        id = self.pending_job(self.job(id="j1"))
        self.x("SET", self.k("unique:u1"), "other")
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, "j1", "1000", "1", "w1", "0", "1"]), 1)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"other")
        self.assertEqual(self.x("EXISTS", self.k("job:j1")), 0, "ARGV[8] 0: no record written")
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, "j1", "1000", "1", "w1", "0", "0"]), 1)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1", "ARGV[9] 0: key kept")

    def test_returns_0_when_not_owned(self):
        self.mkgroup()
        id = self.pending_job(self.job(id="j1"), "c2")
        self.x("HSET", self.k("job:j1"), "state", "ready")
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, "j1", "1000", "1", "w1", "1", "1"]), 0)
        self.assertEqual(self.hash("job:j1"), {"state": b"ready"})
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1")

    def test_returns_2_when_cancelled_or_cancel_requested(self):
        self.mkgroup()
        id = self.pending_job(self.job(id="j1"))
        self.x("SET", self.k("unique:u1"), "j1")
        self.x("HSET", self.k("job:j1"), "state", "cancelled")
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, "j1", "1000", "1", "w1", "1", "1"]), 2)
        self.assertEqual(self.hash("job:j1"), {"state": b"cancelled"})
        self.x("HSET", self.k("job:j1"), "state", "retrying", "cancel_requested", "5")
        self.assertEqual(self.call(self.keys(), [GROUP, "c1", id, "j1", "1000", "2", "w1", "1", "1"]), 2)
        self.assertEqual(self.hash("job:j1"), {"state": b"retrying", "cancel_requested": b"5"})
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1", "nothing changed")


# ---------------------------------------------------------------------------
# cancel-4
# ---------------------------------------------------------------------------


class Cancel4Test(ScriptCase):
    SCRIPT = "cancel-4"

    def keys(self, job_id="j1", key="u1"):
        return [self.k("job:" + job_id), self.k("cancels"), self.k("done:" + job_id), self.k("unique:" + key)]

    def test_returns_1_for_scheduled_ready_retrying(self):
        for state in ("scheduled", "ready", "retrying"):
            jid = "j-" + state
            self.x("HSET", self.k("job:" + jid), "id", jid, "state", state,
                   "unique_lock", self.k("unique:" + jid))
            self.x("SET", self.k("unique:" + jid), jid)
            self.x("RPUSH", self.k("done:" + jid), "stale")
            self.assertEqual(self.call(self.keys(jid, jid), [jid, "5000"]), 1, state)
            rec = self.hash("job:" + jid)
            self.assertEqual((rec["state"], rec["finished_at"]), (b"cancelled", b"5000"))
            self.assertEqual(self.x("EXISTS", self.k("unique:" + jid)), 0, "key released")
            self.assertEqual(self.x("LRANGE", self.k("done:" + jid), 0, -1), [b"cancelled"])
            self.assertEqual(self.x("TTL", self.k("job:" + jid)), -1, "record kept until the worker settles")

    def test_key_not_released_unless_named_by_record_and_holding_the_id(self):
        self.x("HSET", self.k("job:j1"), "id", "j1", "state", "ready", "unique_lock", self.k("unique:u1"))
        self.x("SET", self.k("unique:u1"), "someone-else")
        self.assertEqual(self.call(self.keys(), ["j1", "5000"]), 1)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"someone-else")
        self.x("HSET", self.k("job:j2"), "id", "j2", "state", "ready")  # no unique_lock
        self.x("SET", self.k("unique:u2"), "j2")
        self.assertEqual(self.call(self.keys("j2", "u2"), ["j2", "5000"]), 1)
        self.assertEqual(self.x("GET", self.k("unique:u2")), b"j2")

    def test_returns_2_for_active_and_feeds_cancels(self):
        self.x("HSET", self.k("job:j1"), "id", "j1", "state", "active")
        self.x("ZADD", self.k("cancels"), 1000, "ancient", 100000, "recent")
        self.assertEqual(self.call(self.keys(), ["j1", "150000"]), 2)
        self.assertEqual(self.hash("job:j1")["cancel_requested"], b"150000")
        self.assertEqual(self.hash("job:j1")["state"], b"active")
        self.assertEqual(self.zset("cancels"), [(b"recent", 100000.0), (b"j1", 150000.0)],
                         "entries older than a minute removed")

    def test_returns_3_when_final(self):
        for state in ("completed", "dead", "discarded", "expired", "cancelled"):
            self.x("DEL", self.k("job:j1"))
            self.x("HSET", self.k("job:j1"), "id", "j1", "state", state)
            self.assertEqual(self.call(self.keys(), ["j1", "5000"]), 3, state)
            self.assertEqual(self.hash("job:j1"), {"id": b"j1", "state": B(state)})
        self.assertEqual(self.x("EXISTS", self.k("cancels"), self.k("done:j1")), 0)

    def test_returns_0_without_record(self):
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), ["j1", "5000"]), 0)
        self.assertEqual(self.x("EXISTS", self.k("job:j1"), self.k("done:j1"), self.k("cancels")), 0)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1")


# ---------------------------------------------------------------------------
# withdraw-4
# ---------------------------------------------------------------------------


class Withdraw4Test(ScriptCase):
    SCRIPT = "withdraw-4"

    def keys(self, key="u1"):
        return [self.k("ready"), self.k("scheduled"), self.k("stats"), self.k("unique:" + key)]

    def test_returns_1_deletes_undelivered_ready_entry(self):
        self.mkgroup()
        self.pending_job(self.job())  # an earlier entry, fetched
        id = self.xadd(self.job(id="j1"))
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", id, "j1", "1"]), 1)
        self.assertIsNone(self.entry("ready", id))
        self.assertEqual(self.x("EXISTS", self.k("unique:u1")), 0)
        self.assertEqual(self.stats(), {"cancelled": 1})

    def test_ready_entry_without_any_group_is_undelivered(self):
        id = self.xadd(self.job(id="j1"))
        self.x("SET", self.k("unique:u1"), "other")
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", id, "j1", "1"]), 1)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"other", "key of another job kept")
        # ARGV[5] empty: KEYS[4] unused even if it holds the id.
        id2 = self.xadd(self.job(id="j2"))
        self.x("SET", self.k("unique:u2"), "j2")
        self.assertEqual(self.call(self.keys("u2"), [GROUP, "ready", id2, "j2", ""]), 1)
        self.assertEqual(self.x("GET", self.k("unique:u2")), b"j2")
        self.assertEqual(self.stats(), {"cancelled": 2})

    def test_returns_2_removes_scheduled_member(self):
        m = pack({"type": "t", "payload": b"\x90", "id": "j1"})
        self.x("ZADD", self.k("scheduled"), 5, m)
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), [GROUP, "scheduled", m, "j1", "1"]), 2)
        self.assertEqual(self.zset("scheduled"), [])
        self.assertEqual(self.x("EXISTS", self.k("unique:u1")), 0)
        self.assertEqual(self.stats(), {"cancelled_scheduled": 1})

    def test_returns_0_when_gone(self):
        self.mkgroup()
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", "1-0", "j1", "1"]), 0)
        self.assertEqual(self.call(self.keys(), [GROUP, "scheduled", pack({"id": "j1"}), "j1", "1"]), 0)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1")
        self.assertEqual(self.stats(), {})

    def test_returns_minus_1_when_fetched_by_any_group(self):
        self.mkgroup()
        pending = self.pending_job(self.job())
        acked = self.pending_job(self.job())
        self.x("XACK", self.k("ready"), GROUP, acked)  # delivered, not deleted
        other_group = self.xadd(self.job())
        self.x("XGROUP", "CREATE", self.k("ready"), "others", "0")
        self.x("XREADGROUP", "GROUP", "others", "o1", "COUNT", 3, "STREAMS", self.k("ready"), ">")
        # `other_group` is undelivered for `workers` but delivered to `others`.
        for id in (pending, acked, other_group):
            self.assertEqual(self.call(self.keys(), [GROUP, "ready", id, "j", ""]), -1, id)
        self.assertEqual(self.x("XLEN", self.k("ready")), 3)
        self.assertEqual(self.stats(), {})

    def test_returns_minus_1_when_pending_after_last_delivered_id(self):
        # A group moved back (XGROUP SETID) still holds the entry in its
        # pending list: the pending check, not the id check, refuses it.
        self.mkgroup()
        id = self.pending_job(self.job())
        self.x("XGROUP", "SETID", self.k("ready"), GROUP, "0")
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", id, "j", ""]), -1)
        self.assertIsNotNone(self.entry("ready", id))

    def test_returns_minus_2_for_recorded_or_batch_ready_entries(self):
        self.mkgroup()
        rec = self.xadd(self.job(id="j1", record_ms="1000"))
        bat = self.xadd(self.job(id="j2", batch="b1"))
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", rec, "j1", "1"]), -2)
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", bat, "j2", ""]), -2)
        self.assertEqual(self.x("XLEN", self.k("ready")), 2)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1")
        self.assertEqual(self.stats(), {})

    def test_scheduled_member_with_record_is_removed(self):
        # -2 is for ready entries only (header and README say so): a
        # scheduled member is removed by its bytes without looking inside,
        # so a member with record_ms or batch returns 2.
        m = pack({"type": "t", "payload": b"\x90", "id": "j1", "record_ms": "1000", "batch": "b1"})
        self.x("ZADD", self.k("scheduled"), 5, m)
        self.assertEqual(self.call(self.keys(), [GROUP, "scheduled", m, "j1", ""]), 2)
        self.assertEqual(self.zset("scheduled"), [])
        self.assertEqual(self.stats(), {"cancelled_scheduled": 1})


# ---------------------------------------------------------------------------
# purge-4
# ---------------------------------------------------------------------------


class Purge4Test(ScriptCase):
    SCRIPT = "purge-4"

    def keys(self):
        return [self.k("ready"), self.k("scheduled"), self.k("dead"), self.k("stats")]

    def test_ready_purges_only_undelivered_entries(self):
        self.mkgroup()
        pending = self.pending_job(self.job())
        acked = self.pending_job(self.job())
        self.x("XACK", self.k("ready"), GROUP, acked)
        a = self.xadd(self.job())
        b = self.xadd(self.job())
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", pending, acked, a, b, "1-0"]), 2)
        self.assertEqual([e[0] for e in self.entries("ready")], [pending, acked])
        self.assertEqual(self.stats(), {"discarded": 2, "purged_ready": 2})

    def test_ready_checks_every_consumer_group(self):
        self.mkgroup()
        a = self.xadd(self.job())
        b = self.xadd(self.job())
        self.x("XGROUP", "CREATE", self.k("ready"), "others", "0")
        self.x("XREADGROUP", "GROUP", "others", "o1", "COUNT", 1, "STREAMS", self.k("ready"), ">")
        # `a` is undelivered for `workers` but was handed to `others`.
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", a, b]), 1)
        self.assertEqual([e[0] for e in self.entries("ready")], [a])
        self.assertEqual(self.stats(), {"discarded": 1, "purged_ready": 1})

    def test_ready_skips_pending_entries_after_last_delivered_id(self):
        self.mkgroup()
        id = self.pending_job(self.job())
        self.x("XGROUP", "SETID", self.k("ready"), GROUP, "0")
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", id]), 0)
        self.assertIsNotNone(self.entry("ready", id))
        self.assertEqual(self.stats(), {})

    def test_ready_on_missing_stream_returns_0(self):
        self.assertEqual(self.call(self.keys(), [GROUP, "ready", "1-0"]), 0)
        self.assertEqual(self.stats(), {})

    def test_scheduled_and_dead(self):
        m1, m2 = pack({"id": "1"}), pack({"id": "2"})
        self.x("ZADD", self.k("scheduled"), 1, m1, 2, m2)
        self.assertEqual(self.call(self.keys(), [GROUP, "scheduled", m1, pack({"id": "x"})]), 1)
        self.assertEqual(self.zset("scheduled"), [(m2, 2.0)])
        d1 = self.xadd(self.job() + CONTEXT, key="dead")
        d2 = self.xadd(self.job() + CONTEXT, key="dead")
        self.assertEqual(self.call(self.keys(), [GROUP, "dead", d1, d2, d1, "1-0"]), 2)
        self.assertEqual(self.x("XLEN", self.k("dead")), 0)
        self.assertEqual(self.stats(), {"purged_scheduled": 1, "purged_dead": 2})
        # Nothing removed: no counter written.
        self.assertEqual(self.call(self.keys(), [GROUP, "dead", d1]), 0)
        self.assertEqual(self.stats(), {"purged_scheduled": 1, "purged_dead": 2})

    def test_errors_for_unknown_state_and_more_than_1000_ids(self):
        d = self.xadd(self.job(), key="dead")
        text = self.call_err(self.keys(), [GROUP, "retrying", d])
        self.assertTrue(text.startswith("purge-4:"), text)  # ERR purge-4: ...
        text = self.call_err(self.keys(), [GROUP, "dead"] + [d] * 1001)
        self.assertTrue(text.startswith("purge-4:"), text)
        self.assertEqual(self.x("XLEN", self.k("dead")), 1)
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# rate-1
# ---------------------------------------------------------------------------


class Rate1Test(ScriptCase):
    SCRIPT = "rate-1"

    def test_grants_up_to_burst_then_returns_wait(self):
        key = [self.k("rate")]
        interval = 1000000  # one token a second: none is due during the test
        t0 = self.now_us()
        self.assertEqual(self.call(key, [interval, 5, 3]), [3, 0])
        tat = int(self.x("GET", self.k("rate")))
        self.assertAlmostEqual(tat, t0 + 3 * interval, delta=500000)
        self.assertGreater(self.x("PTTL", self.k("rate")), 2000)
        self.assertEqual(self.call(key, [interval, 5, 5]), [2, 0], "only the burst's remainder")
        granted, wait = self.call(key, [interval, 5, 1])
        self.assertEqual(granted, 0)
        self.assertTrue(500 <= wait <= 1000, wait)
        self.assertLessEqual(self.x("PTTL", self.k("rate")), 6000)

    def test_errors_for_arguments_out_of_range(self):
        for args in ([0, 1, 1], [1, 0, 1], [1, 1, 0], ["x", 1, 1]):
            text = self.call_err([self.k("rate")], args)
            self.assertTrue(text.startswith("rate-1:"), text)
        self.assertEqual(self.x("EXISTS", self.k("rate")), 0)


# ---------------------------------------------------------------------------
# cron-fire-2
# ---------------------------------------------------------------------------


class CronFire2Test(ScriptCase):
    SCRIPT = "cron-fire-2"

    def keys(self):
        return [self.k("cron"), self.k("ready")]

    def entry_fields(self, tick):
        return ["type", "report", "payload", b"\xc0", "id", "cron:nightly:%d" % tick, "enqueued_at", str(tick)]

    def test_returns_1_then_0_for_same_or_older_tick(self):
        tick = self.now_ms() - 60000
        code, entry = self.call(self.keys(), ["nightly", tick] + self.entry_fields(tick))
        self.assertEqual(code, 1)
        self.assertEqual(self.entry("ready", entry.decode()), flat(self.entry_fields(tick)))
        self.assertEqual(self.hash("cron"), {"nightly": B(tick)})
        self.assertEqual(self.call(self.keys(), ["nightly", tick] + self.entry_fields(tick)), [0, tick])
        self.assertEqual(self.call(self.keys(), ["nightly", tick - 1] + self.entry_fields(tick - 1)), [0, tick])
        self.assertEqual(self.x("XLEN", self.k("ready")), 1)
        code, _ = self.call(self.keys(), ["nightly", tick + 1] + self.entry_fields(tick + 1))
        self.assertEqual(code, 1)
        self.assertEqual(self.hash("cron"), {"nightly": B(tick + 1)})

    def test_returns_2_for_a_tick_ahead_of_the_server_clock(self):
        now = self.now_ms()
        code, server_now = self.call(self.keys(), ["nightly", now + 60000] + self.entry_fields(now + 60000))
        self.assertEqual(code, 2)
        self.assertAlmostEqual(server_now, now, delta=5000)
        self.assertEqual(self.x("EXISTS", self.k("ready"), self.k("cron")), 0)

    def test_stored_value_not_a_number_or_far_ahead_counts_as_never_fired(self):
        now = self.now_ms()
        for stored in ("garbage", "nan", "inf", str(now + 86400000)):
            self.x("HSET", self.k("cron"), "nightly", stored)
            tick = now - 1000
            code, _ = self.call(self.keys(), ["nightly", tick] + self.entry_fields(tick))
            self.assertEqual(code, 1, stored)
            self.assertEqual(self.hash("cron"), {"nightly": B(tick)})

    def test_stored_tick_slightly_ahead_still_counts(self):
        # Only a stored value more than 2 s ahead of the server's clock (the
        # same 2 s it accepts for a tick) counts as never fired, as the
        # header, scripts/README.md and docs/flow-control.md say: a stored
        # tick 1 s ahead still blocks older ticks.
        now = self.now_ms()
        self.x("HSET", self.k("cron"), "nightly", now + 1000)
        self.assertEqual(self.call(self.keys(), ["nightly", now - 1000] + self.entry_fields(now - 1000)),
                         [0, now + 1000])
        self.assertEqual(self.x("EXISTS", self.k("ready")), 0)

    def test_errors_for_bad_tick_or_fields(self):
        for tick in ("abc", "1e3", "-5", "1000.5", "1" * 16):
            text = self.call_err(self.keys(), ["nightly", tick] + self.entry_fields(1))
            self.assertTrue(text.startswith("cron-fire-2:"), text)
        for fields in ([], ["type"], ["type", "t", "payload"]):
            text = self.call_err(self.keys(), ["nightly", "1000"] + fields)
            self.assertTrue(text.startswith("cron-fire-2:"), text)
        self.assertEqual(self.x("EXISTS", self.k("ready"), self.k("cron")), 0)

    def test_xadd_error_changes_nothing(self):
        self.x("SET", self.k("ready"), "x")
        text = self.call_err(self.keys(), ["nightly", "1000"] + self.entry_fields(1000))
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        self.assertEqual(self.x("EXISTS", self.k("cron")), 0)


# ---------------------------------------------------------------------------
# enqueue-6
# ---------------------------------------------------------------------------


class Enqueue6Test(ScriptCase):
    SCRIPT = "enqueue-6"

    def keys(self, job_id, key="u1"):
        return [self.k("ready"), self.k("scheduled"), self.k("stats"), self.k("unique:" + key),
                self.k("job:" + job_id), self.k("done:" + job_id)]

    def fields(self, job_id, mode="done", **extra):
        return self.job(id=job_id, unique_key="u1", unique_for=mode, record_ms="86400000", **extra)

    def test_ready_now_with_key_and_record(self):
        self.x("RPUSH", self.k("done:j1"), "completed")  # an old final state
        res = self.call(self.keys("j1"), ["j1", "done", "0", "86400000", "1000", "0", "conf.job"]
                        + self.fields("j1"))
        self.assertEqual(res, [1, b"j1"])
        (entry_id, fields), = self.entries("ready")
        self.assertEqual(fields, flat(self.fields("j1")))
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1")
        self.assertEqual(self.x("PTTL", self.k("unique:u1")), -1, "lifetime 0: until released")
        rec = self.hash("job:j1")
        self.assertEqual(rec, {"id": b"j1", "type": b"conf.job", "state": b"ready", "attempt": b"0",
                               "enqueued_at": b"1000", "run_at": b"1000", "entry": B(entry_id),
                               "keep_ms": b"86400000", "unique_lock": B(self.k("unique:u1"))})
        self.assertEqual(self.x("EXISTS", self.k("done:j1")), 0, "old done list deleted")
        self.assertEqual(self.stats(), {})

    def test_delayed_with_ttl_key(self):
        m = pack({"type": "conf.job", "payload": b"\x90", "id": "j1", "enqueued_at": "1000",
                  "unique_key": "u1", "unique_for": "ttl", "unique_ttl_ms": "60000", "record_ms": "5000"})
        res = self.call(self.keys("j1"), ["j1", "ttl", "60000", "5000", "1000", "9000", "conf.job", m])
        self.assertEqual(res, [1, b"j1"])
        self.assertEqual(self.zset("scheduled"), [(m, 9000.0)])
        self.assertEqual(self.x("EXISTS", self.k("ready")), 0)
        self.assertTrue(55000 < self.x("PTTL", self.k("unique:u1")) <= 60000)
        rec = self.hash("job:j1")
        self.assertEqual((rec["state"], rec["run_at"], rec["entry"]), (b"scheduled", b"9000", b""))
        self.assertNotIn("unique_lock", rec, "a ttl key is not released by cancel-4")

    def test_unique_key_without_record(self):
        res = self.call(self.keys("j1"), ["j1", "queued", "0", "0", "1000", "0", "conf.job"]
                        + self.job(id="j1", unique_key="u1", unique_for="queued"))
        self.assertEqual(res, [1, b"j1"])
        self.assertEqual(self.x("EXISTS", self.k("job:j1")), 0)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1")

    def test_returns_0_and_holder_for_a_duplicate(self):
        self.x("SET", self.k("unique:u1"), "holder")
        res = self.call(self.keys("j2"), ["j2", "done", "0", "86400000", "1000", "0", "conf.job"]
                        + self.fields("j2"))
        self.assertEqual(res, [0, b"holder"])
        self.assertEqual(self.x("EXISTS", self.k("ready"), self.k("job:j2")), 0)
        self.assertEqual(self.stats(), {"duplicates": 1})

    def test_returns_1_adding_nothing_when_retried(self):
        # The key holds this very id (no record).
        args = ["j1", "queued", "0", "0", "1000", "0", "conf.job"] + self.job(id="j1", unique_key="u1",
                                                                             unique_for="queued")
        self.assertEqual(self.call(self.keys("j1"), args), [1, b"j1"])
        self.assertEqual(self.call(self.keys("j1"), args), [1, b"j1"])
        # A record that is not final, no key.
        args2 = ["j2", "", "0", "86400000", "1000", "0", "conf.job"] + self.job(id="j2", record_ms="86400000")
        self.assertEqual(self.call(self.keys("j2", "unused"), args2), [1, b"j2"])
        self.assertEqual(self.call(self.keys("j2", "unused"), args2), [1, b"j2"])
        self.assertEqual(self.x("XLEN", self.k("ready")), 2)
        self.assertEqual(self.stats(), {})

    def test_final_record_is_replaced(self):
        self.x("HSET", self.k("job:j1"), "id", "j1", "state", "completed", "result", "old")
        self.x("RPUSH", self.k("done:j1"), "completed")
        args = ["j1", "", "0", "5000", "1000", "0", "conf.job"] + self.job(id="j1", record_ms="5000")
        self.assertEqual(self.call(self.keys("j1", "unused"), args), [1, b"j1"])
        rec = self.hash("job:j1")
        self.assertEqual(rec["state"], b"ready")
        self.assertNotIn("result", rec)
        self.assertNotIn("unique_lock", rec)
        self.assertEqual(self.x("EXISTS", self.k("done:j1")), 0)

    def test_errors_with_nothing_changed(self):
        for lock, keep in (("1.5", "0"), ("0", "abc"), ("-1", "0"), ("0", "1" * 16)):
            text = self.call_err(self.keys("j1"), ["j1", "done", lock, keep, "1000", "0", "conf.job"]
                                 + self.fields("j1"))
            self.assertTrue(text.startswith("enqueue-6:"), text)
        self.x("SET", self.k("ready"), "x")
        text = self.call_err(self.keys("j1"), ["j1", "done", "0", "5000", "1000", "0", "conf.job"]
                             + self.fields("j1"))
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        self.x("SET", self.k("scheduled"), "x")
        text = self.call_err(self.keys("j1"), ["j1", "done", "0", "5000", "1000", "9000", "conf.job",
                                               pack({"id": "j1"})])
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        self.assertEqual(self.x("EXISTS", self.k("unique:u1"), self.k("job:j1")), 0)
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# promote-4
# ---------------------------------------------------------------------------


class Promote4Test(ScriptCase):
    SCRIPT = "promote-4"

    def keys(self):
        return [self.k("scheduled"), self.k("ready"), self.k("dead"), self.k("stats")]

    def test_moves_due_members_in_order_and_reports_next_due(self):
        a = pack({"type": "a", "payload": b"\x90", "id": "ja", "enqueued_at": "1", "n": 7,
                  "neg": -3, "big": 2 ** 40, "t": True, "f": False})
        b = pack({"type": "b", "payload": b"\x90", "id": "jb"})
        later = pack({"type": "c", "payload": b"\x90", "id": "jc"})
        self.x("ZADD", self.k("scheduled"), 100, a, 200, b, 5000, later)
        self.assertEqual(self.call(self.keys(), [1000, 10, 0]), [2, 5000, 0])
        ready = self.entries("ready")
        self.assertEqual([e[1] for e in ready], [
            flat(["type", "a", "payload", b"\x90", "id", "ja", "enqueued_at", "1", "n", "7",
                  "neg", "-3", "big", str(2 ** 40), "t", "1", "f", "0"]),
            flat(["type", "b", "payload", b"\x90", "id", "jb"]),
        ])
        self.assertEqual(self.zset("scheduled"), [(later, 5000.0)])
        self.assertEqual(self.stats(), {}, "moves to ready are not counted")
        # The last one: due at exactly now; the set is then empty.
        self.assertEqual(self.call(self.keys(), [5000, 10, 0]), [1, -1, 0])

    def test_scalar_types_as_docs_wire_format_lists(self):
        # docs/wire-format.md, "What the promoter accepts": integers of any
        # width within +-2^53 become decimal text, true/false 1/0, bin and
        # int keys are accepted as names; duplicates kept, in order.
        def i64(n):
            return b"\xd3" + n.to_bytes(8, "big", signed=True)
        def u64(n):
            return b"\xcf" + n.to_bytes(8, "big")
        def u8(n):
            return b"\xcc" + bytes([n])
        def s(t):
            return bytes([0xa0 + len(t)]) + t.encode()
        pairs = [
            (s("type"), s("t")), (s("payload"), b"\xc4\x01\x90"),
            (s("a"), u64(2 ** 53)), (s("b"), i64(-(2 ** 53))), (s("c"), u64(5)), (s("d"), i64(-7)),
            (s("e"), u8(200)), (s("f"), b"\xd0\xf9"), (s("g"), b"\xd1\xfe\xd4"), (s("h"), b"\xd2\xff\xff\xff\xfe"),
            (s("i"), b"\xce\xff\xff\xff\xff"), (s("j"), b"\xcd\x01\x2c"),
            (b"\xc4\x03bin", s("x")), (b"\x05", s("int key")), (b"\xc3", s("bool key")), (s("a"), s("dup")),
        ]
        member = b"\xde" + len(pairs).to_bytes(2, "big") + b"".join(k + v for k, v in pairs)
        self.x("ZADD", self.k("scheduled"), 1, member)
        self.assertEqual(self.call(self.keys(), [1000, 10, 0]), [1, -1, 0])
        (_, fields), = self.entries("ready")
        self.assertEqual(fields, flat([
            "type", "t", "payload", b"\x90", "a", "9007199254740992", "b", "-9007199254740992", "c", "5",
            "d", "-7", "e", "200", "f", "-7", "g", "-300", "h", "-2", "i", "4294967295", "j", "300",
            "bin", "x", "5", "int key", "1", "bool key", "a", "dup"]))
        for bad in (u64(2 ** 53 + 1), i64(-(2 ** 53) - 1), b"\xc1", b"\xca\x00\x00\x00\x00",
                    b"\xd4\x01\x00", b"\x90", b"\xc0"):
            self.x("ZADD", self.k("scheduled"), 1, b"\x82" + s("type") + s("t") + s("x") + bad)
        self.assertEqual(self.call(self.keys(), [1000, 10, 0]), [0, -1, 7])

    def test_limit_and_nothing_due(self):
        for i in range(3):
            self.x("ZADD", self.k("scheduled"), 100 + i, pack({"type": "t", "payload": b"\x90", "id": str(i)}))
        self.assertEqual(self.call(self.keys(), [1000, 2, 0]), [2, 102, 0], "full batch: call again")
        self.assertEqual(self.call(self.keys(), [50, 2, 0]), [0, 102, 0], "nothing due")
        self.assertEqual(self.call(self.keys(), [1000, 2, 0]), [1, -1, 0])
        self.assertEqual(self.call(self.keys(), [1000, 2, 0]), [0, -1, 0])

    def test_malformed_members_go_to_dead_as_raw(self):
        wide = {"f%d" % i: "v" for i in range(1025)}
        bad = [
            msgpack.packb(["type", "t"]),                               # not a map
            pack({"type": "t", "x": 1.5}),                              # a float
            pack({"type": "t", "x": None}),                             # nil
            pack({"type": "t", "x": {"nested": "map"}}),                # nested map
            pack({"type": "t", "x": 2 ** 53 + 1}),                      # beyond 2^53
            pack({"type": "t", "payload": b"abc"})[:-1],                # truncated
            pack({"type": "t"}) + b"\x00",                              # trailing bytes
            b"\xdf\xff\xff\xff\xff\xa1a",                               # lying map32 header
            pack({}),                                                   # empty map
            pack(wide),                                                 # > 1024 fields
        ]
        for i, m in enumerate(bad):
            self.x("ZADD", self.k("scheduled"), 100 + i, m)
        good = pack({"type": "t", "payload": b"\x90", "id": "ok"})
        self.x("ZADD", self.k("scheduled"), 50, good)
        self.assertEqual(self.call(self.keys(), [1000, 100, 0]), [1, -1, len(bad)])
        dead = self.entries("dead")
        self.assertEqual(len(dead), len(bad))
        for m, (_, fields) in zip(bad, dead):
            d = {fields[i].decode(): fields[i + 1] for i in range(0, len(fields), 2)}
            self.assertEqual([f.decode() for f in fields[0::2]],
                             ["raw", "reason", "error_class", "error", "failed_at"])
            self.assertEqual(d["raw"], m, "the member's bytes, verbatim")
            self.assertEqual((d["reason"], d["error_class"], d["failed_at"]), (b"malformed", b"malformed", b"1000"))
            self.assertTrue(d["error"].startswith(b"scheduled member"), d["error"])
        self.assertIn(b"1024", dead[-1][1][7])
        self.assertEqual(self.stats(), {"dead": len(bad), "dead_scheduled": len(bad)})
        self.assertEqual(self.zset("scheduled"), [])

    def test_dead_trim_is_counted(self):
        pipe = self.r.pipeline(transaction=False)
        for _ in range(250):
            pipe.execute_command("XADD", self.k("dead"), "*", "old", "1")
        pipe.execute()
        self.x("ZADD", self.k("scheduled"), 1, b"\xc0")
        self.assertEqual(self.call(self.keys(), [1000, 10, 10]), [0, -1, 1])
        after = self.x("XLEN", self.k("dead"))
        self.assertLess(after, 251)
        self.assertEqual(self.stats(), {"dead": 1, "dead_scheduled": 1, "dead_trimmed": 251 - after})

    def test_add_error_is_returned_and_earlier_moves_stay(self):
        first = pack({"type": "t", "payload": b"\x90", "id": "1"})
        second = pack({"type": "t", "payload": b"\x90", "id": "2"})
        self.x("ZADD", self.k("scheduled"), 1, b"\xc0", 2, first, 3, second)
        self.exhaust("ready", room=1)
        self.assertExhausted(self.call_err(self.keys(), [1000, 10, 0]))
        self.assertEqual(self.zset("scheduled"), [(second, 3.0)])
        self.assertEqual(self.x("XLEN", self.k("dead")), 1)
        self.assertEqual(self.stats(), {"dead": 1, "dead_scheduled": 1}, "the malformed one moved before")
        self.x("SET", self.k("dead"), "x")
        self.x("ZADD", self.k("scheduled"), 0, b"\xc0")
        text = self.call_err(self.keys(), [1000, 10, 0])
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        self.assertEqual(len(self.zset("scheduled")), 2)


# ---------------------------------------------------------------------------
# reclaim-3
# ---------------------------------------------------------------------------


class Reclaim3Test(ScriptCase):
    SCRIPT = "reclaim-3"

    def keys(self):
        return [self.k("ready"), self.k("dead"), self.k("stats")]

    def args(self, cursor="0-0", count=100, max_deliveries=3, maxlen=0, min_idle=30000):
        return [GROUP, "new", min_idle, cursor, count, max_deliveries, maxlen, "1735689600000", "w-new", self.q]

    def stale(self, fields, deliveries=1, owner="old"):
        """An entry pending on `owner`, idle 100 s, delivered `deliveries` times."""
        id = self.pending_job(fields, owner)
        self.x("XCLAIM", self.k("ready"), GROUP, owner, 0, id, "IDLE", 100000, "RETRYCOUNT", deliveries, "JUSTID")
        return id

    def test_claims_idle_entries_with_delivery_count(self):
        self.mkgroup()
        a = self.stale(self.job(1), deliveries=1)
        b = self.stale(self.job(2), deliveries=2)
        fresh = self.pending_job(self.job(3), "old")  # not idle long enough
        cursor, jobs, abandoned, failed, tracked = self.call(self.keys(), self.args())
        self.assertEqual(cursor, b"0-0")
        self.assertEqual(jobs, [[B(a), 2, flat(self.job(1))], [B(b), 3, flat(self.job(2))]])
        self.assertEqual((abandoned, failed, tracked), (0, 0, []))
        pel = self.pel()
        self.assertEqual((pel[a][0], pel[b][0], pel[fresh][0]), ("new", "new", "old"))
        self.assertEqual(self.stats(), {})

    def test_cursor_pages_through_a_pass(self):
        self.mkgroup()
        ids = [self.stale(self.job(i)) for i in range(3)]
        seen, cursor = [], "0-0"
        for _ in range(5):
            cursor, jobs, _, _, _ = self.call(self.keys(), self.args(cursor=cursor, count=2))
            seen += [j[0].decode() for j in jobs]
            cursor = cursor.decode()
            if cursor == "0-0":
                break
        self.assertEqual(seen, ids)
        self.assertEqual(cursor, "0-0")

    def test_abandons_entries_over_max_deliveries(self):
        self.mkgroup()
        poison = self.stale(self.job(1, tenant="acme"), deliveries=3)
        tracked_id = self.stale(self.job(2, id="j2", unique_key="u", unique_for="done", record_ms="1000",
                                         batch="b", group="g"), deliveries=5)
        cursor, jobs, abandoned, failed, tracked = self.call(self.keys(), self.args(max_deliveries=3))
        self.assertEqual((jobs, abandoned, failed), ([], 2, 0))
        err = "delivered %d times without an outcome (worker crashed or was killed)"
        ctx = lambda n: ["reason", "abandoned", "error_class", "abandoned", "error", err % n,
                         "deliveries", str(n), "failed_at", "1735689600000", "worker", "w-new", "queue", self.q]
        dead = self.entries("dead")
        self.assertEqual(dead[0][1], flat(self.job(1, tenant="acme") + ["id", poison, "enqueued_at",
                                                                           poison.split("-")[0]] + ctx(4)))
        self.assertEqual(dead[1][1], flat(self.job(2, id="j2", unique_key="u", unique_for="done",
                                                   record_ms="1000", batch="b", group="g")
                                          + ["enqueued_at", tracked_id.split("-")[0]] + ctx(6)))
        # The fifth element carries `group` too (header and README): the
        # lifecycle fields in the entry's order, then `id`.
        self.assertEqual(tracked, [flat(["unique_key", "u", "unique_for", "done", "record_ms", "1000",
                                         "batch", "b", "group", "g", "id", "j2"])])
        self.assertEqual(self.x("XLEN", self.k("ready")), 0)
        self.assertEqual(self.pel(), {})
        self.assertEqual(self.stats(), {"dead": 2})

    def test_abandoned_wide_entry_is_packed_into_raw(self):
        self.mkgroup()
        wide = []
        for i in range(1025):
            wide += ["f%d" % i, "v%d" % i]
        wide += ["f0", "dup"]
        id = self.stale(wide, deliveries=9)
        _, jobs, abandoned, failed, tracked = self.call(self.keys(), self.args(max_deliveries=3))
        self.assertEqual((jobs, abandoned, failed, tracked), ([], 1, 0, []))
        (_, fields), = self.entries("dead")
        self.assertEqual([f.decode() for f in fields[0::2]],
                         ["raw", "id", "enqueued_at", "reason", "error_class", "error", "deliveries",
                          "failed_at", "worker", "queue"])
        self.assertEqual(fields[3], B(id))
        raw = fields[1]
        # A map32/map16 of str names and bin values, in order, duplicates
        # kept: decode it pair by pair.
        unp = msgpack.Unpacker(raw=True)
        unp.feed(raw)
        n = unp.read_map_header()
        pairs = [(unp.unpack(), unp.unpack()) for _ in range(n)]
        self.assertEqual(pairs, [(B(wide[i]), B(wide[i + 1])) for i in range(0, len(wide), 2)])
        self.assertEqual(raw[0], 0xde)
        self.assertEqual(raw[3], 0xa2, "names as str")
        self.assertEqual(raw[6], 0xc4, "values as bin")

    def test_deleted_pending_entries_are_dropped(self):
        self.mkgroup()
        gone = self.stale(self.job(1))
        self.x("XDEL", self.k("ready"), gone)
        kept = self.stale(self.job(2))
        _, jobs, abandoned, failed, _ = self.call(self.keys(), self.args())
        self.assertEqual([j[0] for j in jobs], [B(kept)])
        self.assertEqual((abandoned, failed), (0, 0))
        self.assertEqual(list(self.pel()), [kept])

    def test_failed_dead_add_leaves_entry_pending_and_counts_failed(self):
        self.mkgroup()
        id = self.stale(self.job(), deliveries=5)
        ok = self.stale(self.job(), deliveries=1)
        self.x("SET", self.k("dead"), "x")
        _, jobs, abandoned, failed, tracked = self.call(self.keys(), self.args(max_deliveries=3))
        self.assertEqual(([j[0] for j in jobs], abandoned, failed, tracked), ([B(ok)], 0, 1, []))
        self.assertEqual(self.pel()[id][0], "new", "claimed by the caller, not returned")
        self.assertIsNotNone(self.entry("ready", id))
        self.assertEqual(self.stats(), {})

    def test_dead_trim_is_counted(self):
        self.mkgroup()
        pipe = self.r.pipeline(transaction=False)
        for _ in range(250):
            pipe.execute_command("XADD", self.k("dead"), "*", "old", "1")
        pipe.execute()
        self.stale(self.job(), deliveries=5)
        _, _, abandoned, _, _ = self.call(self.keys(), self.args(max_deliveries=3, maxlen=10))
        self.assertEqual(abandoned, 1)
        after = self.x("XLEN", self.k("dead"))
        self.assertEqual(self.stats(), {"dead": 1, "dead_trimmed": 251 - after})


# ---------------------------------------------------------------------------
# admit-4
# ---------------------------------------------------------------------------


class Admit4Test(ScriptCase):
    SCRIPT = "admit-4"

    def keys(self):
        return [self.k("ready"), self.k("dead"), self.k("stats"), self.k("limits")]

    def jobs_args(self, *jobs):
        out = []
        for f in jobs:
            out += [len(f) // 2] + f
        return out

    def args(self, now, *jobs, count="1"):
        return [self.q, count, now, len(jobs)] + self.jobs_args(*jobs)

    def test_no_limits_is_a_plain_add(self):
        now = self.now_ms()
        res = self.call(self.keys(), self.args(now, self.job(1), self.job(2, id="x")))
        self.assertEqual(res[:2], [1, 0])
        self.assertEqual([B(e[0]) for e in self.entries("ready")], res[2:])
        self.assertEqual([e[1] for e in self.entries("ready")], [flat(self.job(1)), flat(self.job(2, id="x"))])
        self.assertEqual(self.stats(), {})

    def test_reject_refuses_over_max_ready_and_counts(self):
        self.x("HSET", self.k("limits"), "max_ready", "2", "policy", "reject")
        self.mkgroup()
        self.pending_job(self.job())  # delivered: not in the backlog
        self.xadd(self.job())
        now = self.now_ms()
        res = self.call(self.keys(), self.args(now, self.job()))
        self.assertEqual(res[:2], [1, 0], "backlog 1 + 1 <= 2")
        self.assertEqual(self.call(self.keys(), self.args(now, self.job())),
                         [0, 2, 2, 0, -1, b"reject"])
        self.assertEqual(self.stats(), {"rejected": 1})
        self.assertEqual(self.call(self.keys(), self.args(now, self.job(), self.job(), count="0")),
                         [0, 2, 2, 0, -1, b"reject"])
        self.assertEqual(self.stats(), {"rejected": 1}, "ARGV[2] 0: not counted")
        self.assertEqual(self.x("XLEN", self.k("ready")), 3)

    def test_wait_and_age_limit(self):
        now = self.now_ms()
        self.x("HSET", self.k("limits"), "max_age_ms", "5000", "policy", "wait")
        self.xadd(self.job(), id="%d-0" % (now - 60000))
        self.assertEqual(self.call(self.keys(), self.args(now, self.job())),
                         [0, 1, -1, 60000, 5000, b"wait"])
        self.assertEqual(self.stats(), {"rejected": 1})
        self.assertEqual(self.x("XLEN", self.k("ready")), 1)

    def test_shed_drops_oldest_undelivered(self):
        self.x("HSET", self.k("limits"), "max_ready", "2", "policy", "shed")
        self.mkgroup()
        held = self.pending_job(self.job(1))
        b = self.xadd(self.job(2))
        c = self.xadd(self.job(3))
        res = self.call(self.keys(), self.args(self.now_ms(), self.job(4)))
        self.assertEqual(res[:2], [1, 1])
        self.assertEqual([e[0] for e in self.entries("ready")], [held, c, res[2].decode()])
        self.assertNotEqual(b, c)
        self.assertEqual(self.stats(), {"shed": 1, "discarded": 1})

    def test_shed_to_dead_skips_tracked_jobs(self):
        self.x("HSET", self.k("limits"), "max_ready", "2", "policy", "shed", "shed_to_dead", "1")
        self.mkgroup()
        tracked = self.xadd(self.job(1, unique_key="k"))
        c = self.xadd(self.job(2))
        now = self.now_ms()
        res = self.call(self.keys(), self.args(now, self.job(4)))
        self.assertEqual(res[:2], [1, 1])
        self.assertIsNotNone(self.entry("ready", tracked), "a job with state elsewhere is never shed")
        self.assertIsNone(self.entry("ready", c))
        (_, fields), = self.entries("dead")
        self.assertEqual(fields, flat(self.job(2) + ["id", c, "enqueued_at", c.split("-")[0],
                                                     "reason", "shed", "error_class", "shed",
                                                     "error", "shed: backlog over max_ready 2",
                                                     "deliveries", "0", "failed_at", str(now),
                                                     "worker", "", "queue", self.q]))
        self.assertEqual(self.stats(), {"shed": 1, "dead": 1})

    def test_shed_by_age_and_failed_dead_add_stays(self):
        now = self.now_ms()
        self.x("HSET", self.k("limits"), "max_age_ms", "5000", "policy", "shed", "shed_to_dead", "1")
        old = self.xadd(self.job(1), id="%d-0" % (now - 60000))
        res = self.call(self.keys(), self.args(now, self.job(2)))
        self.assertEqual(res[:2], [1, 1])
        self.assertIsNone(self.entry("ready", old))
        (_, fields), = self.entries("dead")
        self.assertEqual(fields[fields.index(b"error") + 1], b"shed: older than max_age_ms 5000")
        # The dead add fails: the entry is not shed, the jobs are still added.
        self.x("DEL", self.k("dead"))
        self.x("SET", self.k("dead"), "x")
        self.x("DEL", self.k("ready"))
        old2 = self.xadd(self.job(3), id="%d-0" % (now - 60000))
        res = self.call(self.keys(), self.args(now, self.job(4)))
        self.assertEqual(res[:2], [1, 0])
        self.assertIsNotNone(self.entry("ready", old2))
        self.assertEqual(self.x("XLEN", self.k("ready")), 2)
        self.assertEqual(self.stats(), {"shed": 1, "dead": 1})

    def test_errors_for_bad_arguments(self):
        now = self.now_ms()
        bad = [
            [self.q, "1", "x", 1, 1, "a", "b"],          # now
            [self.q, "1", now, 0],                       # n
            [self.q, "1", now, 1001, 1, "a", "b"],
            [self.q, "1", now, "1.5", 1, "a", "b"],
            [self.q, "1", now, 1, 0],                    # f
            [self.q, "1", now, 1, 2, "a", "b"],          # f past the end
            [self.q, "1", now, 1, "1.5", "a", "b"],
            [self.q, "1", now, 1, 1, "a", "b", "extra"],  # extra arguments
        ]
        for args in bad:
            text = self.call_err(self.keys(), args)
            self.assertTrue(text.startswith("admit-4:"), (args, text))
        self.assertEqual(self.x("EXISTS", self.k("ready")), 0)

    def test_xadd_error_keeps_jobs_before_it(self):
        self.exhaust("ready", room=1)
        text = self.call_err(self.keys(), self.args(self.now_ms(), self.job(1), self.job(2)))
        self.assertExhausted(text)
        self.assertEqual(self.x("XLEN", self.k("ready")), 2, "the marker and the first job")


# ---------------------------------------------------------------------------
# group-enqueue-6 / group-start-6
# ---------------------------------------------------------------------------


def _header(name):
    with open(os.path.join(SCRIPTS_DIR, name + ".lua"), encoding="utf-8") as f:
        m = re.match(r"\s*--\[\[(.*?)\]\]", f.read(), re.S)
    return m.group(1) if m else ""


def grouped_field(group, job_id):
    """The field of PREFIX:{Q}:grouped for a job, as the group scripts'
    headers document it: `job id` (KEYS[3] "hash: job id -> group"), or,
    where the header says "<#group>:<group>:<job id>", the group's length
    in bytes, the group and the id."""
    if "<#group>:<group>:<job id>" in _header("group-start-6"):
        return "%d:%s:%s" % (len(group.encode()), group, job_id)
    return job_id


def group_keys(case, group="g"):
    return [case.k("ready"), case.k("groups"), case.k("grouped"), case.k("group:" + group),
            case.k("meta"), case.k("stats")]


class GroupEnqueue6Test(ScriptCase):
    SCRIPT = "group-enqueue-6"

    def gjob(self, job_id, group="g"):
        return self.job(id=job_id, group=group)

    def args(self, *ids, group="g"):
        out = [group, len(ids)]
        for i in ids:
            f = self.gjob(i, group)
            out += [i, len(f) // 2] + f
        return out

    def test_admits_up_to_concurrency_and_parks_the_rest(self):
        self.assertEqual(self.call(group_keys(self), self.args("j1", "j2", "j3")), [1, 2])
        self.assertEqual([e[1] for e in self.entries("ready")], [flat(self.gjob("j1"))])
        self.assertEqual([e[1] for e in self.entries("group:g")], [flat(self.gjob("j2")), flat(self.gjob("j3"))])
        self.assertEqual(self.hash("groups"), {"g": b"1"})
        self.assertEqual(self.hash("grouped"), {grouped_field("g", "j1"): b"g"})
        self.assertEqual(self.stats(), {"group_waiting": 2})
        # A retried call for an admitted job adds nothing.
        self.assertEqual(self.call(group_keys(self), self.args("j1")), [1, 0])
        self.assertEqual(self.x("XLEN", self.k("ready")), 1)
        # Waiting jobs exist: a new one waits behind them.
        self.assertEqual(self.call(group_keys(self), self.args("j4")), [0, 1])
        self.assertEqual(self.stats(), {"group_waiting": 3})

    def test_group_concurrency_from_meta(self):
        self.x("HSET", self.k("meta"), "group_concurrency", "2")
        self.assertEqual(self.call(group_keys(self), self.args("j1", "j2", "j3")), [2, 1])
        self.assertEqual(self.hash("groups"), {"g": b"2"})

    def test_waiting_jobs_are_let_in_first(self):
        # An earlier release failed: a job waits while the group has room.
        self.xadd(self.gjob("old"), key="group:g")
        self.x("HSET", self.k("stats"), "group_waiting", "1")
        self.assertEqual(self.call(group_keys(self), self.args("new")), [0, 1])
        self.assertEqual([e[1] for e in self.entries("ready")], [flat(self.gjob("old"))])
        self.assertEqual([e[1] for e in self.entries("group:g")], [flat(self.gjob("new"))])
        self.assertEqual(self.hash("grouped"), {grouped_field("g", "old"): b"g"})
        self.assertEqual(self.stats(), {"group_waiting": 1})

    def test_errors_for_bad_arguments_change_nothing(self):
        f = self.gjob("j1")
        bad = [
            ["", 1, "j1", len(f) // 2] + f,
            ["g" * 257, 1, "j1", len(f) // 2] + f,
            ["g", 0],
            ["g", 1001],
            ["g", 1, "", len(f) // 2] + f,
            ["g", 1, "j1", 0],
            ["g", 1, "j1", len(f) // 2 + 1] + f,
            ["g", 1, "j2", len(f) // 2] + f,                    # id field differs
            ["g", 1, "j1", 2, "type", "t", "id", "j1"],         # no group field
            ["g", 1, "j1", len(f) // 2] + f + ["extra"],
            ["g", 2, "j1", len(f) // 2] + f + ["j2", 2, "type", "t", "id", "j2"],  # 2nd job bad
        ]
        for args in bad:
            text = self.call_err(group_keys(self), args)
            self.assertTrue(text.startswith("group-enqueue-6:"), (args, text))
        self.assertEqual(self.x("EXISTS", self.k("ready"), self.k("groups"), self.k("grouped"),
                                self.k("group:g"), self.k("stats")), 0)

    def test_xadd_error_keeps_jobs_before_it(self):
        self.x("HSET", self.k("meta"), "group_concurrency", "5")
        self.exhaust("ready", room=1)
        self.assertExhausted(self.call_err(group_keys(self), self.args("j1", "j2")))
        self.assertEqual(self.hash("grouped"), {grouped_field("g", "j1"): b"g"})
        self.assertEqual(self.hash("groups"), {"g": b"1"})


class GroupStart6Test(ScriptCase):
    SCRIPT = "group-start-6"

    def gjob(self, job_id, group="g"):
        return self.job(id=job_id, group=group)

    def args(self, entry, job_id, group="g", consumer="c1"):
        return [GROUP, consumer, entry, group, job_id]

    def test_returns_1_for_an_admitted_job(self):
        self.mkgroup()
        e = self.pending_job(self.gjob("j1"))
        self.x("HSET", self.k("grouped"), grouped_field("g", "j1"), "g")
        self.x("HSET", self.k("groups"), "g", "1")
        self.assertEqual(self.call(group_keys(self), self.args(e, "j1")), 1)
        self.assertEqual(self.hash("groups"), {"g": b"1"}, "nothing changed")
        self.assertIn(e, self.pel())

    def test_returns_1_admitting_when_room(self):
        self.mkgroup()
        e = self.pending_job(self.gjob("j1"))
        self.assertEqual(self.call(group_keys(self), self.args(e, "j1")), 1)
        self.assertEqual(self.hash("grouped"), {grouped_field("g", "j1"): b"g"})
        self.assertEqual(self.hash("groups"), {"g": b"1"})
        self.assertIn(e, self.pel())

    def test_returns_2_parking_behind_the_group(self):
        self.mkgroup()
        self.x("HSET", self.k("groups"), "g", "1")
        e = self.pending_job(self.job(group="g"))  # no id, no enqueued_at
        self.assertEqual(self.call(group_keys(self), self.args(e, e)), 2)
        self.assertIsNone(self.entry("ready", e))
        self.assertEqual(self.pel(), {})
        self.assertEqual([x[1] for x in self.entries("group:g")],
                         [flat(self.job(group="g") + ["id", e, "enqueued_at", e.split("-")[0]])])
        self.assertEqual(self.stats(), {"group_waiting": 1, "group_parked": 1})
        self.assertEqual(self.hash("groups"), {"g": b"1"})

    def test_returns_2_and_lets_the_oldest_waiting_job_in(self):
        self.mkgroup()
        self.xadd(self.gjob("old"), key="group:g")  # room, but a job waits
        e = self.pending_job(self.gjob("j1"))
        self.assertEqual(self.call(group_keys(self), self.args(e, "j1")), 2)
        self.assertEqual([x[1] for x in self.entries("ready")], [flat(self.gjob("old"))])
        self.assertEqual([x[1] for x in self.entries("group:g")],
                         [flat(self.gjob("j1") + ["enqueued_at", e.split("-")[0]])])
        self.assertEqual(self.hash("grouped"), {grouped_field("g", "old"): b"g"})
        self.assertEqual(self.hash("groups"), {"g": b"1"})
        self.assertEqual(self.stats(), {"group_waiting": 0, "group_parked": 1})

    def test_returns_0_when_not_owned(self):
        self.mkgroup()
        e = self.pending_job(self.gjob("j1"), "c2")
        self.assertEqual(self.call(group_keys(self), self.args(e, "j1")), 0)
        self.assertEqual(self.x("EXISTS", self.k("groups"), self.k("grouped")), 0)

    def test_returns_0_when_owned_entry_was_deleted(self):
        # 0 also when the entry is pending on this consumer but was deleted
        # from the stream and would have to wait (nothing to park), leaving
        # it in the PEL (header and README say so).
        self.mkgroup()
        self.x("HSET", self.k("groups"), "g", "1")
        e = self.pending_job(self.gjob("j1"))
        self.x("XDEL", self.k("ready"), e)
        self.assertEqual(self.call(group_keys(self), self.args(e, "j1")), 0)
        self.assertIn(e, self.pel())

    def test_xadd_error_changes_nothing(self):
        self.mkgroup()
        self.x("HSET", self.k("groups"), "g", "1")
        self.exhaust("group:g")
        e = self.pending_job(self.gjob("j1"))
        self.assertExhausted(self.call_err(group_keys(self), self.args(e, "j1")))
        self.assertIn(e, self.pel())
        self.assertIsNotNone(self.entry("ready", e))
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# throttle-6
# ---------------------------------------------------------------------------


class Throttle6Test(ScriptCase):
    SCRIPT = "throttle-6"

    def keys(self, type_key="rate:type:T", rate_key="rate:key:K"):
        return [self.k("ready"), self.k("scheduled"), self.k("stats"), self.k("holds"),
                self.k(type_key), self.k(rate_key)]

    def member(self, entry, job_id):
        return pack({"type": "T", "payload": b"\x90", "id": job_id, "enqueued_at": "1", "prev_entry": entry})

    def args(self, entry, job_id, hold="", ti=0, tb=1, ki=0, kb=1, spread=0, consumer="c1"):
        return [GROUP, consumer, entry, self.member(entry, job_id), hold, ti, tb, ki, kb, spread, job_id]

    def test_run_then_defer_with_reservation_then_run_on_reservation(self):
        self.mkgroup()
        second = 1000000
        e1 = self.pending_job(self.job(id="j1"))
        t0 = self.now_us()
        self.assertEqual(self.call(self.keys(), self.args(e1, "j1", ti=second)), [0, 0])
        self.assertIn(e1, self.pel(), "run: the entry stays with the worker")
        tat = int(self.hash("rate:type:T")["tat"])
        self.assertAlmostEqual(tat, t0 + second, delta=500000)
        self.assertTrue(60000 < self.x("PTTL", self.k("rate:type:T")) <= 62000)
        # No token left (burst 1): deferred to the next token.
        e2 = self.pending_job(self.job(id="j2"))
        code, due = self.call(self.keys(), self.args(e2, "j2", ti=second))
        self.assertEqual(code, 1)
        self.assertAlmostEqual(due, tat // 1000, delta=5)
        self.assertEqual(self.zset("scheduled"), [(self.member(e2, "j2"), float(due))])
        self.assertIsNone(self.entry("ready", e2))
        self.assertNotIn(e2, self.pel())
        bucket = self.hash("rate:type:T")
        self.assertEqual(int(bucket["r:j2"]), tat, "reserved the next token")
        self.assertEqual(int(bucket["tat"]), tat + second)
        self.assertEqual(self.stats(), {"throttled": 1})
        # The deferred job comes back early: its reservation lets it run.
        e3 = self.pending_job(self.job(id="j2"))
        self.assertEqual(self.call(self.keys(), self.args(e3, "j2", ti=second)), [0, 0])
        bucket = self.hash("rate:type:T")
        self.assertNotIn("r:j2", bucket)
        self.assertEqual(int(bucket["tat"]), tat + second, "a reservation takes no new token")

    def test_defer_spread_is_up_to_half_an_interval(self):
        self.mkgroup()
        second = 1000000
        self.x("HSET", self.k("rate:key:K"), "tat", self.now_us() + 10 * second)
        e = self.pending_job(self.job(id="j1"))
        t0 = self.now_ms()
        code, due = self.call(self.keys(), self.args(e, "j1", ki=second, kb=1, spread=999999))
        self.assertEqual(code, 1)
        self.assertTrue(t0 + 10000 + 400 <= due <= t0 + 10000 + 600 + 200, (due - t0))
        self.assertIn("r:j1", self.hash("rate:key:K"))

    def test_hold_defers_with_code_2_and_expired_hold_is_removed(self):
        self.mkgroup()
        until = self.now_ms() + 30000
        self.x("HSET", self.k("holds"), "key:K", until, "type:T", 1)
        e = self.pending_job(self.job(id="j1"))
        self.assertEqual(self.call(self.keys(), self.args(e, "j1", hold="key:K")), [2, until])
        self.assertEqual(self.zset("scheduled"), [(self.member(e, "j1"), float(until))])
        self.assertEqual(self.stats(), {"throttled": 1})
        self.assertEqual(self.x("EXISTS", self.k("rate:type:T"), self.k("rate:key:K")), 0, "no token taken")
        e2 = self.pending_job(self.job(id="j2"))
        self.assertEqual(self.call(self.keys(), self.args(e2, "j2", hold="type:T")), [0, 0])
        self.assertEqual(list(self.hash("holds")), ["key:K"], "the expired hold was removed")

    def test_hold_spread_at_most_a_tenth_and_1s(self):
        self.mkgroup()
        until = self.now_ms() + 5000
        self.x("HSET", self.k("holds"), "key:K", until)
        e = self.pending_job(self.job(id="j1"))
        code, due = self.call(self.keys(), self.args(e, "j1", hold="key:K", spread=999999))
        self.assertEqual(code, 2)
        self.assertTrue(until + 400 <= due <= until + 500, due - until)

    def test_zero_interval_buckets_are_not_touched(self):
        self.mkgroup()
        e = self.pending_job(self.job(id="j1"))
        keys = self.keys(type_key="rate", rate_key="rate")
        self.assertEqual(self.call(keys, self.args(e, "j1")), [0, 0])
        self.assertEqual(self.x("EXISTS", self.k("rate")), 0)

    def test_returns_minus_1_when_not_owned(self):
        self.mkgroup()
        e = self.pending_job(self.job(id="j1"), "c2")
        self.x("HSET", self.k("holds"), "key:K", self.now_ms() + 30000)
        self.assertEqual(self.call(self.keys(), self.args(e, "j1", hold="key:K", ti=1000000)), [-1, 0])
        self.assertEqual(self.x("EXISTS", self.k("rate:type:T"), self.k("scheduled"), self.k("stats")), 0)
        self.assertIn(e, self.pel())

    def test_errors_change_nothing(self):
        self.mkgroup()
        e = self.pending_job(self.job(id="j1"))
        for kw in (dict(ti=-1), dict(tb=0), dict(ki=-1), dict(kb=0), dict(spread=1000000), dict(spread=-1)):
            text = self.call_err(self.keys(), self.args(e, "j1", **kw))
            self.assertTrue(text.startswith("throttle-6:"), (kw, text))
        text = self.call_err(self.keys(), self.args(e, "", ti=1))
        self.assertTrue(text.startswith("throttle-6:"), text)
        self.x("SET", self.k("scheduled"), "x")
        self.x("HSET", self.k("holds"), "key:K", self.now_ms() + 30000)
        text = self.call_err(self.keys(), self.args(e, "j1", hold="key:K"))
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        self.assertIn(e, self.pel())
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# hold-4
# ---------------------------------------------------------------------------


class Hold4Test(ScriptCase):
    SCRIPT = "hold-4"

    def keys(self):
        return [self.k("ready"), self.k("scheduled"), self.k("stats"), self.k("holds")]

    def member(self, entry):
        return pack({"type": "T", "payload": b"\x90", "id": "j1", "enqueued_at": "1", "prev_entry": entry})

    def test_moved_1_sets_hold_and_defers_job(self):
        self.mkgroup()
        e = self.pending_job(self.job(id="j1"))
        t0 = self.now_ms()
        moved, until, due = self.call(self.keys(), [GROUP, "c1", e, self.member(e), "key:K", 20000, 0])
        self.assertEqual(moved, 1)
        self.assertTrue(t0 + 20000 <= until <= t0 + 21000, until - t0)
        self.assertEqual(due, until, "spread 0")
        self.assertEqual(self.hash("holds"), {"key:K": B(until)})
        self.assertEqual(self.zset("scheduled"), [(self.member(e), float(due))])
        self.assertIsNone(self.entry("ready", e))
        self.assertEqual(self.pel(), {})
        self.assertEqual(self.stats(), {"held": 1})

    def test_spread_up_to_a_tenth_at_most_1s(self):
        self.mkgroup()
        e = self.pending_job(self.job(id="j1"))
        _, until, due = self.call(self.keys(), [GROUP, "c1", e, self.member(e), "key:K", 5000, 999999])
        self.assertEqual(due - until, 499)
        e = self.pending_job(self.job(id="j2"))
        _, until, due = self.call(self.keys(), [GROUP, "c1", e, self.member(e), "key:L", 60000, 999999])
        self.assertEqual(due - until, 999)

    def test_tiny_hold_spread_is_at_least_10ms(self):
        # The spread's scale is a tenth of the hold clamped to 10..1000 ms
        # (header and README), so a 1 ms hold may defer the job by up to
        # 9 ms past the hold's end. throttle-6 computes its hold spread the
        # same way.
        self.mkgroup()
        e = self.pending_job(self.job(id="j1"))
        _, until, due = self.call(self.keys(), [GROUP, "c1", e, self.member(e), "key:K", 1, 999999])
        self.assertEqual(due - until, 9)

    def test_moved_0_without_entry_or_not_owned_still_sets_hold(self):
        self.mkgroup()
        t0 = self.now_ms()
        moved, until, due = self.call(self.keys(), [GROUP, "c1", "", "", "type:T", 10000, 0])
        self.assertEqual((moved, due), (0, 0))
        self.assertTrue(t0 + 10000 <= until <= t0 + 11000)
        theirs = self.pending_job(self.job(), "c2")
        moved, _, due = self.call(self.keys(), [GROUP, "c1", theirs, self.member(theirs), "key:K", 10000, 0])
        self.assertEqual((moved, due), (0, 0))
        self.assertIn(theirs, self.pel())
        self.assertEqual(sorted(self.hash("holds")), ["key:K", "type:T"])
        self.assertEqual(self.x("EXISTS", self.k("scheduled")), 0)
        self.assertEqual(self.stats(), {})

    def test_never_shortened_and_expired_fields_removed(self):
        far = self.now_ms() + 3600000
        self.x("HSET", self.k("holds"), "key:K", far, "key:old", 5, "key:junk", "x")
        moved, until, due = self.call(self.keys(), [GROUP, "c1", "", "", "key:K", 1000, 0])
        self.assertEqual((moved, until, due), (0, far, 0))
        self.assertEqual(self.hash("holds"), {"key:K": B(far)})

    def test_errors_change_nothing(self):
        self.mkgroup()
        e = self.pending_job(self.job(id="j1"))
        for field, ms, spread in (("", 1000, 0), ("key:K", 0, 0), ("key:K", "x", 0),
                                  ("key:K", 1000, -1), ("key:K", 1000, 1000000)):
            text = self.call_err(self.keys(), [GROUP, "c1", e, self.member(e), field, ms, spread])
            self.assertTrue(text.startswith("hold-4:"), text)
        self.x("SET", self.k("scheduled"), "x")
        text = self.call_err(self.keys(), [GROUP, "c1", e, self.member(e), "key:K", 1000, 0])
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        self.assertEqual(self.x("EXISTS", self.k("holds")), 0)
        self.assertIn(e, self.pel())
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# settle-14
# ---------------------------------------------------------------------------


class Settle14Test(ScriptCase):
    SCRIPT = "settle-14"

    def keys(self, job_id="j1", key="u1", batch="b1", group="g"):
        return [self.k("ready"), self.k("scheduled"), self.k("dead"), self.k("stats"),
                self.k("job:" + job_id), self.k("unique:" + key), self.k("done:" + job_id),
                self.k("batch:" + batch), self.k("batch:%s:members" % batch),
                self.k("batch:%s:failed" % batch), self.k("groups"), self.k("grouped"),
                self.k("group:" + group), self.k("meta")]

    def args(self, entry, state, job_id="j1", keep="0", release="0", msg="", cls="", batch="0",
             group="", arg13="0", tail=(), consumer="c1", now="5000"):
        return [GROUP, consumer, entry, job_id, state, now, keep, release, msg, cls, batch, group,
                arg13] + list(tail)

    def tracked(self, **extra):
        self.mkgroup()
        e = self.pending_job(self.job(id="j1", **extra))
        self.x("HSET", self.k("job:j1"), "id", "j1", "state", "active", "entry", e)
        self.x("SET", self.k("unique:u1"), "j1")
        return e

    def test_completed_with_record_key_and_result(self):
        e = self.tracked()
        self.assertEqual(self.call(self.keys(), self.args(e, "completed", keep="60000", release="1",
                                                          msg=b"\x81\xa2ok\xc3")), 1)
        rec = self.hash("job:j1")
        self.assertEqual((rec["state"], rec["finished_at"], rec["entry"], rec["result"]),
                         (b"completed", b"5000", b"", b"\x81\xa2ok\xc3"))
        self.assertTrue(55000 < self.x("PTTL", self.k("job:j1")) <= 60000)
        self.assertEqual(self.x("LRANGE", self.k("done:j1"), 0, -1), [b"completed"])
        self.assertTrue(55000 < self.x("PTTL", self.k("done:j1")) <= 60000)
        self.assertEqual(self.x("EXISTS", self.k("unique:u1")), 0)
        self.assertIsNone(self.entry("ready", e))
        self.assertEqual(self.pel(), {})
        self.assertEqual(self.stats(), {"processed": 1})

    def test_completed_adds_next_chain_step(self):
        e = self.tracked()
        step = self.job(9, id="step-2", prev_result=b"\xc3")
        self.assertEqual(self.call(self.keys(), self.args(e, "completed", arg13="1", tail=step)), 1)
        self.assertEqual([x[1] for x in self.entries("ready")], [flat(step)])
        self.assertEqual(self.stats(), {"processed": 1})
        self.assertEqual(self.hash("job:j1")["state"], b"active", "keep 0: record not written")
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1", "release 0: key kept")

    def test_final_states_count_their_counter(self):
        for state, counter in (("discarded", "discarded"), ("expired", "expired"), ("cancelled", "cancelled")):
            e = self.pending_job(self.job()) if self.x("EXISTS", self.k("ready")) else self.tracked()
            self.assertEqual(self.call(self.keys(), self.args(e, state, keep="1000")), 1)
            self.assertEqual(self.hash("job:j1")["state"], B(state))
            self.assertEqual(self.x("LRANGE", self.k("done:j1"), 0, -1), [B(state)])
        self.assertEqual(self.stats(), {"discarded": 1, "expired": 1, "cancelled": 1})

    def test_retrying_schedules_and_keeps_key(self):
        e = self.tracked()
        m = pack({"type": "conf.job", "payload": b"\x90", "id": "j1", "attempt": "2"})
        self.assertEqual(self.call(self.keys(), self.args(e, "retrying", keep="60000", release="1",
                                                          msg="boom", cls="retryable", arg13="9000",
                                                          tail=[m])), 1)
        self.assertEqual(self.zset("scheduled"), [(m, 9000.0)])
        rec = self.hash("job:j1")
        for f, v in (("state", "retrying"), ("run_at", "9000"), ("last_error", "boom"),
                     ("last_error_class", "retryable"), ("entry", "")):
            self.assertEqual(rec[f], B(v), f)
        self.assertEqual(self.x("PTTL", self.k("job:j1")), -1)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1", "not final: key kept")
        self.assertEqual(self.x("EXISTS", self.k("done:j1")), 0)
        self.assertEqual(self.stats(), {"retried": 1})

    def test_dead_writes_dead_entry_record_and_trim(self):
        e = self.tracked()
        pipe = self.r.pipeline(transaction=False)
        for _ in range(250):
            pipe.execute_command("XADD", self.k("dead"), "*", "old", "1")
        pipe.execute()
        row = self.job(id="j1") + ["enqueued_at", "1"] + CONTEXT
        self.assertEqual(self.call(self.keys(), self.args(e, "dead", keep="60000", release="1", msg="no",
                                                          cls="permanent", arg13="10", tail=row)), 1)
        after = self.x("XLEN", self.k("dead"))
        self.assertEqual(self.entries("dead")[-1][1], flat(row))
        rec = self.hash("job:j1")
        self.assertEqual((rec["state"], rec["last_error"], rec["last_error_class"]), (b"dead", b"no", b"permanent"))
        self.assertEqual(self.x("EXISTS", self.k("unique:u1")), 0)
        self.assertEqual(self.stats(), {"dead": 1, "dead_trimmed": 251 - after})

    def test_dead_without_entry_only_does_the_bookkeeping(self):
        # A job reclaim-3 already moved to dead: no ownership check, no move,
        # no counter.
        self.x("HSET", self.k("job:j1"), "id", "j1", "state", "active")
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), self.args("", "dead", keep="1000", release="1", msg="gone",
                                                          cls="abandoned", arg13="0", tail=["x", "y"])), 1)
        self.assertEqual(self.hash("job:j1")["state"], b"dead")
        self.assertEqual(self.x("EXISTS", self.k("unique:u1"), self.k("dead")), 0)
        self.assertEqual(self.stats(), {})

    def test_dead_without_entry_frees_the_group_place(self):
        # An empty entry id also frees the job's group place and releases
        # the group's waiting jobs (step 3 is not gated on the entry; header
        # ARGV[3] and README say so), which is what reclaim-3's `group` in
        # tracked is for.
        self.x("HSET", self.k("grouped"), grouped_field("g", "j1"), "g")
        self.x("HSET", self.k("groups"), "g", "1")
        self.xadd(self.job(id="next", group="g"), key="group:g")
        self.x("HSET", self.k("stats"), "group_waiting", "1")
        self.assertEqual(self.call(self.keys(), self.args("", "dead", group="g")), 1)
        self.assertEqual([x[1] for x in self.entries("ready")], [flat(self.job(id="next", group="g"))])
        self.assertEqual(self.hash("grouped"), {grouped_field("g", "next"): b"g"})
        self.assertEqual(self.stats(), {"group_waiting": 0})

    def test_batch_members_count_once_and_last_schedules_callback(self):
        self.mkgroup()
        cb = pack({"type": "batch.done", "payload": b"\x90", "id": "cb", "batch_done": "b1"})
        self.x("HSET", self.k("batch:b1"), "total", "2", "pending", "2", "succeeded", "0", "failed", "0",
               "callback", cb, "keep_ms", "60000")
        self.x("SADD", self.k("batch:b1:members"), "m1", "m2")
        e1 = self.pending_job(self.job(id="m1", batch="b1"))
        e2 = self.pending_job(self.job(id="m2", batch="b1"))
        e1b = self.pending_job(self.job(id="m1", batch="b1"))  # m1 delivered twice
        self.assertEqual(self.call(self.keys("m1"), self.args(e1, "completed", job_id="m1", batch="1")), 1)
        self.assertEqual(self.call(self.keys("m1"), self.args(e1b, "completed", job_id="m1", batch="1")), 1)
        b = self.hash("batch:b1")
        self.assertEqual((b["succeeded"], b["pending"]), (b"1", b"1"), "counted once")
        self.assertEqual(self.x("EXISTS", self.k("scheduled")), 0)
        row = self.job(id="m2") + CONTEXT
        self.assertEqual(self.call(self.keys("m2"), self.args(e2, "dead", job_id="m2", batch="1", msg="x",
                                                              arg13="0", tail=row)), 1)
        b = self.hash("batch:b1")
        self.assertEqual((b["failed"], b["pending"], b["done_at"]), (b"1", b"0", b"5000"))
        self.assertEqual(self.x("SMEMBERS", self.k("batch:b1:failed")), [b"m2"])
        self.assertEqual(self.zset("scheduled"), [(cb, 5000.0)])
        for key in ("batch:b1", "batch:b1:failed"):
            self.assertTrue(55000 < self.x("PTTL", self.k(key)) <= 60000, key)
        self.assertEqual(self.stats(), {"processed": 2, "dead": 1})

    def test_final_job_of_group_releases_next_and_last_cleans_up(self):
        self.mkgroup()
        e1 = self.pending_job(self.job(id="j1", group="g"))
        self.x("HSET", self.k("grouped"), grouped_field("g", "j1"), "g")
        self.x("HSET", self.k("groups"), "g", "1")
        self.xadd(self.job(id="j2", group="g"), key="group:g")
        self.x("HSET", self.k("stats"), "group_waiting", "1")
        self.assertEqual(self.call(self.keys(), self.args(e1, "completed", group="g")), 1)
        self.assertEqual(self.hash("grouped"), {grouped_field("g", "j2"): b"g"})
        self.assertEqual(self.hash("groups"), {"g": b"1"})
        self.assertEqual([x[1] for x in self.entries("ready")], [flat(self.job(id="j2", group="g"))])
        self.assertEqual(self.stats(), {"group_waiting": 0, "processed": 1})
        e2 = self.fetch("c1")[0]
        # A retry keeps the place.
        m = pack({"id": "j2", "group": "g"})
        self.assertEqual(self.call(self.keys("j2"), self.args(e2, "retrying", job_id="j2", group="g",
                                                              arg13="1", tail=[m])), 1)
        self.assertEqual(self.hash("groups"), {"g": b"1"})
        e3 = self.pending_job(self.job(id="j2", group="g"))
        self.assertEqual(self.call(self.keys("j2"), self.args(e3, "completed", job_id="j2", group="g")), 1)
        self.assertEqual(self.x("EXISTS", self.k("groups"), self.k("grouped"), self.k("group:g")), 0)

    def test_returns_0_when_not_owned(self):
        self.mkgroup()
        e = self.pending_job(self.job(id="j1"), "c2")
        self.x("SET", self.k("unique:u1"), "j1")
        self.assertEqual(self.call(self.keys(), self.args(e, "completed", keep="1000", release="1")), 0)
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1")
        self.assertEqual(self.x("EXISTS", self.k("job:j1"), self.k("done:j1"), self.k("stats")), 0)
        self.assertIn(e, self.pel())

    def test_errors_change_nothing(self):
        e = self.tracked()
        # The first add's error.
        self.x("SET", self.k("scheduled"), "x")
        text = self.call_err(self.keys(), self.args(e, "retrying", keep="1000", arg13="1", tail=[pack({"id": "j1"})]))
        self.assertTrue(text.startswith("WRONGTYPE"), text)
        self.exhaust("dead")
        self.assertExhausted(self.call_err(self.keys(), self.args(e, "dead", keep="1000", tail=CONTEXT)))
        # A key of the wrong type, before any write.
        self.x("DEL", self.k("job:j1"))
        self.x("SET", self.k("job:j1"), "x")
        text = self.call_err(self.keys(), self.args(e, "completed", keep="1000"))
        self.assertTrue(text.startswith("WRONGTYPE settle-14:"), text)
        self.x("DEL", self.k("job:j1"))
        # A keep time that is not whole ms.
        for keep in ("1.5", "x", "1" * 16):
            text = self.call_err(self.keys(), self.args(e, "completed", keep=keep))
            self.assertTrue(text.startswith("settle-14:"), text)
        self.assertIn(e, self.pel())
        self.assertEqual(self.x("GET", self.k("unique:u1")), b"j1")
        self.assertEqual(self.stats(), {})

    def test_undocumented_errors_for_state_and_empty_entry(self):
        # An unknown state and an empty entry id with a state other than
        # dead are refused with ERR settle-14, before the ownership check
        # (Returns and README list both errors and the order).
        e = self.tracked()
        text = self.call_err(self.keys(), self.args(e, "finished"))
        self.assertTrue(text.startswith("settle-14: unknown state"), text)
        text = self.call_err(self.keys(), self.args("", "completed"))
        self.assertTrue(text.startswith("settle-14: only a dead job"), text)
        self.assertIn(e, self.pel())
        self.assertEqual(self.stats(), {})


# ---------------------------------------------------------------------------
# Coverage: every script has a test class here, calling it.
# ---------------------------------------------------------------------------


def script_classes():
    out = {}
    for obj in globals().values():
        if isinstance(obj, type) and issubclass(obj, ScriptCase) and obj.SCRIPT:
            out.setdefault(obj.SCRIPT, []).append(obj)
    return out


class ZzCoverageTest(unittest.TestCase):
    """Named to run last (unittest sorts classes by name)."""

    def lua_files(self):
        files = sorted(glob.glob(os.path.join(SCRIPTS_DIR, "*.lua")))
        self.assertTrue(files, "no scripts found in %s" % SCRIPTS_DIR)
        return files

    def test_every_script_has_a_test_class(self):
        classes = script_classes()
        names = [os.path.basename(f)[:-4] for f in self.lua_files()]
        missing = [n for n in names if n not in classes]
        self.assertEqual(missing, [], "scripts without a test in %s: add a ScriptCase with SCRIPT = name"
                         % os.path.basename(__file__))
        stale = sorted(set(classes) - set(names))
        self.assertEqual(stale, [], "test classes for scripts that do not exist")
        for name, cls_list in classes.items():
            tests = [m for c in cls_list for m in dir(c) if m.startswith("test")]
            self.assertTrue(tests, "%s has a class but no test method" % name)

    def test_every_header_matches_the_file_name(self):
        # verb-N.lua takes N KEYS: the header lists KEYS[1]..KEYS[N] and a
        # Returns: paragraph (scripts/README.md, "Header").
        for path in self.lua_files():
            name = os.path.basename(path)[:-4]
            with open(path, encoding="utf-8") as f:
                body = f.read()
            m = re.match(r"\s*--\[\[(.*?)\]\]", body, re.S)
            self.assertTrue(m, "%s: no header block comment" % name)
            header = m.group(1)
            n = int(name.rsplit("-", 1)[1])
            keys = sorted({int(k) for k in re.findall(r"KEYS\[(\d+)\]", header)})
            self.assertEqual(keys[:n], list(range(1, n + 1)), "%s: header KEYS" % name)
            self.assertNotIn(n + 1, keys, "%s: header names KEYS[%d]" % (name, n + 1))
            self.assertIn("Returns:", header, name)

    def test_every_script_was_called(self):
        classes = script_classes()
        ran_all = all(c.__name__ in CLASSES_RUN for cs in classes.values() for c in cs)
        if not ran_all:
            self.skipTest("only part of the suite ran")
        self.assertEqual(sorted(set(classes) - CALLED), [])


def main():
    client().ping()
    argv = [sys.argv[0]] + [a for a in sys.argv[1:]]
    if "-v" not in argv and "--verbose" not in argv and "-q" not in argv:
        argv.append("-v")
    started = time.monotonic()
    prog = unittest.main(module=__name__, argv=argv, exit=False)
    result = prog.result
    print("\njobstream script conformance: %d tests, %d failures, %d errors, %d skipped in %.1f s (%s, scripts %s)"
          % (result.testsRun, len(result.failures), len(result.errors), len(result.skipped),
             time.monotonic() - started, os.environ.get("REDIS_URL"), SCRIPTS_DIR))
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
