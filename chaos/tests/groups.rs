//! Groups while worker processes are killed with SIGKILL: each group's
//! jobs start in enqueue order and no job of a group starts before the one
//! before it succeeded (a killed job may run again: at-least-once), retries
//! included; every job succeeds; nothing is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Fleet, cli};
use jobstream_producer::{NewJob, Producer};
use jobstream_testkit::{RedisServer, unique_queue};
use rand::{Rng, SeedableRng};

const GROUPS: usize = 4;
const PER_GROUP: u64 = 30;

/// Checks one group's events (`start:N`, `ok:N`, in the server's order):
/// a start is of the job that must succeed next, or a re-run of the one
/// that just succeeded (killed after its handler, before its ack). Returns
/// how many jobs succeeded.
fn check_order(group: &str, events: &[String]) -> u64 {
    let mut next = 0u64;
    for (i, e) in events.iter().enumerate() {
        let (what, n) = e.split_once(':').unwrap();
        let n: u64 = n.parse().unwrap();
        match what {
            "start" => assert!(
                n == next || n + 1 == next,
                "group {group}: event {i} starts job {n} while job {next} has not succeeded: {events:?}"
            ),
            "ok" => {
                assert!(
                    n == next || n + 1 == next,
                    "group {group}: job {n} succeeded out of turn: {events:?}"
                );
                next = next.max(n + 1);
            }
            _ => panic!("unknown event {e}"),
        }
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_keep_their_order_through_sigkills() {
    let server = RedisServer::start();
    let queue = unique_queue("ordered");
    let run = unique_queue("run");
    let seed: u64 = std::env::var("GROUPS_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut fleet = Fleet::new(&server, &queue, &run);
    for _ in 0..3 {
        fleet.spawn();
    }
    let p = Producer::connect(&server.url()).await.unwrap();
    let mut jobs = Vec::new();
    for n in 0..PER_GROUP {
        for g in 0..GROUPS {
            jobs.push(
                NewJob::new("ordered", &n)
                    .unwrap()
                    .group(format!("g{g}"))
                    .unwrap(),
            );
        }
    }
    p.enqueue_many(&queue, jobs).await.unwrap();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..700))).await;
        fleet.kill_one(&mut rng);
        fleet.spawn();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let base = format!("jobstream:{{{queue}}}");
    loop {
        let done = (0..GROUPS)
            .filter(|g| {
                let key = format!("flow:{run}:order:g{g}");
                cli(&server, &["LRANGE", &key, "-1", "-1"]) == format!("ok:{}", PER_GROUP - 1)
            })
            .count();
        let pending = cli(&server, &["XPENDING", &format!("{base}:ready"), "workers"]);
        if done == GROUPS && pending.starts_with('0') {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: not settled: {done}/{GROUPS} groups done, pending {pending}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fleet.kills >= 5, "kills: {}", fleet.kills);
    for g in 0..GROUPS {
        let key = format!("flow:{run}:order:g{g}");
        let events: Vec<String> = cli(&server, &["LRANGE", &key, "0", "-1"])
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(
            check_order(&format!("g{g}"), &events),
            PER_GROUP,
            "seed {seed}"
        );
    }
    // Nothing left: no group holds a place, none waits, books balance.
    for key in ["groups", "grouped"] {
        assert_eq!(
            cli(&server, &["HLEN", &format!("{base}:{key}")]),
            "0",
            "{key}"
        );
    }
    let books = p.inspector().books(&queue).await.unwrap();
    assert!(books.balances(), "seed {seed}: {books:?}");
}
