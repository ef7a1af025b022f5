//! Running the `jobstream` binary against a real server, for the CLI tests.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};

use jobstream_testkit::RedisServer;

pub const BIN: &str = env!("CARGO_BIN_EXE_jobstream");

/// `jobstream ARGS` against `server`, stdin closed, the environment's
/// prefix and group unset.
pub fn jobstream(server: &RedisServer, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("REDIS_URL", server.url())
        .env_remove("JOBSTREAM_PREFIX")
        .env_remove("JOBSTREAM_GROUP")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Stdout and stderr together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Stdout of a command that must succeed.
pub fn ok(server: &RedisServer, args: &[&str]) -> String {
    let out = jobstream(server, args);
    assert!(out.status.success(), "{args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON a command prints with `--json`.
pub fn json(server: &RedisServer, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = ok(server, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}
