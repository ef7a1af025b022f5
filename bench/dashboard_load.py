#!/usr/bin/env python3
"""What the dashboard costs Redis (docs/benchmarks.md, "Dashboard load (issue 21)").

Scenario A, per refresh with a backlog: a queue `backlog` with N ready jobs
(100,000 by default, and a tenth of that to compare), N/5 scheduled and
N/20 dead, a consumer group but no worker. Against `jobstream dashboard
--refresh 3s`, each API call a page makes is requested once, alone, between
`CONFIG RESETSTAT` and `INFO commandstats`: Redis commands per call, the
time Redis spent in them (commandstats `usec`), Redis CPU (`INFO cpu`
delta, which also holds the INFO calls themselves and Redis's own timer:
see the "floor" row, the same window with no request) and the wall time.
The dashboard's history sampler (every 10 s) is kept out of those windows
(they are placed between its ticks, and a window that saw its `HMGET` or
`XADD` is thrown away and measured again); one tick is measured on its own.

Scenario B, ten open dashboards on a busy queue: a queue `busy` served by
`example-quickstart worker --concurrency 20`, a producer process adding
jobs at a fixed rate (2,000/s), for a WINDOW (60 s) after a warm-up,
(i) without a dashboard, (ii) with one `jobstream dashboard` and ten
simulated overview viewers (`api/config` once, then `api/overview` every
3 s) plus ten queue-page viewers (`api/queues/busy` and its ready list
every 3 s). Redis CPU %, commands/s, jobs/s processed (`jobstream stats
--json`), each run REPEATS times, alternating.

Every server and process is its own: a `redis-server` on a free port in a
temp dir (`--save '' --appendonly no`), killed at the end, errors included.

    python3 bench/dashboard_load.py                  # everything (~8 min)
    python3 bench/dashboard_load.py --skip-b         # scenario A only
    python3 bench/dashboard_load.py --skip-a --window 20 --repeats 1

Binaries: --bin-dir, else $JOBSTREAM_BIN_DIR, else target/release, then
target/debug (must hold `jobstream` and `example-quickstart`). Needs Python
3.8+, the `redis` package and `msgpack`. Results are printed as Markdown and
written to .tmp/dashboard-load.md.
"""
import argparse
import atexit
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import msgpack
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFRESH_S = 3.0
STEP_S = 10.0  # the dashboard's history step (DashboardOptions::history_step)
# Our own commands in a measured window: never counted.
OURS = {"info", "config|resetstat"}
# What only the history sampler issues (core/src/history.rs: HMGET + XADD).
SAMPLER = {"hmget", "xadd"}

CHILDREN = []


def spawn(args, **kw):
    p = subprocess.Popen(args, **kw)
    CHILDREN.append(p)
    return p


def stop(p, grace=5.0):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in CHILDREN:
        CHILDREN.remove(p)


def kill_children():
    for p in list(CHILDREN):
        if p.poll() is None:
            p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
    CHILDREN.clear()


atexit.register(kill_children)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def bin_dir(arg):
    dirs = [arg, os.environ.get("JOBSTREAM_BIN_DIR"), os.path.join(ROOT, "target/release"),
            os.path.join(ROOT, "target/debug")]
    for d in filter(None, dirs):
        if all(os.path.exists(os.path.join(d, b)) for b in ("jobstream", "example-quickstart")):
            return os.path.abspath(d)
    sys.exit("no jobstream and example-quickstart binaries: build them, or pass --bin-dir")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid):
    """utime + stime of a process, seconds (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


class Redis:
    """Our own redis-server, and one connection to it for measuring."""

    def __init__(self):
        exe = "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else shutil.which("redis-server")
        if not exe:
            sys.exit("no redis-server")
        self.dir = tempfile.mkdtemp(prefix="jobstream-dash-load-")
        self.port = free_port()
        self.proc = spawn([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", self.dir, "--logfile", ""],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}"
        self.r = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                self.r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            self.close()
            sys.exit("redis-server did not start")
        self.version = self.r.info("server")["redis_version"]

    def close(self):
        stop(self.proc, grace=2)
        shutil.rmtree(self.dir, ignore_errors=True)

    def cpu_us(self):
        c = self.r.info("cpu")
        return (c["used_cpu_user"] + c["used_cpu_sys"]) * 1e6

    def cmdstats(self):
        """{command: (calls, usec)} since the last CONFIG RESETSTAT."""
        return {k[len("cmdstat_"):]: (v["calls"], v["usec"])
                for k, v in self.r.info("commandstats").items()}


def key(queue, k):
    return f"jobstream:{{{queue}}}:{k}"


def uuid7():
    ms = int(time.time() * 1000)
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


def fill(r, queue, ready, scheduled, dead, ids_kind):
    """A backlog in the wire format (docs/wire-format.md); returns the ready ids."""
    new_id = uuid7 if ids_kind == "v7" else (lambda: str(uuid.uuid4()))
    payload = msgpack.packb({"to": "x@example.com"}, use_bin_type=True)
    sec, usec = r.time()
    now = sec * 1000 + usec // 1000
    ids = []
    pipe = r.pipeline(transaction=False)
    for i in range(ready):
        jid = new_id()
        ids.append(jid)
        pipe.xadd(key(queue, "ready"), {"type": "send_email", "id": jid, "payload": payload})
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    for i in range(scheduled):
        member = msgpack.packb({"type": "send_email", "payload": payload, "id": new_id(),
                                "enqueued_at": str(now)}, use_bin_type=True)
        pipe.zadd(key(queue, "scheduled"), {member: now + 3_600_000 + i})
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    for i in range(dead):
        pipe.xadd(key(queue, "dead"), {"id": new_id(), "type": "send_email", "payload": payload,
                                       "reason": "exhausted", "error_class": "error",
                                       "error": "simulated failure", "failed_at": str(now)})
        if i % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    r.sadd("jobstream:queues", queue)
    # The consumer group a worker creates on its first start: a queue with a
    # backlog has had workers (no consumer, nothing in flight).
    r.xgroup_create(key(queue, "ready"), "workers", id="0")
    return ids


def start_dashboard(bindir, url, refresh="3s"):
    port = free_port()
    p = spawn([os.path.join(bindir, "jobstream"), "dashboard", "--listen", f"127.0.0.1:{port}",
               "--refresh", refresh],
              env={**os.environ, "REDIS_URL": url, "RUST_LOG": "warn"},
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    for _ in range(200):
        try:
            get(base, "api/config")
            return p, base
        except OSError:
            if p.poll() is not None:
                break
            time.sleep(0.05)
    sys.exit("the dashboard did not start")


def get(base, path, timeout=60):
    req = urllib.request.Request(base + path, headers={"Host": "localhost"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


# ---------------------------------------------------------------- scenario A

class Ticks:
    """When the dashboard's sampler ticks (every STEP_S from its start), found
    by watching for its HMGET; windows are placed between ticks."""

    def __init__(self, srv):
        self.srv = srv
        self.at = None

    def sync(self, timeout=25.0):
        self.srv.r.config_resetstat()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.srv.cmdstats().get("hmget", (0, 0))[0] > 0:
                self.at = time.monotonic()
                return
            time.sleep(0.02)
        sys.exit("the dashboard's history sampler never ticked")

    def wait_slot(self, need_s):
        """Returns when the next `need_s` seconds hold no tick."""
        while True:
            since = (time.monotonic() - self.at) % STEP_S
            if 0.3 <= since and since + need_s <= STEP_S - 0.4:
                return
            time.sleep(max(0.02, STEP_S - since + 0.3 if since > 0.3 else 0.3 - since))


def window(srv, action):
    """Runs action() alone between CONFIG RESETSTAT and the INFO reads."""
    srv.r.config_resetstat()
    cpu0 = srv.cpu_us()
    t0 = time.perf_counter()
    result = action()
    wall_ms = (time.perf_counter() - t0) * 1000
    cpu = srv.cpu_us() - cpu0
    stats = {k: v for k, v in srv.cmdstats().items() if k not in OURS}
    return result, stats, cpu, wall_ms


def scenario_a(bindir, ready, ids_kind, log):
    scheduled, dead = ready // 5, ready // 20
    srv = Redis()
    dash = None
    try:
        t0 = time.monotonic()
        ids = fill(srv.r, "backlog", ready, scheduled, dead, ids_kind)
        log(f"A: filled {ready:,} ready / {scheduled:,} scheduled / {dead:,} dead ({ids_kind} ids) "
            f"in {time.monotonic() - t0:.1f} s")
        dash, base = start_dashboard(bindir, srv.url, f"{int(REFRESH_S)}s")
        ticks = Ticks(srv)
        ticks.sync()
        q = "api/queues/backlog"
        near_end = ids[-10]
        missing = str(uuid.uuid4()) if ids_kind == "v4" else uuid7()
        entry = srv.r.xrevrange(key("backlog", "ready"), "+", "-", count=10)[-1][0].decode()
        # (label, path, cold cache needed)
        plan = [
            ("floor: the same window, no request", None, False),
            ("api/overview (cache cold)", "api/overview", True),
            ("api/overview (cache warm: another viewer within 3 s)", "api/overview", False),
            ("api/queues/backlog", q, False),
            ("api/queues/backlog/jobs?state=ready", f"{q}/jobs?state=ready", False),
            ("api/queues/backlog/jobs?state=scheduled", f"{q}/jobs?state=scheduled", False),
            ("api/queues/backlog/jobs?state=in-flight", f"{q}/jobs?state=in-flight", False),
            ("api/queues/backlog/jobs?state=dead", f"{q}/jobs?state=dead", False),
            ("api/queues/backlog/dead", f"{q}/dead", False),
            ("api/workers (cache cold)", "api/workers", True),
            ("api/schedules", "api/schedules", False),
            ("api/queues/backlog/find?id=<10th from the end>", f"{q}/find?id={near_end}", False),
            ("api/queues/backlog/find?id=<missing>", f"{q}/find?id={missing}", False),
            ("api/queues/backlog/job?id=<10th from the end> (after the find: place remembered)",
             f"{q}/job?id={near_end}", False),
            ("api/queues/backlog/job?id=<10th from the end>&state=ready&entry=<its entry> (a list's link)",
             f"{q}/job?id={near_end}&state=ready&entry={entry}", False),
            ("api/queues/backlog/job?id=<missing> (refresh of a page on a gone job)",
             f"{q}/job?id={missing}", False),
        ]
        rows = []
        last_cached = {}
        for label, path, cold in plan:
            for attempt in range(5):
                if cold:
                    # Older than the refresh interval: the cache is cold.
                    since = time.monotonic() - last_cached.get(path, -1e9)
                    if since < REFRESH_S + 0.3:
                        time.sleep(REFRESH_S + 0.3 - since)
                ticks.wait_slot(2.5)
                body, stats, cpu, wall = window(srv, (lambda p=path: get(base, p)) if path else (lambda: None))
                if path in ("api/overview", "api/workers"):
                    last_cached[path] = time.monotonic()
                if SAMPLER & stats.keys():
                    log(f"A: a sampler tick fell in the window of {label!r}: measured again")
                    ticks.sync()
                    continue
                break
            else:
                sys.exit(f"could not measure {label} between sampler ticks")
            note = ""
            if isinstance(body, dict) and "scanned" in body:
                found = body.get("job") is not None if "job" in body and not isinstance(body.get("jobs"), list) else None
                note = f"scanned {body['scanned']:,}" + (", capped" if body.get("capped") else "") + \
                       ("" if found is None else (", found" if found else ", not found"))
            if cold and not stats:
                note = (note + "; " if note else "") + "CACHE WAS WARM"
            rows.append(dict(label=label, cmds=sum(c for c, _ in stats.values()),
                             usec=sum(u for _, u in stats.values()), cpu=cpu, wall=wall,
                             calls=stats, note=note))
            log(f"A: {label}: {rows[-1]['cmds']} commands, {cpu:.0f} µs CPU, {wall:.1f} ms {note}")
        # One sampler tick alone: from just after a tick to just after the
        # next (one tick, no request), and a no-tick window for Redis's own
        # CPU (its timer) over the same time, to subtract.
        idle_len = STEP_S - 1.0
        ticks.wait_slot(idle_len)
        _, idle_stats, idle_cpu, _ = window(srv, lambda: time.sleep(idle_len))
        ticks.wait_slot(0.1)
        _, tick_stats, tick_cpu, _ = window(srv, lambda: time.sleep(STEP_S))
        idle_scaled = idle_cpu * STEP_S / idle_len
        n = sum(c for c, _ in tick_stats.values())
        rows.append(dict(label="history sampler, one tick (every 10 s per dashboard process)",
                         cmds=n, usec=sum(u for _, u in tick_stats.values()),
                         cpu=tick_cpu - idle_scaled, wall=0.0, calls=tick_stats,
                         note=f"10 s window {tick_cpu:.0f} µs minus idle {idle_scaled:.0f} µs; "
                              f"idle window's commands: {sum(c for c, _ in idle_stats.values())}"))
        log(f"A: sampler tick: {n} commands, window {tick_cpu:.0f} µs, idle {idle_scaled:.0f} µs")
        return {"ready": ready, "scheduled": scheduled, "dead": dead, "ids": ids_kind,
                "redis": srv.version, "rows": rows}
    finally:
        if dash:
            stop(dash)
        srv.close()


# ---------------------------------------------------------------- scenario B

def produce_main(argv):
    """`_produce PORT QUEUE RATE`: XADD jobs at RATE/s until killed."""
    port, queue, rate = int(argv[0]), argv[1], int(argv[2])
    r = redis.Redis(port=port)
    r.sadd("jobstream:queues", queue)
    # delay_ms 0: the quickstart handler does no simulated work.
    payload = msgpack.packb({"to": "x@example.com", "subject": "load", "delay_ms": 0}, use_bin_type=True)
    tick = 0.05
    per = max(1, round(rate * tick))
    nxt = time.monotonic()
    stream = key(queue, "ready")
    while True:
        pipe = r.pipeline(transaction=False)
        for _ in range(per):
            pipe.xadd(stream, {"type": "send_email", "id": str(uuid.uuid4()), "payload": payload})
        pipe.execute()
        nxt += tick
        d = nxt - time.monotonic()
        if d > 0:
            time.sleep(d)


def viewer(base, first, paths, every, stop_ev, delay, counts, lock):
    stop_ev.wait(delay)
    for p in first:
        try:
            get(base, p, timeout=30)
        except OSError:
            pass
    while not stop_ev.is_set():
        t0 = time.monotonic()
        for p in paths:
            try:
                get(base, p, timeout=30)
                with lock:
                    counts["ok"] += 1
            except OSError:
                with lock:
                    counts["err"] += 1
        stop_ev.wait(max(0.0, every - (time.monotonic() - t0)))


def stats_json(bindir, url):
    out = subprocess.run([os.path.join(bindir, "jobstream"), "stats", "--json", "--queue", "busy"],
                         env={**os.environ, "REDIS_URL": url}, capture_output=True, text=True, timeout=30)
    t = time.monotonic()
    q = json.loads(out.stdout)["queues"][0]
    return t, q


def scenario_b(bindir, with_dash, rate, warmup, window_s, log):
    srv = Redis()
    stop_ev = threading.Event()
    dash = None
    threads = []
    try:
        srv.r.sadd("jobstream:queues", "busy")
        worker = spawn([os.path.join(bindir, "example-quickstart"), "worker", "--queue", "busy",
                        "--concurrency", "20", "--shutdown-grace-ms", "1000"],
                       env={**os.environ, "REDIS_URL": srv.url, "RUST_LOG": "warn"},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if srv.r.exists(key("busy", "ready")):
                break
            time.sleep(0.05)
        producer = spawn([sys.executable, os.path.abspath(__file__), "_produce", str(srv.port), "busy", str(rate)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        counts, lock = {"ok": 0, "err": 0}, threading.Lock()
        if with_dash:
            dash, base = start_dashboard(bindir, srv.url, f"{int(REFRESH_S)}s")
            for i in range(10):
                threads.append(threading.Thread(target=viewer, daemon=True, args=(
                    base, ["api/config"], ["api/overview"], REFRESH_S, stop_ev, i * 0.29, counts, lock)))
                threads.append(threading.Thread(target=viewer, daemon=True, args=(
                    base, ["api/config"], ["api/queues/busy", "api/queues/busy/jobs?state=ready&limit=50"],
                    REFRESH_S, stop_ev, i * 0.31 + 0.1, counts, lock)))
            for t in threads:
                t.start()
        time.sleep(warmup)
        t_s0, q0 = stats_json(bindir, srv.url)
        srv.r.config_resetstat()
        added0 = srv.r.xinfo_stream(key("busy", "ready"))["entries-added"]
        cpu0 = srv.cpu_us()
        pc0 = {n: proc_cpu_s(p.pid) for n, p in (("worker", worker), ("dashboard", dash), ("producer", producer)) if p}
        ok0 = counts["ok"]
        t0 = time.monotonic()
        time.sleep(window_s)
        el = time.monotonic() - t0
        cpu = srv.cpu_us() - cpu0
        stats = {k: v for k, v in srv.cmdstats().items() if k not in OURS}
        added = srv.r.xinfo_stream(key("busy", "ready"))["entries-added"] - added0
        pc = {n: proc_cpu_s(p.pid) - pc0[n] for n, p in (("worker", worker), ("dashboard", dash), ("producer", producer)) if p}
        ok = counts["ok"] - ok0
        t_s1, q1 = stats_json(bindir, srv.url)
        res = {
            "dash": with_dash,
            "redis_cpu_pct": 100 * cpu / 1e6 / el,
            "cmds_per_s": sum(c for c, _ in stats.values()) / el,
            "calls_per_s": {k: c / el for k, (c, _) in stats.items()},
            "enqueued_per_s": added / el,
            "processed_per_s": (q1["processed"] - q0["processed"]) / (t_s1 - t_s0),
            "ready_end": q1["ready"],
            "dead_end": q1["dead"],
            "proc_cpu_pct": {n: 100 * v / el for n, v in pc.items()},
            "http_per_s": ok / el,
            "http_errors": counts["err"],
        }
        log(f"B: dashboard={with_dash}: Redis {res['redis_cpu_pct']:.1f} % CPU, {res['cmds_per_s']:.0f} cmd/s, "
            f"{res['enqueued_per_s']:.0f} enq/s, {res['processed_per_s']:.0f} processed/s, ready at end {q1['ready']}, "
            f"procs {', '.join(f'{n} {v:.0f} %' for n, v in res['proc_cpu_pct'].items())}, "
            f"http {res['http_per_s']:.1f}/s ({counts['err']} errors)")
        return res
    finally:
        stop_ev.set()
        for p in list(CHILDREN):
            if p is not srv.proc:
                stop(p, grace=3)
        srv.close()


# ---------------------------------------------------------------- report

def fmt_calls(calls):
    items = sorted(calls.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return ", ".join(f"{k} {c}" for k, (c, _) in items)


def table_a(res):
    out = [f"### A. One request each: {res['ready']:,} ready / {res['scheduled']:,} scheduled / "
           f"{res['dead']:,} dead ({res['ids']} job ids), no worker", "",
           "| request | commands | in commands (µs) | Redis CPU (µs) | wall (ms) | per command | notes |",
           "|---|---:|---:|---:|---:|---|---|"]
    for r in res["rows"]:
        out.append(f"| {r['label']} | {r['cmds']} | {r['usec']} | {r['cpu']:.0f} | {r['wall']:.1f} | "
                   f"{fmt_calls(r['calls'])} | {r['note']} |")
    return out


def table_b(runs, rate, window_s):
    out = [f"### B. Busy queue: producer at {rate:,} jobs/s, `example-quickstart worker --concurrency 20`, "
           f"{window_s} s windows", "",
           "| run | dashboard | Redis CPU % | commands/s | enqueued/s | processed/s | ready at end | "
           "worker CPU % | dashboard CPU % | viewer HTTP req/s |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(runs):
        pc = r["proc_cpu_pct"]
        label = "1 dashboard, 10 overview + 10 queue-page viewers" if r["dash"] else "none"
        dash_cpu = f"{pc['dashboard']:.1f}" if r["dash"] else "–"
        http = f"{r['http_per_s']:.1f}" if r["dash"] else "–"
        out.append(f"| {i // 2 + 1} | {label} | {r['redis_cpu_pct']:.1f} | {r['cmds_per_s']:,.0f} | "
                   f"{r['enqueued_per_s']:,.0f} | {r['processed_per_s']:,.0f} | {r['ready_end']:,} | "
                   f"{pc['worker']:.0f} | {dash_cpu} | {http} |")
    pairs = [(runs[i], runs[i + 1]) for i in range(0, len(runs) - 1, 2)]
    out += ["", "| run | Redis CPU % with − without | commands/s with − without | processed/s with − without |",
            "|---|---:|---:|---:|"]
    for i, (a, b) in enumerate(pairs):
        out.append(f"| {i + 1} | {b['redis_cpu_pct'] - a['redis_cpu_pct']:+.1f} | "
                   f"{b['cmds_per_s'] - a['cmds_per_s']:+,.0f} | "
                   f"{b['processed_per_s'] - a['processed_per_s']:+,.0f} |")
    # Commands no run without a dashboard issued: the dashboard's own (a
    # lower bound of its commands: it also sends some the worker sends).
    without = set().union(*(a["calls_per_s"] for a, _ in pairs))
    parts = []
    for i, (_, b) in enumerate(pairs):
        own = {k: v for k, v in b["calls_per_s"].items() if k not in without}
        parts.append(f"run {i + 1}: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(own.items()))
                     + f" (total {sum(own.values()):.1f}/s)")
    out += ["", "Commands/s that appear only with the dashboard (a lower bound of its own): " + "; ".join(parts)]
    return out


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_produce":
        return produce_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir")
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--small", type=int, default=10_000, help="the comparison backlog (0: none)")
    ap.add_argument("--ids", choices=["v4", "v7", "both"], default="v4",
                    help="job ids of the backlog: UUIDv4 (default), v7 (what the Rust producer writes), or "
                         "both (the large backlog once more with v7 ids)")
    ap.add_argument("--window", type=int, default=60, help="scenario B window, s")
    ap.add_argument("--warmup", type=int, default=10, help="scenario B warm-up, s")
    ap.add_argument("--rate", type=int, default=2000, help="scenario B jobs/s produced")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, ".tmp/dashboard-load.md"))
    args = ap.parse_args()
    bindir = bin_dir(args.bin_dir)

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    mtime = lambda b: time.strftime("%Y-%m-%d %H:%M", time.gmtime(os.path.getmtime(os.path.join(bindir, b))))
    out = ["## Dashboard load", "",
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs; binaries {bindir} "
           f"(jobstream {mtime('jobstream')}, example-quickstart {mtime('example-quickstart')}); "
           f"Redis, dashboard, worker and this script share the machine.", ""]
    try:
        if not args.skip_a:
            sizes = [(args.backlog, "v7" if args.ids == "v7" else "v4")]
            if args.small:
                sizes.insert(0, (args.small, sizes[0][1]))
            if args.ids == "both":
                sizes.append((args.backlog, "v7"))
            for n, kind in sizes:
                res = scenario_a(bindir, n, kind, log)
                out += [f"Redis {res['redis']}.", ""] + table_a(res) + [""]
        if not args.skip_b:
            runs = []
            for rep in range(args.repeats):
                for with_dash in (False, True):
                    runs.append(scenario_b(bindir, with_dash, args.rate, args.warmup, args.window, log))
            out += table_b(runs, args.rate, args.window) + [""]
    finally:
        kill_children()
    text = "\n".join(out)
    print(text)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
