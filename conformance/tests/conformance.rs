//! The polyglot contract, played in every test run against a real server:
//! the consumer vectors, the reference producers of Python, Node and Ruby
//! through the producer cases, and every Lua script called from Python.
//!
//! `bash dev/test` installs what these need (Debian's ruby, ruby-redis,
//! ruby-msgpack; the Node packages of examples/node; Python's redis and
//! msgpack). Run alone, a missing language fails with what to install.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Command, Output};

use jobstream_testkit::RedisServer;

const RUNNER: &str = env!("CARGO_BIN_EXE_jobstream-conformance");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn show(out: &Output) -> String {
    format!(
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the runner against `server`; panics with its output unless every
/// case held.
fn runner(server: &RedisServer, args: &[&str]) {
    let out = Command::new(RUNNER)
        .arg("--url")
        .arg(server.url())
        .args(args)
        .current_dir(repo())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("every case holds"), "{}", show(&out));
}

/// Whether `program args…` runs and exits 0.
fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn every_consumer_vector_ends_where_the_document_says() {
    let server = RedisServer::start();
    runner(&server, &["entries"]);
}

#[test]
fn the_python_reference_producer_conforms() {
    assert!(
        works("python3", &["-c", "import redis, msgpack"]),
        "python3 with redis and msgpack is needed: pip install -r examples/python/requirements.txt"
    );
    let server = RedisServer::start();
    runner(
        &server,
        &[
            "producer",
            "--",
            "python3",
            "examples/python/conformance_driver.py",
        ],
    );
}

#[test]
fn the_node_reference_producer_conforms() {
    assert!(
        works(
            "node",
            &["-e", "require('./examples/node/jobstream-producer.js')"]
        ),
        "node with examples/node's packages is needed: npm ci --prefix examples/node (bash dev/test does it)"
    );
    let server = RedisServer::start();
    runner(
        &server,
        &[
            "producer",
            "--",
            "node",
            "examples/node/conformance-driver.js",
        ],
    );
}

#[test]
fn the_ruby_reference_producer_conforms() {
    assert!(
        works("ruby", &["-e", "require 'redis'; require 'msgpack'"]),
        "ruby with Debian's redis and msgpack gems is needed: apt-get install ruby ruby-redis ruby-msgpack (bash dev/test does it)"
    );
    let server = RedisServer::start();
    runner(
        &server,
        &[
            "producer",
            "--",
            "ruby",
            "examples/ruby/conformance_driver.rb",
        ],
    );
}

#[test]
fn every_script_is_callable_from_python_as_documented() {
    assert!(
        works("python3", &["-c", "import redis, msgpack"]),
        "python3 with redis and msgpack is needed: pip install -r examples/python/requirements.txt"
    );
    let server = RedisServer::start();
    let out = Command::new("python3")
        .arg("conformance/scripts/test_scripts.py")
        .current_dir(repo())
        .env("REDIS_URL", server.url())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
}

/// The runner is not a test that cannot fail: a vector whose outcome is
/// wrong makes it fail, naming the case.
#[test]
fn the_runner_fails_a_case_that_does_not_hold() {
    let server = RedisServer::start();
    let dir = std::env::temp_dir().join(format!("conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("wrong.json");
    std::fs::write(
        &file,
        r#"{"format": "jobstream-conformance/1", "cases": [
            {"name": "said_processed_but_permanent",
             "write": {"xadd": [["type", "conformance.permanent"], ["payload", {"msgpack": 1}]]},
             "expect": {"outcome": "processed"}},
            {"name": "wrong_dead_fields",
             "write": {"xadd": [["type", "conformance.nobody"], ["payload", {"msgpack": 1}]]},
             "expect": {"outcome": "dead", "reason": "unknown_type", "fields": [["type", "conformance.nobody"]]}}
        ]}"#,
    )
    .unwrap();
    let out = Command::new(RUNNER)
        .args(["--url", &server.url(), "entries", "--file"])
        .arg(&file)
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        stderr.contains("FAIL said_processed_but_permanent"),
        "{}",
        show(&out)
    );
    assert!(stderr.contains("FAIL wrong_dead_fields"), "{}", show(&out));
    std::fs::remove_dir_all(&dir).ok();
}

/// A producer that writes a stray field, and puts a delayed job in
/// `ready`, fails the producer check, naming the cases.
#[test]
fn the_runner_fails_a_producer_that_writes_the_wrong_thing() {
    let server = RedisServer::start();
    // Enqueues every job of every case to ready at once, with a field no
    // case allows: wrong for every case, and for delayed ones twice over.
    let driver = r#"
import json, os, uuid, msgpack, redis
r = redis.Redis.from_url(os.environ["REDIS_URL"])
q = os.environ["JOBSTREAM_QUEUE"]
for case in json.load(open(os.environ["JOBSTREAM_CASES"]))["cases"]:
    ids = []
    for job in case["enqueue"]:
        i = str(uuid.uuid4())
        r.xadd("jobstream:{%s}:ready" % q, {"type": job["type"], "payload": msgpack.packb(job["payload"]), "id": i, "bogus": "1"})
        ids.append(i)
    print(json.dumps({"case": case["name"], "ids": ids}))
"#;
    let out = Command::new(RUNNER)
        .args([
            "--url",
            &server.url(),
            "producer",
            "--",
            "python3",
            "-c",
            driver,
        ])
        .current_dir(repo())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        stderr.contains("FAIL now_minimal: it has field \"bogus\""),
        "{}",
        show(&out)
    );
    assert!(
        stderr.contains("FAIL delayed: no scheduled member"),
        "{}",
        show(&out)
    );
}
