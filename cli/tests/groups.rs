#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `jobstream enqueue --group` and `jobstream queue groups` against a real
//! server: jobs of groups wait behind their group's first one (no worker
//! runs), and the groups show with their admitted and waiting counts,
//! most waiting first; `stats` shows the waiting ones.

mod common;

use common::*;
use jobstream_testkit::{RedisServer, unique_queue};

#[test]
fn queue_groups_lists_each_group_most_waiting_first() {
    let server = RedisServer::start();
    let queue = unique_queue("tenants");
    for (group, n) in [("small", 1), ("big", 4), ("middle", 2)] {
        for _ in 0..n {
            ok(
                &server,
                &[
                    "enqueue",
                    "--queue",
                    &queue,
                    "--type",
                    "sync",
                    "--job-group",
                    group,
                ],
            );
        }
    }
    let v = json(&server, &["queue", "groups", &queue]);
    assert_eq!(v["queue"], queue.as_str());
    assert_eq!(v["concurrency"], 1);
    assert_eq!(v["total"], 3);
    assert_eq!(v["capped"], false);
    let rows: Vec<(String, u64, u64)> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["group"].as_str().unwrap().to_owned(),
                g["admitted"].as_u64().unwrap(),
                g["waiting"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("big".to_owned(), 1, 3),
            ("middle".to_owned(), 1, 1),
            ("small".to_owned(), 1, 0)
        ]
    );
    let table = ok(&server, &["queue", "groups", &queue, "--limit", "1"]);
    assert!(
        table.contains("3 group(s)") && table.contains("big"),
        "{table}"
    );
    assert!(!table.contains("middle"), "--limit 1: {table}");
    // Only the first job of each group is in ready; the rest wait.
    let stats = json(&server, &["stats", "--queue", &queue]);
    let q = &stats["queues"][0];
    assert_eq!(
        (q["ready"].as_u64(), q["group_waiting"].as_u64()),
        (Some(3), Some(4)),
        "{q}"
    );
    // A bad group is refused before anything is sent.
    let long = "x".repeat(300);
    let out = jobstream(
        &server,
        &[
            "enqueue",
            "--queue",
            &queue,
            "--type",
            "sync",
            "--job-group",
            &long,
        ],
    );
    assert!(
        !out.status.success() && text(&out).contains("group"),
        "{}",
        text(&out)
    );
    // An unknown queue is an error naming the known ones.
    let out = jobstream(&server, &["queue", "groups", "nope"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
