#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The command line as docs/exactly-once.md uses it: `produce` twice with
//! one seed (the same txn_ids, as new jobs), a worker, then `report`: each
//! balance moved once.

#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use jobstream::testkit::RedisServer;
use support::fleet::Fleet;
use support::postgres::Postgres;

fn run(redis: &RedisServer, pg: &Postgres, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_example-payments"))
        .args(args)
        .env("REDIS_URL", redis.url())
        .env("DATABASE_URL", pg.url())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `acct-00 +123 cents` or `acct-00 123 cents` lines, by account.
fn balances(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let account = words.next()?.strip_prefix("acct-")?;
            let cents = words.next()?.trim_start_matches('+').parse().ok()?;
            Some((format!("acct-{account}"), cents))
        })
        .collect()
}

#[test]
fn producing_the_same_seed_twice_moves_each_balance_once() {
    let pg = Postgres::start();
    let redis = RedisServer::start();
    let produce = ["produce", "--count", "40", "--accounts", "3", "--seed", "7"];
    let first = run(&redis, &pg, &produce);
    assert_eq!(
        run(&redis, &pg, &produce),
        first,
        "the same seed, the same payments"
    );
    let expected = balances(&first);
    assert_eq!(expected.len(), 3, "{first}");

    let mut fleet = Fleet::new(&redis.url(), &pg.url(), &["--concurrency", "4"]);
    fleet.spawn();
    let deadline = Instant::now() + Duration::from_secs(30);
    let report = loop {
        let report = run(&redis, &pg, &["report"]);
        if report.contains("\n40 payments applied") || report.starts_with("40 payments applied") {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "not applied in 30 s: {report}\n{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Give the second copies time to run: they must change nothing.
    std::thread::sleep(Duration::from_secs(1));
    let after = run(&redis, &pg, &["report"]);
    assert_eq!(balances(&report), expected, "{report}");
    assert_eq!(balances(&after), expected, "{after}");
    assert!(after.contains("40 payments applied"), "{after}");
    assert!(
        fleet.count_in_logs("payment was applied before") > 0,
        "the second copies reached the handler: {}",
        fleet.logs()
    );
}
