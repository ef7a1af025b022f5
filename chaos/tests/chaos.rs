//! The chaos run at CI scale: real worker processes killed with SIGKILL, a
//! Redis restart from its AOF, transient and permanent handler failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

#[test]
fn nothing_is_lost_or_left_pending_under_kills_and_a_redis_restart() {
    let out = Command::new(env!("CARGO_BIN_EXE_jobstream-chaos"))
        .args([
            "--workers",
            "3",
            "--jobs",
            "2000",
            "--waves",
            "8",
            "--kills",
            "5",
        ])
        .args(["--redis-restarts", "1", "--timeout-s", "120", "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    println!("{report}");
    assert_eq!(report["settled"], true, "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["pending_at_end"], 0, "{report}");
    assert_eq!(report["dead_exact"], true, "{report}");
    assert_eq!(report["worker_kills"], 5, "{report}");
    assert_eq!(report["redis_restarts"], 1, "{report}");
    let enqueued = report["enqueued"].as_u64().unwrap();
    let (succeeded, dead) = (
        report["succeeded"].as_u64().unwrap(),
        report["dead"].as_u64().unwrap(),
    );
    assert_eq!(succeeded + dead, enqueued, "{report}");
    assert_eq!(
        report["processed"].as_u64().unwrap(),
        succeeded,
        "each success acknowledged once: {report}"
    );
    assert!(
        report["retried"].as_u64().unwrap() > 0,
        "transient failures were retried: {report}"
    );
    assert!(out.status.success(), "{report}");
}
