#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `jobstream check` and the `stats` dead_trimmed warning, as a process
//! against real redis-servers: output, JSON and exit status.

use std::path::PathBuf;
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn json(server: &RedisServer, args: &[&str]) -> (serde_json::Value, i32) {
    let mut all = args.to_vec();
    all.push("--json");
    let out = jobstream(server, &all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} / {}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (v, code(&out))
}

fn key(queue: &str, what: &str) -> String {
    format!("jobstream:{{{queue}}}:{what}")
}

fn redis_cli(server: &RedisServer, args: &[&str]) -> String {
    server.cli(args).unwrap().trim().to_owned()
}

/// Enqueues `n` jobs with the CLI, then has consumer `c` fetch one and
/// acknowledge it through the real `ack-2` script.
fn queue_with_one_processed(server: &RedisServer, n: usize) -> String {
    let queue = unique_queue("check");
    for _ in 0..n {
        let out = jobstream(server, &["enqueue", "--queue", &queue, "--type", "t"]);
        assert!(out.status.success(), "{out:?}");
    }
    let ready = key(&queue, "ready");
    redis_cli(server, &["XGROUP", "CREATE", &ready, "workers", "0"]);
    let read = redis_cli(
        server,
        &[
            "XREADGROUP",
            "GROUP",
            "workers",
            "c",
            "COUNT",
            "1",
            "STREAMS",
            &ready,
            ">",
        ],
    );
    let id = read
        .lines()
        .find(|l| l.contains('-') && l.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap()
        .to_owned();
    let ack = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/ack-2.lua"),
    )
    .unwrap();
    let stats = key(&queue, "stats");
    let lost = redis_cli(
        server,
        &[
            "EVAL",
            &ack,
            "2",
            &ready,
            &stats,
            "workers",
            "c",
            "processed",
            &id,
            &id,
            &id,
        ],
    );
    assert_eq!(lost, "", "ack-2 acknowledged the entry");
    queue
}

#[test]
fn a_balanced_queue_on_a_safe_server_is_ok_with_exit_0() {
    let server = RedisServer::start_durable();
    let queue = queue_with_one_processed(&server, 3);
    let out = jobstream(&server, &["check"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert!(text.contains(&format!("queue {queue}: OK")), "{text}");
    assert!(!text.contains("WARN"), "{text}");
    let (v, c) = json(&server, &["check", "--queue", &queue]);
    assert_eq!(c, 0);
    let q = &v["queues"][0];
    assert_eq!(
        (&q["entries_added"], &q["in_stream"], &q["processed"]),
        (&3.into(), &2.into(), &1.into()),
        "{v}"
    );
    assert_eq!((&q["difference"], &q["status"]), (&0.into(), &"ok".into()));
    assert_eq!(v["warnings"], serde_json::json!([]));
    assert_eq!(v["server"]["maxmemory_policy"], "noeviction");
}

#[test]
fn an_xdel_by_hand_is_a_mismatch_of_one_with_exit_1() {
    let server = RedisServer::start_durable();
    let queue = queue_with_one_processed(&server, 3);
    let ready = key(&queue, "ready");
    let last = redis_cli(&server, &["XREVRANGE", &ready, "+", "-", "COUNT", "1"]);
    let last_id = last.lines().next().unwrap();
    assert_eq!(redis_cli(&server, &["XDEL", &ready, last_id]), "1");
    let out = jobstream(&server, &["check", "--queue", &queue]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(
        text.contains(&format!(
            "queue {queue}: MISMATCH: 1 entries added to ready are not accounted for \
             (deleted outside jobstream?)"
        )),
        "{text}"
    );
    let (v, c) = json(&server, &["check"]);
    assert_eq!(c, 1);
    let q = &v["queues"][0];
    assert_eq!(
        (&q["difference"], &q["status"]),
        (&1.into(), &"mismatch".into())
    );
}

#[test]
fn an_evicting_policy_and_aof_off_give_two_warnings_and_exit_2() {
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--maxmemory-policy",
        "allkeys-lru",
        "--appendonly",
        "no",
    ]);
    queue_with_one_processed(&server, 2);
    let out = jobstream(&server, &["check"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 2, "{text}");
    assert!(
        text.contains("WARN maxmemory-policy is allkeys-lru"),
        "{text}"
    );
    assert!(text.contains("WARN AOF is off (appendonly no)"), "{text}");
    let (v, c) = json(&server, &["check"]);
    assert_eq!(c, 2);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(v["queues"][0]["status"], "ok");
}

#[test]
fn appendfsync_no_warns_when_everysec_is_expected() {
    let server =
        RedisServer::start_with(&["--save", "", "--appendonly", "yes", "--appendfsync", "no"]);
    queue_with_one_processed(&server, 1);
    let out = jobstream(&server, &["check", "--expect-fsync", "everysec"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 2, "{text}");
    assert!(
        text.contains("WARN appendfsync is no, weaker than the expected everysec"),
        "{text}"
    );
    let out = jobstream(&server, &["check", "--expect-fsync", "no"]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn a_server_that_refuses_config_gives_a_note_and_exit_0() {
    let server = RedisServer::start_with(&["--rename-command", "CONFIG", ""]);
    let queue = queue_with_one_processed(&server, 2);
    let out = jobstream(&server, &["check"]);
    let text = stdout(&out);
    assert_eq!(
        code(&out),
        0,
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(&format!("queue {queue}: OK")), "{text}");
    assert!(
        text.contains("note: could not read the server's configuration ("),
        "{text}"
    );
    assert!(text.contains("check persistence by hand"), "{text}");
    let (v, _) = json(&server, &["check"]);
    assert_eq!(v["notes"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["warnings"], serde_json::json!([]));
}

#[test]
fn an_unreachable_server_and_a_bad_argument_exit_3() {
    let port = jobstream_testkit::free_port();
    let out = Command::new(BIN)
        .args(["check"])
        .env("REDIS_URL", format!("redis://127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{out:?}");
    let out = Command::new(BIN)
        .args(["check", "--expect-fsync", "sometimes"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 3, "{out:?}");
    let out = Command::new(BIN)
        .args(["check", "--help"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    assert!(
        help.contains("Exit status:") && help.contains("2  the books balance"),
        "{help}"
    );
}

#[test]
fn stats_flags_dead_letters_dropped_by_the_cap() {
    let server = RedisServer::start();
    let queue = queue_with_one_processed(&server, 1);
    let stats = key(&queue, "stats");
    redis_cli(
        &server,
        &["HSET", &stats, "dead_trimmed", "5", "dead_scheduled", "2"],
    );
    let out = jobstream(&server, &["stats", "--queue", &queue]);
    let text = stdout(&out);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("dead_trimmed"), "{text}");
    assert!(
        text.contains(&format!(
            "WARN {queue}: 5 dead letters were dropped by the dead_max_len cap"
        )),
        "{text}"
    );
    let (v, c) = json(&server, &["stats", "--queue", &queue]);
    assert_eq!(c, 0);
    assert_eq!(
        (
            &v["queues"][0]["dead_trimmed"],
            &v["queues"][0]["dead_scheduled"]
        ),
        (&5.into(), &2.into())
    );
    redis_cli(&server, &["HSET", &stats, "dead_trimmed", "0"]);
    let text = stdout(&jobstream(&server, &["stats", "--queue", &queue]));
    assert!(!text.contains("WARN"), "{text}");
}
