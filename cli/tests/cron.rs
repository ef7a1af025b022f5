#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `jobstream cron list|forget` as a process against a real redis-server,
//! reading the keys exactly as docs/wire-format.md documents them (as a
//! worker in any language writes them).

mod common;

use common::*;
use jobstream_testkit::{RedisServer, unique_queue};

fn declare(server: &RedisServer, name: &str, queue: &str, cron: &str, tz: &str, missed: &str) {
    let json = serde_json::json!({
        "name": name, "queue": queue, "job_type": "report", "cron": cron,
        "time_zone": tz, "missed": missed, "missed_max": 10,
        "worker": "host-abc123", "declared_at_ms": 1_767_225_600_000u64,
    });
    server
        .cli(&["HSET", "jobstream:crons", name, &json.to_string()])
        .unwrap();
}

#[test]
fn cron_list_shows_each_schedule_with_its_last_and_next_tick() {
    let server = RedisServer::start();
    let out = ok(&server, &["cron", "list"]);
    assert!(out.contains("no cron schedule declared"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&server, &["cron", "list", "--json"])).unwrap();
    assert_eq!(v["crons"], serde_json::json!([]));

    let queue = unique_queue("cron-cli");
    declare(
        &server,
        "nightly",
        &queue,
        "0 30 2 * * *",
        "Europe/Paris",
        "run_each",
    );
    declare(&server, "every-min", &queue, "* * * * *", "UTC", "skip");
    let tick = "1767225600000";
    server
        .cli(&[
            "HSET",
            &format!("jobstream:{{{queue}}}:cron"),
            "nightly",
            tick,
        ])
        .unwrap();

    let v: serde_json::Value =
        serde_json::from_str(&ok(&server, &["cron", "list", "--json"])).unwrap();
    let crons = v["crons"].as_array().unwrap();
    assert_eq!(crons.len(), 2, "{v}");
    // Sorted by name.
    let (every, nightly) = (&crons[0], &crons[1]);
    assert_eq!(every["name"], "every-min");
    assert_eq!(every["last_fired"], "never");
    assert_eq!(every["last_fired_ms"], serde_json::Value::Null);
    let next = every["next_at_ms"].as_u64().unwrap();
    assert_eq!(next % 60_000, 0, "{every}");
    assert_eq!(nightly["name"], "nightly");
    assert_eq!(nightly["queue"], queue.as_str());
    assert_eq!(nightly["time_zone"], "Europe/Paris");
    assert_eq!(nightly["missed"], "run_each(max 10)");
    assert_eq!(nightly["last_fired_ms"], 1_767_225_600_000u64);
    assert_eq!(nightly["last_fired_at"], "2026-01-01T00:00:00.000Z");
    // 02:30 in Paris is 00:30 or 01:30 UTC.
    let at = nightly["next_at"].as_str().unwrap();
    assert!(
        at.contains("T00:30:00.000Z") || at.contains("T01:30:00.000Z"),
        "{at}"
    );

    let table = ok(&server, &["cron", "list"]);
    for needle in [
        "nightly",
        "every-min",
        "Europe/Paris",
        "0 30 2 * * *",
        "never",
        "in ",
    ] {
        assert!(table.contains(needle), "{needle}: {table}");
    }

    let v: serde_json::Value =
        serde_json::from_str(&ok(&server, &["cron", "forget", "every-min", "--json"])).unwrap();
    assert_eq!(v["removed"], true);
    let out = ok(&server, &["cron", "forget", "every-min"]);
    assert!(out.contains("no schedule"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&server, &["cron", "list", "--json"])).unwrap();
    assert_eq!(v["crons"].as_array().unwrap().len(), 1);
}
