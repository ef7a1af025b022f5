#!/usr/bin/env python3
"""What the dashboard costs Redis (docs/benchmarks.md, "Dashboard load").

Scenario A: one request of each page's API call against a queue with a
backlog (100,000 ready, 20,000 scheduled, 5,000 dead by default), counting
the commands Redis ran (INFO commandstats) and its CPU (INFO cpu), with the
same at a tenth of the backlog to show the cost does not grow with it.

Scenario B: a busy queue (a worker draining a producer's steady stream of
jobs) for WINDOW seconds, without a dashboard, then with one dashboard and
ten simulated viewers polling the overview every 3 s and ten polling a queue
page: Redis CPU and commands/s with and without, twice each.

Runs its own redis-server on a free port. Binaries: $JOBSTREAM_BIN_DIR
(default target/release, then target/debug) must hold `jobstream` and
`example-quickstart`. Needs Python's `redis` and `msgpack` packages.

    python3 bench/dashboard_load.py [--backlog 100000] [--window 30]
"""
import argparse
import json
import os
import shutil
import signal
import socket
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


def binaries():
    dirs = [os.environ.get("JOBSTREAM_BIN_DIR"), os.path.join(ROOT, "target/release"),
            os.path.join(ROOT, "target/debug")]
    for d in filter(None, dirs):
        if os.path.exists(os.path.join(d, "jobstream")) and os.path.exists(os.path.join(d, "example-quickstart")):
            return d
    sys.exit("no jobstream and example-quickstart binaries: cargo build --release, or set JOBSTREAM_BIN_DIR")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="jobstream-dash-load-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL)
        self.r = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                self.r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        self.url = f"redis://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def cpu_us(self):
        c = self.r.info("cpu")
        return (c["used_cpu_user"] + c["used_cpu_sys"]) * 1e6

    def calls(self):
        return {k[len("cmdstat_"):]: v["calls"] for k, v in self.r.info("commandstats").items()}

    def total(self):
        return self.r.info("stats")["total_commands_processed"]


def fill(r, queue, ready, scheduled, dead):
    """Jobs in the wire format (docs/wire-format.md)."""
    payload = msgpack.packb({"to": "someone@example.com", "subject": "hello"})
    key = lambda k: f"jobstream:{{{queue}}}:{k}"
    r.sadd("jobstream:queues", queue)
    ids = []
    pipe = r.pipeline(transaction=False)
    for i in range(ready):
        jid = str(uuid.uuid4())
        ids.append(jid)
        pipe.xadd(key("ready"), {"type": "send_email", "id": jid, "payload": payload})
        if i % 5000 == 4999:
            pipe.execute()
    now = int(time.time() * 1000)
    for i in range(scheduled):
        member = msgpack.packb({"type": "send_email", "id": str(uuid.uuid4()), "payload": payload})
        pipe.zadd(key("scheduled"), {member: now + 3_600_000 + i})
        if i % 5000 == 4999:
            pipe.execute()
    for i in range(dead):
        pipe.xadd(key("dead"), {"type": "send_email", "id": str(uuid.uuid4()), "payload": payload,
                                "reason": "exhausted", "error_class": "error", "error": "boom",
                                "failed_at": str(now)})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    r.xgroup_create(key("ready"), "workers", id="0", mkstream=True)
    return ids


def start_dashboard(bindir, url, refresh="3s", history=True):
    port = free_port()
    args = [os.path.join(bindir, "jobstream"), "dashboard", "--listen", f"127.0.0.1:{port}", "--refresh", refresh]
    if not history:
        args.append("--no-history")
    proc = subprocess.Popen(args, env={**os.environ, "REDIS_URL": url},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "api/config", timeout=1).read()
            return proc, base
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("the dashboard did not start")


def get(base, path):
    req = urllib.request.Request(base + path, headers={"Host": "localhost"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)


def scenario_a(bindir, ready, scheduled, dead):
    srv = Server()
    try:
        ids = fill(srv.r, "backlog", ready, scheduled, dead)
        # The history sampler is measured on its own (last row): left out
        # of the requests' counts.
        proc, base = start_dashboard(bindir, srv.url, refresh="1s", history=False)
        q = "api/queues/backlog"
        near_end = ids[-10]
        paths = ["api/overview", q, f"{q}/jobs?state=ready", f"{q}/jobs?state=scheduled",
                 f"{q}/jobs?state=in-flight", f"{q}/jobs?state=dead", f"{q}/dead", "api/workers",
                 "api/schedules", f"{q}/job?id={near_end}", f"{q}/job?id={near_end}",
                 f"{q}/find?id=no-such-job"]
        rows = []
        for i, path in enumerate(paths):
            time.sleep(1.2)  # past the overview cache
            srv.r.config_resetstat()
            cpu0 = srv.cpu_us()
            t0 = time.perf_counter()
            get(base, path)
            wall = (time.perf_counter() - t0) * 1000
            cpu = srv.cpu_us() - cpu0
            calls = {k: v for k, v in srv.calls().items() if k not in ("config|resetstat", "info")}
            label = path + (" (again: the refresh)" if i == 10 else "")
            rows.append((label, sum(calls.values()), cpu, wall, calls))
        proc.kill()
        proc.wait()
        # One tick of the sampler: a dashboard that records history.
        srv.r.config_resetstat()
        cpu0 = srv.cpu_us()
        proc, base = start_dashboard(bindir, srv.url, refresh="1s")
        time.sleep(2)
        calls = {k: v for k, v in srv.calls().items() if k not in ("config|resetstat", "info")}
        rows.append(("history sampler, one tick (every 10 s, per dashboard)", sum(calls.values()),
                     srv.cpu_us() - cpu0, 0.0, calls))
        proc.kill()
        proc.wait()
        return rows
    finally:
        srv.stop()


def viewers(base, paths, n, every, stop):
    def viewer():
        while not stop.is_set():
            for p in paths:
                try:
                    get(base, p)
                except OSError:
                    pass
            stop.wait(every)
    threads = [threading.Thread(target=viewer, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def scenario_b(bindir, window, rate, with_dashboard):
    srv = Server()
    worker = subprocess.Popen([os.path.join(bindir, "example-quickstart"), "worker", "--queue", "busy",
                               "--concurrency", "20"], env={**os.environ, "REDIS_URL": srv.url, "RUST_LOG": "warn"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    dash = None
    try:
        payload = msgpack.packb({"to": "someone@example.com", "subject": "hello"})

        def produce():
            r = redis.Redis(port=srv.port)
            while not stop.is_set():
                t0 = time.perf_counter()
                pipe = r.pipeline(transaction=False)
                for _ in range(rate // 10):
                    pipe.xadd("jobstream:{busy}:ready", {"type": "send_email", "id": str(uuid.uuid4()), "payload": payload})
                pipe.execute()
                time.sleep(max(0, 0.1 - (time.perf_counter() - t0)))
        threading.Thread(target=produce, daemon=True).start()
        if with_dashboard:
            dash, base = start_dashboard(bindir, srv.url)
            viewers(base, ["api/config"], 1, 0, threading.Event())
            viewers(base, ["api/overview"], 10, 3, stop)
            viewers(base, ["api/queues/busy", "api/queues/busy/jobs?state=ready"], 10, 3, stop)
        time.sleep(5)  # warm up
        cpu0, cmd0 = srv.cpu_us(), srv.total()
        done0 = int(srv.r.hget("jobstream:{busy}:stats", "processed") or 0)
        time.sleep(window)
        cpu = (srv.cpu_us() - cpu0) / 1e6
        cmds = srv.total() - cmd0
        done = int(srv.r.hget("jobstream:{busy}:stats", "processed") or 0) - done0
        return {"cpu_pct": 100 * cpu / window, "cmds_per_s": cmds / window, "jobs_per_s": done / window}
    finally:
        stop.set()
        if dash:
            dash.kill()
            dash.wait()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backlog", type=int, default=100_000)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--rate", type=int, default=2000, help="jobs/s produced in scenario B")
    ap.add_argument("--skip-b", action="store_true")
    args = ap.parse_args()
    bindir = binaries()
    out = [f"Binaries: {bindir}", ""]
    for size in (args.backlog // 10, args.backlog):
        rows = scenario_a(bindir, size, size // 5, size // 20)
        out += [f"### One request each, backlog {size:,} ready / {size // 5:,} scheduled / {size // 20:,} dead", "",
                "| request | Redis commands | Redis CPU (µs) | wall (ms) | commands |", "|---|---:|---:|---:|---|"]
        for label, n, cpu, wall, calls in rows:
            top = ", ".join(f"{k} {v}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1]))
            out.append(f"| `{label}` | {n} | {cpu:.0f} | {wall:.1f} | {top} |")
        out.append("")
    if not args.skip_b:
        out += [f"### A busy queue ({args.rate} jobs/s, a 20-slot worker), {args.window} s windows", "",
                "| run | dashboards | Redis CPU % | commands/s | jobs/s processed |", "|---|---|---:|---:|---:|"]
        for run in (1, 2):
            for with_dash in (False, True):
                m = scenario_b(bindir, args.window, args.rate, with_dash)
                label = "1 dashboard, 10 overview + 10 queue-page viewers (3 s)" if with_dash else "none"
                out.append(f"| {run} | {label} | {m['cpu_pct']:.1f} | {m['cmds_per_s']:.0f} | {m['jobs_per_s']:.0f} |")
    text = "\n".join(out)
    print(text)
    os.makedirs(os.path.join(ROOT, ".tmp"), exist_ok=True)
    with open(os.path.join(ROOT, ".tmp/dashboard-load.md"), "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
