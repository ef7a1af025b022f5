//! `jobstream promote`: with no worker running, a delayed job reaches
//! `ready` when due (not before), and the consumer group's lag counts it,
//! which is what an autoscaler (KEDA's redis-streams trigger) watches to
//! start a worker.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use jobstream_testkit::{RedisServer, unique_queue};

/// The group's `lag` from `XINFO GROUPS` (None: no group yet).
fn lag(server: &RedisServer, queue: &str) -> Option<u64> {
    let out = server.cli(&["XINFO", "GROUPS", &format!("jobstream:{{{queue}}}:ready")])?;
    let lines: Vec<&str> = out.lines().collect();
    let i = lines.iter().position(|l| *l == "lag")?;
    lines.get(i + 1)?.trim().parse().ok()
}

#[test]
fn a_delayed_job_becomes_ready_on_time_with_no_worker_and_raises_the_lag() {
    let server = RedisServer::start();
    let queue = unique_queue("promote");
    let ready = format!("jobstream:{{{queue}}}:ready");
    let xlen = || {
        server
            .cli(&["XLEN", &ready])
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    let mut promoter = Command::new(BIN)
        .args(["promote", "--queue", &queue])
        .env("REDIS_URL", server.url())
        .env_remove("JOBSTREAM_PREFIX")
        .env_remove("JOBSTREAM_GROUP")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The promoter creates the group a worker would: lag 0, not "no group".
    let deadline = Instant::now() + Duration::from_secs(10);
    while lag(&server, &queue).is_none() {
        assert!(
            Instant::now() < deadline,
            "the promoter made no consumer group"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lag(&server, &queue), Some(0));
    let enqueued = Instant::now();
    ok(
        &server,
        &["enqueue", "--queue", &queue, "--type", "t", "--delay", "2s"],
    );
    // Not before it is due...
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(xlen(), 0, "promoted before its due time");
    // ...and within the promote interval (0.5 s) after it.
    let deadline = enqueued + Duration::from_millis(2000 + 1500);
    while xlen() == 0 {
        assert!(
            Instant::now() < deadline,
            "not in ready 1.5 s after it was due"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(enqueued.elapsed() >= Duration::from_millis(1950));
    assert_eq!(
        lag(&server, &queue),
        Some(1),
        "the lag an autoscaler reads counts it"
    );
    // SIGTERM: a clean stop.
    Command::new("kill")
        .arg(promoter.id().to_string())
        .status()
        .unwrap();
    let status = promoter.wait().unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn promote_refuses_a_bad_queue_name_and_a_wrong_password() {
    let server = RedisServer::start();
    let out = jobstream(&server, &["promote", "--queue", "bad{name}"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("queue name"), "{}", text(&out));
    server
        .cli(&["CONFIG", "SET", "requirepass", "right"])
        .unwrap();
    let url = format!("redis://:wrong@127.0.0.1:{}", server.port());
    let out = Command::new(BIN)
        .args(["promote", "--queue", "q"])
        .env("REDIS_URL", &url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let t = text(&out);
    assert!(!t.contains("wrong"), "the password leaked: {t}");
}
