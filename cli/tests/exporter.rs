#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `jobstream exporter`: every known queue's gauges at /metrics without a
//! worker, /readyz following Redis, and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use jobstream_testkit::{RedisServer, free_addr, http_get, unique_queue};

const BIN: &str = env!("CARGO_BIN_EXE_jobstream");

fn enqueue(server: &RedisServer, queue: &str) {
    let out = Command::new(BIN)
        .args(["enqueue", "--queue", queue, "--type", "t"])
        .env("REDIS_URL", server.url())
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn the_exporter_serves_every_known_queue_without_a_worker() {
    let mut server = RedisServer::start();
    let (a, b) = (unique_queue("exp-a"), unique_queue("exp-b"));
    for _ in 0..3 {
        enqueue(&server, &a);
    }
    enqueue(&server, &b);
    let addr = free_addr();
    let mut child = Command::new(BIN)
        .args(["exporter", "--listen", &addr.to_string()])
        .env("REDIS_URL", server.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut metrics = None;
    for _ in 0..200 {
        metrics = http_get(addr, "/metrics");
        if metrics.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let (status, body) = metrics.expect("the exporter answers");
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!("jobstream_queue_ready{{queue=\"{a}\"}} 3")),
        "{body}"
    );
    assert!(
        body.contains(&format!("jobstream_queue_ready{{queue=\"{b}\"}} 1")),
        "{body}"
    );
    assert!(
        !body.contains("jobstream_worker_concurrency"),
        "no worker gauges: {body}"
    );
    assert_eq!(http_get(addr, "/readyz").unwrap().0, 200);
    server.kill();
    assert_eq!(http_get(addr, "/readyz").unwrap().0, 503);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
