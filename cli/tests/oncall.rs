#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The on-call command line (issue 17 point 5) as a process against real
//! redis-servers: `queues`, `stats --watch`, `jobs list`, `job show` and
//! `job cancel` of plain jobs, `queue purge`, and bad input: enumerated
//! options, unknown queues, no `--yes` off a terminal, a wrong password.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use common::*;
use jobstream_testkit::{RedisServer, unique_queue};

const BIN: &str = env!("CARGO_BIN_EXE_jobstream");

fn run_with(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("REDIS_URL", url)
        .env_remove("JOBSTREAM_PREFIX")
        .env_remove("JOBSTREAM_GROUP")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn jobstream(server: &RedisServer, args: &[&str]) -> Output {
    run_with(&server.url(), args)
}

fn fails(server: &RedisServer, args: &[&str], code: i32, needle: &str) {
    let out = jobstream(server, args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out));
    assert!(text(&out).contains(needle), "{args:?}: {}", text(&out));
}

fn key(queue: &str, what: &str) -> String {
    format!("jobstream:{{{queue}}}:{what}")
}

fn enqueue(server: &RedisServer, queue: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "enqueue",
        "--queue",
        queue,
        "--type",
        "send",
        "--payload-json",
        r#"{"secret":"hunter2"}"#,
    ];
    args.extend_from_slice(extra);
    let v = json(server, &args);
    assert_eq!(v["queue"], queue);
    v["id"].as_str().unwrap().to_owned()
}

/// Consumer `c` fetches the oldest undelivered job (the group is made
/// first if missing).
fn fetch_one(server: &RedisServer, queue: &str) {
    let ready = key(queue, "ready");
    server.cli(&["XGROUP", "CREATE", &ready, "workers", "0"]);
    server
        .cli(&[
            "XREADGROUP",
            "GROUP",
            "workers",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            &ready,
            ">",
        ])
        .unwrap();
}

/// A queue with: `a` in flight (held by `c`), `b` ready, `s` scheduled,
/// `d` dead (permanent). Returns (queue, [a, b, s, d]).
fn queue_in_every_state(server: &RedisServer) -> (String, [String; 4]) {
    let queue = unique_queue("oncall");
    let a = enqueue(server, &queue, &[]);
    let b = enqueue(server, &queue, &[]);
    let s = enqueue(server, &queue, &["--delay", "1h"]);
    fetch_one(server, &queue);
    let d = "dead-job-1".to_owned();
    server
        .cli(&[
            "XADD",
            &key(&queue, "dead"),
            "*",
            "type",
            "send",
            "payload",
            "\u{81}",
            "id",
            &d,
            "reason",
            "permanent",
            "error_class",
            "permanent",
            "error",
            "bad address",
            "failed_at",
            "1700000000000",
        ])
        .unwrap();
    (queue, [a, b, s, d])
}

fn books_balance(server: &RedisServer, queue: &str) {
    let out = jobstream(server, &["check", "--queue", queue, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queues"][0]["status"], "ok", "{v}");
}

#[test]
fn queues_and_stats_list_every_queue_with_the_same_names_in_table_and_json() {
    let server = RedisServer::start();
    let (queue, _) = queue_in_every_state(&server);
    let v = json(&server, &["queues"]);
    let q = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == queue.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (&q["ready"], &q["in_flight"], &q["scheduled"], &q["dead"]),
        (&1.into(), &1.into(), &1.into(), &1.into()),
        "{q}"
    );
    let table = ok(&server, &["queues"]);
    let header = table.lines().next().unwrap();
    for column in [
        "name",
        "ready",
        "in_flight",
        "scheduled",
        "dead",
        "oldest_ready_age",
    ] {
        assert!(header.contains(column), "{header}");
        assert!(q.get(column).is_some(), "JSON lacks {column}: {q}");
    }
    assert!(table.contains(&queue), "{table}");

    // stats --json keeps the QueueStats names (what /metrics is compared with).
    let v = json(&server, &["stats", "--queue", &queue]);
    let s = &v["queues"][0];
    for name in [
        "name",
        "ready",
        "in_flight",
        "scheduled",
        "dead",
        "processed",
        "retried",
        "discarded",
        "expired",
        "cancelled",
        "duplicates",
        "dead_total",
        "dead_scheduled",
        "dead_trimmed",
        "replayed",
        "requeued",
        "consumers",
        "oldest_ready_age_ms",
    ] {
        assert!(s.get(name).is_some(), "stats --json lacks {name}: {s}");
    }
    fails(
        &server,
        &["stats", "--queue", "no-such-queue"],
        1,
        "unknown queue \"no-such-queue\" (known: ",
    );
}

#[test]
fn stats_watch_prints_a_json_line_per_sample_with_rates() {
    let server = RedisServer::start();
    let queue = unique_queue("watch");
    enqueue(&server, &queue, &[]);
    let mut child = Command::new(BIN)
        .args([
            "stats",
            "--queue",
            &queue,
            "--watch",
            "--interval",
            "300ms",
            "--json",
        ])
        .env("REDIS_URL", server.url())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    for _ in 0..3 {
        enqueue(&server, &queue, &[]);
    }
    let second: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first["at"].as_str().unwrap().ends_with('Z'), "{first}");
    assert!(first["queues"][0]["enqueued_per_s"].is_null(), "{first}");
    let q = &second["queues"][0];
    assert!(q["enqueued_per_s"].as_f64().unwrap() > 0.0, "{second}");
    assert_eq!(q["processed_per_s"].as_f64(), Some(0.0), "{second}");
    assert!(q["dead_per_s"].is_number() && q["retried_per_s"].is_number());
    fails(
        &server,
        &["stats", "--watch", "--interval", "soon"],
        3,
        "--interval",
    );
}

#[test]
fn jobs_list_shows_each_state_and_never_a_payload() {
    let server = RedisServer::start();
    let (queue, [a, b, s, d]) = queue_in_every_state(&server);
    for (state, id) in [
        ("ready", &b),
        ("in-flight", &a),
        ("scheduled", &s),
        ("dead", &d),
    ] {
        let v = json(
            &server,
            &["jobs", "list", "--queue", &queue, "--state", state],
        );
        let jobs = v["jobs"].as_array().unwrap();
        assert_eq!(jobs.len(), 1, "{state}: {v}");
        assert_eq!(
            (&jobs[0]["id"], &jobs[0]["state"]),
            (&id.as_str().into(), &state.into())
        );
        assert_eq!(jobs[0]["type"], "send");
        let table = ok(
            &server,
            &["jobs", "list", "--queue", &queue, "--state", state],
        );
        assert!(table.contains(id.as_str()), "{table}");
        assert!(!table.contains("hunter2") && !v.to_string().contains("hunter2"));
    }
    let v = json(
        &server,
        &["jobs", "list", "--queue", &queue, "--state", "in-flight"],
    );
    assert_eq!(v["jobs"][0]["consumer"], "c");
    assert_eq!(v["jobs"][0]["deliveries"], 1);
    let v = json(
        &server,
        &["jobs", "list", "--queue", &queue, "--state", "scheduled"],
    );
    assert!(
        v["jobs"][0]["due"].as_str().unwrap().starts_with("in "),
        "{v}"
    );
    let v = json(
        &server,
        &["jobs", "list", "--queue", &queue, "--state", "dead"],
    );
    assert_eq!(v["jobs"][0]["reason"], "permanent");
    assert_eq!(v["jobs"][0]["failed_at"], "2023-11-14T22:13:20.000Z");
    let v = json(
        &server,
        &[
            "jobs", "list", "--queue", &queue, "--state", "ready", "--type", "other",
        ],
    );
    assert_eq!(v["jobs"], serde_json::json!([]));

    fails(
        &server,
        &["jobs", "list", "--queue", &queue, "--state", "running"],
        3,
        "invalid value 'running'",
    );
    fails(
        &server,
        &["jobs", "list", "--queue", "nope", "--state", "ready"],
        1,
        "unknown queue \"nope\"",
    );
}

#[test]
fn job_show_finds_a_job_in_each_state_in_any_queue() {
    let server = RedisServer::start();
    let (queue, [a, b, s, d]) = queue_in_every_state(&server);
    let _other = enqueue(&server, &unique_queue("other"), &[]);
    for (id, state) in [
        (&a, "in-flight"),
        (&b, "ready"),
        (&s, "scheduled"),
        (&d, "dead"),
    ] {
        // No --queue: every known queue is searched.
        let v = json(&server, &["job", "show", id]);
        assert_eq!(
            (&v["state"], &v["queue"]),
            (&state.into(), &queue.as_str().into()),
            "{v}"
        );
        assert!(!v.to_string().contains("hunter2"), "{v}");
    }
    let v = json(&server, &["job", "show", &a, "--queue", &queue]);
    assert_eq!(v["consumer"], "c");
    assert!(v["enqueued_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["enqueued"].as_str().unwrap().ends_with(" ago"));
    let v = json(&server, &["job", "show", &d]);
    assert_eq!(
        (&v["reason"], &v["error"]),
        (&"permanent".into(), &"bad address".into())
    );
    // By entry id.
    let entry = v["entry_id"].as_str().unwrap().to_owned();
    let v = json(&server, &["job", "show", &entry, "--queue", &queue]);
    assert_eq!(v["id"], d.as_str());
    let b_entry = json(&server, &["job", "show", &b])["entry_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Entry ids repeat across queues: one needs --queue when there are two.
    fails(&server, &["job", "show", &b_entry], 1, "add --queue");
    let v = json(&server, &["job", "show", &b_entry, "--queue", &queue]);
    assert_eq!(
        (&v["id"], &v["state"]),
        (&b.as_str().into(), &"ready".into())
    );
    let table = ok(&server, &["job", "show", &s]);
    assert!(
        table.contains("scheduled") && table.contains("due_at"),
        "{table}"
    );

    fails(&server, &["job", "show", "no-such-id"], 1, "not found");
    fails(
        &server,
        &["job", "show", &a, "--queue", "nope"],
        1,
        "unknown queue \"nope\"",
    );
}

#[test]
fn plain_jobs_are_cancelled_from_ready_and_scheduled_and_the_books_balance() {
    let server = RedisServer::start_durable();
    let (queue, [a, b, s, _]) = queue_in_every_state(&server);
    let out = ok(&server, &["job", "cancel", &b]);
    assert!(out.contains("removed from ready"), "{out}");
    let v = json(&server, &["job", "cancel", &s, "--queue", &queue]);
    assert_eq!(v["outcome"], "cancelled");
    let v = json(&server, &["stats", "--queue", &queue]);
    assert_eq!(
        (
            &v["queues"][0]["ready"],
            &v["queues"][0]["scheduled"],
            &v["queues"][0]["cancelled"]
        ),
        (&0.into(), &0.into(), &2.into()),
        "{v}"
    );
    // In flight, without a record: refused, nothing changed.
    fails(&server, &["job", "cancel", &a], 1, "fetched by a worker");
    fails(&server, &["job", "cancel", &b], 1, "not found");
    books_balance(&server, &queue);
    assert_eq!(
        server
            .cli(&["HGET", &key(&queue, "stats"), "cancelled_scheduled"])
            .unwrap()
            .trim(),
        "1"
    );
    // A uniqueness key (no record) is released with the job.
    let u = enqueue(&server, &queue, &["--unique", "k"]);
    ok(&server, &["job", "cancel", &u, "--queue", &queue]);
    let again = enqueue(&server, &queue, &["--unique", "k"]);
    assert_ne!(again, u, "the key went with the cancelled job");
    books_balance(&server, &queue);
}

#[test]
fn purge_asks_for_yes_off_a_terminal_never_takes_jobs_in_flight_and_keeps_the_books() {
    let server = RedisServer::start_durable();
    let (queue, [a, _, _, _]) = queue_in_every_state(&server);
    for _ in 0..3 {
        enqueue(&server, &queue, &[]);
    }
    fails(
        &server,
        &["queue", "purge", &queue, "--state", "ready"],
        1,
        "stdin is not a terminal; add --yes",
    );
    fails(
        &server,
        &["queue", "purge", &queue, "--state", "in-flight", "--yes"],
        3,
        "invalid value 'in-flight'",
    );
    fails(
        &server,
        &["queue", "purge", "nope", "--state", "ready", "--yes"],
        1,
        "unknown queue \"nope\"",
    );
    let v = json(
        &server,
        &["queue", "purge", &queue, "--state", "ready", "--yes"],
    );
    assert_eq!(v["removed"], 4, "{v}");
    let v = json(
        &server,
        &["queue", "purge", &queue, "--state", "scheduled", "--yes"],
    );
    assert_eq!(v["removed"], 1, "{v}");
    let v = json(
        &server,
        &["queue", "purge", &queue, "--state", "dead", "--yes"],
    );
    assert_eq!(v["removed"], 1, "{v}");
    let v = json(&server, &["stats", "--queue", &queue]);
    let s = &v["queues"][0];
    assert_eq!(
        (
            &s["ready"],
            &s["in_flight"],
            &s["scheduled"],
            &s["dead"],
            &s["discarded"]
        ),
        (&0.into(), &1.into(), &0.into(), &0.into(), &4.into()),
        "{v}"
    );
    let v = json(&server, &["job", "show", &a]);
    assert_eq!(v["state"], "in-flight", "the job in flight stayed");
    books_balance(&server, &queue);

    // dlq discard --all asks too.
    fails(
        &server,
        &["dlq", "discard", "--queue", &queue, "--all"],
        1,
        "add --yes",
    );
    ok(
        &server,
        &["dlq", "discard", "--queue", &queue, "--all", "--yes"],
    );
}

#[test]
fn enumerated_options_are_checked_and_unknown_queues_refused() {
    let server = RedisServer::start();
    let queue = unique_queue("enum");
    enqueue(&server, &queue, &[]);
    fails(
        &server,
        &["dlq", "list", "--queue", &queue, "--reason", "permenent"],
        3,
        "invalid value 'permenent'",
    );
    let v = json(
        &server,
        &["dlq", "list", "--queue", &queue, "--reason", "unknown_type"],
    );
    assert_eq!(v["jobs"], serde_json::json!([]));
    for args in [
        vec!["dlq", "list", "--queue", "nope"],
        vec!["dlq", "replay", "--queue", "nope", "--all"],
        vec!["job", "cancel", "x", "--queue", "nope"],
        vec!["job", "wait", "x", "--queue", "nope"],
    ] {
        fails(&server, &args, 1, "unknown queue \"nope\"");
    }
    // Nothing of that was registered as a queue.
    let v = json(&server, &["queues"]);
    assert!(!v.to_string().contains("\"nope\""), "{v}");
}

#[test]
fn errors_name_the_server_but_never_its_password() {
    let server = RedisServer::start();
    server
        .cli(&["CONFIG", "SET", "requirepass", "s3cret"])
        .unwrap();
    let port = server.port();
    let url = format!("redis://:wrong-pw@127.0.0.1:{port}/0");
    for args in [
        &["stats"][..],
        &["queues"][..],
        &["jobs", "list", "--queue", "q", "--state", "ready"][..],
        &["job", "show", "x"][..],
        &["workers", "--json"][..],
    ] {
        let out = run_with(&url, args);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {t}");
        assert!(t.contains(&format!("127.0.0.1:{port}")), "{t}");
        assert!(!t.contains("wrong-pw"), "{t}");
    }
    // Nothing listening: still named.
    let out = run_with("redis://:hunter2@127.0.0.1:1/0", &["queues"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("127.0.0.1:1") && !t.contains("hunter2"), "{t}");
}

/// From a red-team review: jobs a worker of *another* consumer group holds
/// are never purged or cancelled; stats show no phantom backlog after a
/// purge; `check` of an unknown queue is not "OK"; hostile data (a time
/// past the year 9999, escape sequences, a bad registry member) neither
/// panics nor drives the terminal; entry ids need --queue when ambiguous;
/// a reader that closes the pipe early is not a crash.
#[test]
fn review_findings_hold() {
    let server = RedisServer::start();
    let queue = unique_queue("review");
    for _ in 0..5 {
        enqueue(&server, &queue, &[]);
    }
    // A worker of group "payments" holds two entries.
    let ready = key(&queue, "ready");
    server
        .cli(&["XGROUP", "CREATE", &ready, "payments", "0"])
        .unwrap();
    let held = server
        .cli(&[
            "XREADGROUP",
            "GROUP",
            "payments",
            "w1",
            "COUNT",
            "2",
            "STREAMS",
            &ready,
            ">",
        ])
        .unwrap();
    let held_id = held
        .lines()
        .find(|l| l.contains('-') && l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap()
        .trim()
        .to_owned();
    fails(
        &server,
        &["job", "cancel", &held_id, "--queue", &queue],
        1,
        "fetched by a worker",
    );
    ok(
        &server,
        &["queue", "purge", &queue, "--state", "ready", "--yes"],
    );
    assert_eq!(
        server.cli(&["XLEN", &ready]).unwrap().trim(),
        "2",
        "held jobs stay"
    );
    // A purge that empties the stream leaves no backlog in stats.
    let emptied = unique_queue("review-empty");
    server
        .cli(&[
            "XGROUP",
            "CREATE",
            &key(&emptied, "ready"),
            "workers",
            "$",
            "MKSTREAM",
        ])
        .unwrap();
    for _ in 0..3 {
        enqueue(&server, &emptied, &[]);
    }
    ok(
        &server,
        &["queue", "purge", &emptied, "--state", "ready", "--yes"],
    );
    let v = json(&server, &["stats", "--queue", &emptied]);
    assert_eq!(v["queues"][0]["ready"], 0, "{v}");

    fails(
        &server,
        &["check", "--queue", "no-such-queue"],
        3,
        "unknown queue",
    );

    // Hostile data: a time past 9999, an escape sequence in the type.
    server
        .cli(&[
            "XADD",
            &ready,
            "*",
            "type",
            "\u{1b}]0;pwned\u{7}",
            "payload",
            "\u{c0}",
            "enqueued_at",
            "99999999999999999",
        ])
        .unwrap();
    for state in ["ready", "in-flight"] {
        let out = jobstream(
            &server,
            &["jobs", "list", "--queue", &queue, "--state", state],
        );
        assert!(out.status.success(), "{state}: {}", text(&out));
        assert!(
            !out.stdout.contains(&0x1b),
            "{state}: an escape reached the terminal"
        );
    }
    server
        .cli(&[
            "ZADD",
            "jobstream:workers",
            "100000000000000000",
            "w-future",
        ])
        .unwrap();
    ok(&server, &["workers"]);

    // A bad member of the registry does not break fleet-wide commands.
    server.cli(&["SADD", "jobstream:queues", "bad{x}"]).unwrap();
    let v = json(&server, &["queues"]);
    assert!(
        v["queues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == queue.as_str()),
        "{v}"
    );

    // Entry ids repeat across queues: without --queue, refused.
    let other = unique_queue("review-b");
    enqueue(&server, &other, &[]);
    fails(&server, &["job", "cancel", &held_id], 1, "add --queue");

    // `| head`: the reader goes away before the output is written.
    let mut child = Command::new(BIN)
        .args(["queues"])
        .env("REDIS_URL", server.url())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A mistyped URL does not print its password.
    let out = run_with("redis:/:s3cret@127.0.0.1:1", &["queues"]);
    assert!(!text(&out).contains("s3cret"), "{}", text(&out));
}
