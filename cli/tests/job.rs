#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `jobstream job show|wait|cancel` and `enqueue --keep-record --unique`,
//! as a process against a real redis-server.

use std::process::{Command, Output};

use jobstream_testkit::{RedisServer, unique_queue};

const BIN: &str = env!("CARGO_BIN_EXE_jobstream");

fn jobstream(server: &RedisServer, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("REDIS_URL", server.url())
        .env_remove("JOBSTREAM_PREFIX")
        .env_remove("JOBSTREAM_GROUP")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn enqueue(server: &RedisServer, queue: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "enqueue",
        "--queue",
        queue,
        "--type",
        "t",
        "--keep-record",
        "1h",
    ];
    args.extend_from_slice(extra);
    let out = jobstream(server, &args);
    assert!(out.status.success(), "{}", text(&out));
    // The id is the last word of the first line.
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned()
}

#[test]
fn a_job_is_shown_waited_for_and_cancelled_from_the_command_line() {
    let server = RedisServer::start();
    let queue = unique_queue("cli-job");
    let id = enqueue(&server, &queue, &["--unique", "k1"]);
    let dup = enqueue(&server, &queue, &["--unique", "k1"]);
    assert_eq!(dup, id, "a duplicate prints the holder's id");

    let out = jobstream(&server, &["job", "show", "--queue", &queue, &id, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["attempt"].as_u64()),
        (Some("ready"), Some(0)),
        "{v}"
    );

    // No worker: waiting times out with status 3.
    let out = jobstream(
        &server,
        &["job", "wait", "--queue", &queue, &id, "--timeout", "300ms"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));

    let out = jobstream(&server, &["job", "cancel", "--queue", &queue, &id]);
    assert!(
        out.status.success() && text(&out).contains("will not run"),
        "{}",
        text(&out)
    );
    let out = jobstream(
        &server,
        &["job", "wait", "--queue", &queue, &id, "--timeout", "5s"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "final, not completed: {}",
        text(&out)
    );
    assert!(text(&out).contains("cancelled"), "{}", text(&out));
    // The key went with the cancelled job.
    let again = enqueue(&server, &queue, &["--unique", "k1"]);
    assert_ne!(again, id);

    let out = jobstream(&server, &["job", "show", "--queue", &queue, "no-such-id"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no record"), "{}", text(&out));
}
