#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `jobstream queue limits` as a process against a real redis-server: set,
//! show and clear a queue's backpressure limits; `enqueue` refused with the
//! depth under `reject`; shedding with `--shed-to-dead`, visible in `stats`
//! and `queues`, with the books still balanced (`check`).

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use jobstream_testkit::{RedisServer, free_addr, http_get, unique_queue};

fn enqueue(server: &RedisServer, queue: &str) -> Output {
    jobstream(
        server,
        &[
            "enqueue",
            "--queue",
            queue,
            "--type",
            "send",
            "--payload-json",
            "{}",
        ],
    )
}

#[test]
fn limits_are_set_shown_enforced_and_cleared() {
    let server = RedisServer::start();
    let queue = unique_queue("limits");
    let v = json(
        &server,
        &[
            "queue",
            "limits",
            &queue,
            "--max-ready",
            "2",
            "--max-age",
            "5m",
        ],
    );
    assert_eq!(v["limits"]["max_ready"], 2, "{v}");
    assert_eq!(v["limits"]["max_age_ms"], 300_000, "{v}");
    assert_eq!(v["limits"]["policy"], "reject", "{v}");
    let shown = ok(&server, &["queue", "limits", &queue]);
    assert!(
        shown.contains("max_ready 2, max_age 5m, policy reject"),
        "{shown}"
    );

    for _ in 0..2 {
        let out = enqueue(&server, &queue);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = enqueue(&server, &queue);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is full: 2 undelivered jobs (max_ready 2)"),
        "{}",
        text(&out)
    );

    let stats = json(&server, &["stats", "--queue", &queue]);
    let s = &stats["queues"][0];
    assert_eq!(
        (&s["ready"], &s["rejected"], &s["shed"]),
        (&2.into(), &1.into(), &0.into()),
        "{s}"
    );
    assert_eq!(s["limits"]["max_ready"], 2, "{s}");
    let table = ok(&server, &["queues"]);
    assert!(table.contains("max_ready 2"), "{table}");

    // Shed to dead: the oldest goes to dead, the books balance.
    json(
        &server,
        &[
            "queue",
            "limits",
            &queue,
            "--max-ready",
            "2",
            "--policy",
            "shed",
            "--shed-to-dead",
        ],
    );
    let out = enqueue(&server, &queue);
    assert!(out.status.success(), "{}", text(&out));
    let s = json(&server, &["stats", "--queue", &queue])["queues"][0].clone();
    assert_eq!(
        (&s["ready"], &s["shed"], &s["dead"]),
        (&2.into(), &1.into(), &1.into()),
        "{s}"
    );
    let dead = json(&server, &["dlq", "list", "--queue", &queue]);
    assert!(dead.to_string().contains("\"shed\""), "{dead}");
    let out = jobstream(&server, &["check", "--queue", &queue]);
    let report = text(&out);
    assert!(report.contains(&format!("queue {queue}: OK")), "{report}");

    // The exporter's gauges read the same counters.
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
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let (_, body) = metrics.expect("the exporter answers");
    assert!(
        body.contains(&format!("jobstream_queue_rejected{{queue=\"{queue}\"}} 1")),
        "{body}"
    );
    assert!(
        body.contains(&format!("jobstream_queue_shed{{queue=\"{queue}\"}} 1")),
        "{body}"
    );

    let v = json(&server, &["queue", "limits", &queue, "--clear"]);
    assert_eq!(v["limits"], serde_json::Value::Null, "{v}");
    for _ in 0..3 {
        let out = enqueue(&server, &queue);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = jobstream(&server, &["queue", "limits", &queue, "--max-ready", "0"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
