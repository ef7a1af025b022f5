//! The quickstart and the CLI as real processes: a job written by Python,
//! SIGTERM under load, SIGKILL of a worker, and `stats --json` against what
//! Redis holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use jobstream_testkit::{RedisServer, unique_queue, wait_until};

const QUICKSTART: &str = env!("CARGO_BIN_EXE_example-quickstart");

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `jobstream` CLI binary, built by cargo next to this test's binary.
fn cli_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    // Built on every run (a no-op when up to date), so a stale binary from
    // an earlier build is never tested.
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "jobstream-cli"])
            .current_dir(repo_root())
            .status()
            .unwrap();
        assert!(status.success());
    });
    dir.join("jobstream")
}

fn quickstart(server: &RedisServer, args: &[&str]) -> Command {
    let mut c = Command::new(QUICKSTART);
    c.args(args)
        .env("REDIS_URL", server.url())
        .env("RUST_LOG", "info");
    c
}

struct WorkerProc {
    child: Child,
    log: PathBuf,
}

impl WorkerProc {
    fn start(server: &RedisServer, queue: &str, extra: &[&str]) -> Self {
        // Build the CLI before any worker runs, so no test's timing includes
        // a cargo build.
        cli_bin();
        let log = std::env::temp_dir().join(format!("{queue}-{:x}.log", rand_u64()));
        let file = std::fs::File::create(&log).unwrap();
        let mut args = vec!["worker", "--queue", queue];
        args.extend_from_slice(extra);
        let child = quickstart(server, &args)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        let w = Self { child, log };
        assert!(
            wait_until(Duration::from_secs(20), || w.consumer().is_some()),
            "worker did not start: {}",
            w.log_text()
        );
        w
    }
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// The consumer name the worker logged at start.
    fn consumer(&self) -> Option<String> {
        let text = self.log_text();
        let plain = strip_ansi(&text);
        let at = plain.find("consumer=")? + "consumer=".len();
        plain[at..].split_whitespace().next().map(str::to_owned)
    }
    fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY-free: libc::kill is a plain syscall wrapper.
        assert_eq!(kill(pid, sig), 0);
    }
    fn wait(mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        let _ = std::fs::remove_file(&self.log);
        status
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kill(pid: i32, sig: i32) -> i32 {
    let out = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    if out.success() { 0 } else { -1 }
}

fn rand_u64() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stats(server: &RedisServer, queue: &str) -> serde_json::Value {
    let out = run(Command::new(cli_bin())
        .args(["stats", "--queue", queue, "--json"])
        .env("REDIS_URL", server.url()));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["queues"][0].clone()
}

fn n(v: &serde_json::Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
}

fn pending_of(server: &RedisServer, queue: &str, consumer: &str) -> u64 {
    let key = format!("jobstream:{{{queue}}}:ready");
    let out = server
        .cli(&["XPENDING", &key, "workers", "-", "+", "100000", consumer])
        .unwrap();
    out.lines()
        .filter(|l| l.contains('-') && l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .count() as u64
}

#[test]
fn a_job_written_by_python_with_plain_redis_commands_is_run() {
    let ok = Command::new("python3")
        .args(["-c", "import redis, msgpack"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python3 with the redis and msgpack packages is needed: pip install -r examples/python/requirements.txt"
    );
    let server = RedisServer::start();
    let queue = unique_queue("python");
    let script = repo_root().join("examples/python/enqueue.py");
    let url = server.url();
    run(Command::new("python3")
        .arg(&script)
        .args(["--url", &url, "--queue", &queue, "--count", "3"]));
    run(Command::new("python3").arg(&script).args([
        "--url",
        &url,
        "--queue",
        &queue,
        "--count",
        "2",
        "--delay-ms",
        "300",
    ]));
    let w = WorkerProc::start(&server, &queue, &["--concurrency", "4"]);
    assert!(
        wait_until(Duration::from_secs(20), || n(
            &stats(&server, &queue),
            "processed"
        ) == 5),
        "{}",
        stats(&server, &queue)
    );
    let s = stats(&server, &queue);
    assert_eq!(
        (
            n(&s, "dead"),
            n(&s, "ready"),
            n(&s, "scheduled"),
            n(&s, "in_flight")
        ),
        (0, 0, 0, 0),
        "{s}"
    );
    w.signal(15);
    assert!(w.wait().success());
}

/// The contract for other languages: a Python producer sets a uniqueness
/// key (through the script `enqueue-6`) and a start deadline, and the Rust
/// worker honours both.
#[test]
fn a_python_producer_sets_a_uniqueness_key_and_a_start_deadline() {
    let server = RedisServer::start();
    let queue = unique_queue("python-unique");
    let script = repo_root().join("examples/python/enqueue.py");
    let url = server.url();
    let out = run(Command::new("python3").arg(&script).args([
        "--url",
        &url,
        "--queue",
        &queue,
        "--count",
        "3",
        "--unique",
        "welcome-42",
    ]));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(!lines[0].contains("duplicate"), "{lines:?}");
    assert_eq!(lines[1], format!("{} (duplicate)", lines[0]), "{lines:?}");
    assert_eq!(lines[2], lines[1], "{lines:?}");
    let s = stats(&server, &queue);
    assert_eq!((n(&s, "ready"), n(&s, "duplicates")), (1, 2), "{s}");
    // Not startable in time: no worker runs for the first 300 ms.
    run(Command::new("python3").arg(&script).args([
        "--url",
        &url,
        "--queue",
        &queue,
        "--start-within-ms",
        "100",
    ]));
    std::thread::sleep(Duration::from_millis(300));
    let w = WorkerProc::start(&server, &queue, &["--concurrency", "4"]);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = stats(&server, &queue);
            n(&s, "processed") == 1 && n(&s, "dead") == 1
        }),
        "{}",
        stats(&server, &queue)
    );
    // The key was released when its job completed: a new one is taken.
    let out = run(Command::new("python3").arg(&script).args([
        "--url",
        &url,
        "--queue",
        &queue,
        "--unique",
        "welcome-42",
    ]));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("duplicate"));
    let reason = server
        .cli(&[
            "XREVRANGE",
            &format!("jobstream:{{{queue}}}:dead"),
            "+",
            "-",
            "COUNT",
            "1",
        ])
        .unwrap();
    assert!(reason.contains("expired"), "{reason}");
    w.signal(15);
    assert!(w.wait().success());
}

#[test]
fn sigterm_under_load_leaves_nothing_pending_for_that_worker_and_loses_nothing() {
    let server = RedisServer::start();
    let queue = unique_queue("sigterm");
    run(&mut quickstart(
        &server,
        &[
            "produce",
            "--queue",
            &queue,
            "--count",
            "1500",
            "--work-ms",
            "20",
        ],
    ));
    let a = WorkerProc::start(&server, &queue, &["--concurrency", "10"]);
    let b = WorkerProc::start(&server, &queue, &["--concurrency", "10"]);
    let a_name = a.consumer().unwrap();
    assert!(wait_until(Duration::from_secs(30), || n(
        &stats(&server, &queue),
        "processed"
    ) >= 100));
    a.signal(15);
    let status = a.wait();
    assert!(status.success(), "graceful exit: {status:?}");
    assert_eq!(
        pending_of(&server, &queue, &a_name),
        0,
        "the stopped worker holds nothing"
    );
    assert!(
        wait_until(Duration::from_secs(60), || n(
            &stats(&server, &queue),
            "processed"
        ) == 1500),
        "{}",
        stats(&server, &queue)
    );
    let s = stats(&server, &queue);
    assert_eq!(
        (n(&s, "ready"), n(&s, "in_flight"), n(&s, "dead")),
        (0, 0, 0),
        "{s}"
    );
    b.signal(15);
    assert!(b.wait().success());
}

#[test]
fn jobs_of_a_sigkilled_worker_are_run_by_another_after_the_visibility_timeout() {
    let server = RedisServer::start();
    let queue = unique_queue("sigkill");
    run(&mut quickstart(
        &server,
        &[
            "produce",
            "--queue",
            &queue,
            "--count",
            "2000",
            "--work-ms",
            "50",
        ],
    ));
    let vis = ["--concurrency", "20", "--visibility-timeout-ms", "1500"];
    let a = WorkerProc::start(&server, &queue, &vis);
    // Polled with redis-cli (cheaper than the CLI) so the kill lands mid-run.
    let stats_key = format!("jobstream:{{{queue}}}:stats");
    assert!(wait_until(Duration::from_secs(30), || {
        server
            .cli(&["HGET", &stats_key, "processed"])
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|p| p >= 40)
    }));
    a.signal(9);
    a.wait();
    let s = stats(&server, &queue);
    assert!(
        n(&s, "in_flight") > 0,
        "the killed worker left jobs pending: {s}"
    );
    let b = WorkerProc::start(&server, &queue, &vis);
    assert!(
        wait_until(Duration::from_secs(60), || {
            let s = stats(&server, &queue);
            n(&s, "processed") == 2000 && n(&s, "in_flight") == 0
        }),
        "{}",
        stats(&server, &queue)
    );
    assert_eq!(n(&stats(&server, &queue), "dead"), 0);
    b.signal(15);
    assert!(b.wait().success());
}

#[test]
fn stats_json_matches_what_redis_holds() {
    let server = RedisServer::start();
    let queue = unique_queue("stats");
    run(&mut quickstart(
        &server,
        &["produce", "--queue", &queue, "--count", "7"],
    ));
    run(&mut quickstart(
        &server,
        &[
            "produce",
            "--queue",
            &queue,
            "--count",
            "2",
            "--delay-ms",
            "600000",
        ],
    ));
    let key = |k: &str| format!("jobstream:{{{queue}}}:{k}");
    server
        .cli(&["XGROUP", "CREATE", &key("ready"), "workers", "0"])
        .unwrap();
    server
        .cli(&[
            "XREADGROUP",
            "GROUP",
            "workers",
            "c1",
            "COUNT",
            "3",
            "STREAMS",
            &key("ready"),
            ">",
        ])
        .unwrap();
    server
        .cli(&[
            "XADD",
            &key("dead"),
            "*",
            "type",
            "t",
            "reason",
            "malformed",
        ])
        .unwrap();
    server
        .cli(&["HSET", &key("stats"), "processed", "11"])
        .unwrap();
    let s = stats(&server, &queue);
    assert_eq!(s["name"], queue.as_str());
    assert_eq!(n(&s, "ready"), 4);
    assert_eq!(n(&s, "in_flight"), 3);
    assert_eq!(n(&s, "scheduled"), 2);
    assert_eq!(n(&s, "dead"), 1);
    assert_eq!(n(&s, "processed"), 11);
    assert_eq!(n(&s, "consumers"), 1);
    assert!(s["oldest_ready_age_ms"].is_u64());
    // Without --queue, every registered queue is listed.
    let out = run(Command::new(cli_bin())
        .args(["stats", "--json"])
        .env("REDIS_URL", server.url()));
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        all["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == queue.as_str())
    );
}

#[test]
fn the_dlq_commands_list_show_replay_and_discard() {
    let server = RedisServer::start();
    let queue = unique_queue("dlq");
    run(&mut quickstart(
        &server,
        &[
            "produce",
            "--queue",
            &queue,
            "--count",
            "6",
            "--permanent-ratio",
            "1",
        ],
    ));
    let w = WorkerProc::start(&server, &queue, &["--concurrency", "4"]);
    assert!(wait_until(Duration::from_secs(20), || n(
        &stats(&server, &queue),
        "dead"
    ) == 6));
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = run(Command::new(cli_bin())
            .args(args)
            .env("REDIS_URL", server.url()));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let list = cli(&["dlq", "list", "--queue", &queue, "--json"]);
    let jobs = list["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 6);
    let first = &jobs[0];
    assert_eq!(first["reason"], "permanent");
    assert_eq!(first["error_class"], "smtp_rejected");
    assert!(first.get("payload").is_none(), "list never prints payloads");
    let job_id = first["job_id"].as_str().unwrap().to_owned();
    let shown = cli(&["dlq", "show", "--queue", &queue, "--id", &job_id, "--json"]);
    assert!(
        shown["jobs"][0]["payload"]["to"]
            .as_str()
            .unwrap()
            .contains('@')
    );
    let replayed = cli(&[
        "dlq", "replay", "--queue", &queue, "--id", &job_id, "--json",
    ]);
    assert_eq!(replayed["replayed"], 1);
    // The replayed job fails permanently again: back in dead, with the same id.
    assert!(wait_until(Duration::from_secs(20), || {
        let l = cli(&["dlq", "list", "--queue", &queue, "--id", &job_id, "--json"]);
        l["jobs"].as_array().is_some_and(|j| j.len() == 1)
    }));
    let refused = Command::new(cli_bin())
        .args(["dlq", "discard", "--queue", &queue])
        .env("REDIS_URL", server.url())
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "discard without a selection is refused"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--all"));
    let discarded = cli(&[
        "dlq",
        "discard",
        "--queue",
        &queue,
        "--reason",
        "permanent",
        "--json",
    ]);
    assert_eq!(discarded["discarded"], 6);
    assert_eq!(n(&stats(&server, &queue), "dead"), 0);
    w.signal(15);
    assert!(w.wait().success());
}

#[test]
fn a_second_sigterm_exits_at_once_and_loses_nothing() {
    let server = RedisServer::start();
    let queue = unique_queue("twice");
    run(&mut quickstart(
        &server,
        &[
            "produce",
            "--queue",
            &queue,
            "--count",
            "5",
            "--work-ms",
            "20000",
        ],
    ));
    let w = WorkerProc::start(&server, &queue, &["--shutdown-grace-ms", "60000"]);
    assert!(wait_until(Duration::from_secs(20), || n(
        &stats(&server, &queue),
        "in_flight"
    ) == 5));
    w.signal(15);
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    w.signal(15);
    let mut w = w;
    let exited = wait_until(Duration::from_secs(3), || {
        w.child.try_wait().ok().flatten().is_some()
    });
    assert!(
        exited,
        "a second SIGTERM must stop the worker at once: {}",
        w.log_text()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The jobs were running: they stay pending, to be reclaimed.
    let s = stats(&server, &queue);
    assert_eq!((n(&s, "in_flight"), n(&s, "processed")), (5, 0), "{s}");
}

/// A process under libfaketime: its wall clock is `offset` away.
fn skewed(offset: &str, mut cmd: Command) -> Command {
    let program = cmd.get_program().to_owned();
    let mut c = Command::new("faketime");
    c.arg("-f").arg(offset).arg(program).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    // Skew only the wall clock; the monotonic clock stays true.
    c.env("DONT_FAKE_MONOTONIC", "1");
    let _ = &mut cmd;
    c
}

#[test]
fn a_clock_an_hour_off_neither_runs_delayed_jobs_early_nor_late() {
    let server = RedisServer::start();
    let queue = unique_queue("skew");
    // A job delayed by 30 minutes, enqueued with a true clock.
    run(&mut quickstart(
        &server,
        &[
            "produce",
            "--queue",
            &queue,
            "--count",
            "3",
            "--delay-ms",
            "1800000",
        ],
    ));
    // A producer whose clock is an hour ahead: a 1 s delay is 1 s of the
    // server's time, not due an hour from now.
    run(&mut skewed(
        "+1h",
        quickstart(
            &server,
            &[
                "produce",
                "--queue",
                &queue,
                "--count",
                "2",
                "--delay-ms",
                "1000",
            ],
        ),
    ));
    // A worker an hour ahead must not see the 30-minute jobs as due.
    let log = std::env::temp_dir().join(format!("{queue}.log"));
    // Its own process group: faketime runs the worker as its child, and
    // killing faketime alone left the worker running after the test.
    let mut worker = skewed("+1h", quickstart(&server, &["worker", "--queue", &queue]))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let done = wait_until(Duration::from_secs(20), || {
        n(&stats(&server, &queue), "processed") == 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let s = stats(&server, &queue);
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", worker.id())])
        .status();
    let _ = worker.kill();
    let _ = worker.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        done,
        "the 1 s jobs of the skewed producer did not run: {s} {text}"
    );
    assert_eq!(
        (n(&s, "processed"), n(&s, "scheduled")),
        (2, 3),
        "the 30-minute jobs must wait: {s}"
    );
}

#[test]
fn wrong_credentials_fail_fast_with_one_message_naming_the_server() {
    let server = RedisServer::start();
    server
        .cli(&["CONFIG", "SET", "requirepass", "s3cret"])
        .unwrap();
    let url = format!("redis://:n0t-s3cret@127.0.0.1:{}", server.port());
    let started = std::time::Instant::now();
    let out = Command::new(cli_bin())
        .args(["stats"])
        .env("REDIS_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("127.0.0.1:{}", server.port())) && err.contains("Fix:"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "the password leaked: {err}");
    let out = Command::new(QUICKSTART)
        .args(["worker", "--queue", "creds"])
        .env("REDIS_URL", &url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Fix:") && !err.contains("s3cret"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// `JOBSTREAM_LOG_FORMAT=json`: every line the worker writes is one JSON
/// object; a failed attempt is a WARN, a dead letter an ERROR, and both
/// carry the job id.
#[test]
fn json_logs_are_one_object_per_line_with_levels_and_job_ids() {
    let server = RedisServer::start();
    let queue = unique_queue("json-logs");
    run(&mut quickstart(
        &server,
        &[
            "produce",
            "--queue",
            &queue,
            // Each job is drawn failing-then-ok or permanent, half and
            // half: 40 make both kinds certain (4 left one out 1 run in 8).
            "--count",
            "40",
            "--fail-ratio",
            "0.5",
            "--permanent-ratio",
            "0.5",
        ],
    ));
    let log = std::env::temp_dir().join(format!("{queue}.jsonl"));
    let mut child = quickstart(
        &server,
        &["worker", "--queue", &queue, "--backoff-ms", "10"],
    )
    .env("JOBSTREAM_LOG_FORMAT", "json")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let settled = wait_until(Duration::from_secs(60), || {
        let s = stats(&server, &queue);
        n(&s, "processed") + n(&s, "dead") == 40 && n(&s, "in_flight") == 0
    });
    terminate(&mut child);
    assert!(settled, "{}", stats(&server, &queue));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let at = |level: &str| {
        lines
            .iter()
            .filter(|v| v["level"] == level && v["fields"]["job_id"].is_string())
            .count()
    };
    assert!(at("WARN") >= 1, "{text}");
    assert!(at("ERROR") >= 1, "{text}");
}

/// SIGTERM, then wait: the worker drains and exits.
fn terminate(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// `jobstream workers`: live workers with their heartbeat; a SIGKILLed one
/// turns stale after 15 s; one stopped with SIGTERM leaves the list.
#[test]
fn workers_lists_live_and_stale_workers() {
    let server = RedisServer::start();
    let queue = unique_queue("workers");
    let a = WorkerProc::start(&server, &queue, &["--concurrency", "3"]);
    let b = WorkerProc::start(&server, &queue, &["--concurrency", "2"]);
    let (a_name, b_name) = (a.consumer().unwrap(), b.consumer().unwrap());
    let list = || {
        let out = run(Command::new(cli_bin())
            .args(["workers", "--json"])
            .env("REDIS_URL", server.url()));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["workers"].as_array().unwrap().clone()
    };
    let find =
        |ws: &[serde_json::Value], name: &str| ws.iter().find(|w| w["name"] == name).cloned();
    // A worker logs its name as it starts, a moment before its first
    // heartbeat: wait for both to be listed.
    let mut ws = list();
    let listed = wait_until(Duration::from_secs(10), || {
        ws = list();
        find(&ws, &a_name).is_some() && find(&ws, &b_name).is_some()
    });
    assert!(listed, "both workers are listed: {ws:?}");
    let wa = find(&ws, &a_name).expect("worker a is listed");
    assert_eq!(
        (wa["state"].as_str(), wa["concurrency"].as_u64()),
        (Some("live"), Some(3)),
        "{wa}"
    );
    assert!(
        wa["seen_at"].as_str().unwrap().ends_with('Z'),
        "RFC 3339: {wa}"
    );
    assert_eq!(wa["queues"][0], queue.as_str());
    b.signal(15);
    assert!(b.wait().success());
    a.signal(9);
    let _ = a.wait();
    assert!(
        find(&list(), &b_name).is_none(),
        "a clean stop leaves the list"
    );
    assert!(
        wait_until(Duration::from_secs(30), || find(&list(), &a_name)
            .is_some_and(|w| w["state"] == "stale")),
        "a killed worker turns stale: {:?}",
        list()
    );
}

/// `jobstream queue pause` against three worker processes: within a second
/// none starts a job of the queue (what was running finishes, the backlog
/// stays), `stats` shows it paused; `queue resume` restarts them all.
#[test]
fn queue_pause_stops_three_worker_processes_and_resume_restarts_them() {
    let server = RedisServer::start();
    let queue = unique_queue("pause");
    let cli = |args: &[&str]| {
        let mut c = Command::new(cli_bin());
        c.args(args).env("REDIS_URL", server.url());
        c
    };
    run(&mut quickstart(
        &server,
        &[
            "produce",
            "--queue",
            &queue,
            "--count",
            "600",
            "--work-ms",
            "100",
        ],
    ));
    let workers: Vec<WorkerProc> = (0..3)
        .map(|_| WorkerProc::start(&server, &queue, &["--concurrency", "4"]))
        .collect();
    assert!(wait_until(Duration::from_secs(30), || n(
        &stats(&server, &queue),
        "processed"
    ) >= 30));
    let out = run(&mut cli(&["queue", "pause", &queue, "--json"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["paused"].as_bool(), v["changed"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    // Within a second every worker stopped fetching; the 100 ms jobs that
    // were running have finished.
    std::thread::sleep(Duration::from_millis(1200));
    let before = stats(&server, &queue);
    std::thread::sleep(Duration::from_millis(1500));
    let after = stats(&server, &queue);
    assert_eq!(
        n(&after, "processed"),
        n(&before, "processed"),
        "jobs ran while paused: {after}"
    );
    assert_eq!(n(&after, "in_flight"), 0, "{after}");
    assert!(n(&after, "ready") > 0, "{after}");
    assert_eq!(after["paused"].as_bool(), Some(true), "{after}");
    // Unknown queues are refused; a second pause changes nothing.
    let out = cli(&["queue", "pause", "no-such-queue"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown queue"));
    let out = run(&mut cli(&["queue", "pause", &queue]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("already paused"));

    run(&mut cli(&["queue", "resume", &queue]));
    assert!(
        wait_until(Duration::from_secs(60), || n(
            &stats(&server, &queue),
            "processed"
        ) == 600),
        "{}",
        stats(&server, &queue)
    );
    let s = stats(&server, &queue);
    assert_eq!(s["paused"].as_bool(), Some(false), "{s}");
    // 0 balanced, 2 balanced with warnings about this test server's settings.
    let check = cli(&["check", "--queue", &queue]).output().unwrap();
    assert!(matches!(check.status.code(), Some(0 | 2)), "{check:?}");
    for w in workers {
        w.signal(15);
        assert!(w.wait().success());
    }
}
