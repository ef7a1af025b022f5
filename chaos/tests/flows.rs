//! Chains and batches while worker processes are killed with SIGKILL:
//! every step of every chain runs (each created once, in order, with the
//! previous result), and every batch's completion job is created once,
//! after all its members ended, with the right summary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Fleet, cli};
use jobstream_producer::{Batch, Chain, NewJob, Producer};
use jobstream_testkit::{RedisServer, unique_queue};
use rand::{Rng, SeedableRng};

const CHAINS: usize = 20;
const STEPS: u64 = 5;
const BATCHES: usize = 8;
const MEMBERS: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chains_and_batches_survive_sigkills_each_step_and_completion_created_once() {
    let server = RedisServer::start();
    let queue = unique_queue("flows");
    let run = unique_queue("run");
    let seed: u64 = std::env::var("FLOW_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut fleet = Fleet::new(&server, &queue, &run);
    for _ in 0..3 {
        fleet.spawn();
    }
    let p = Producer::connect(&server.url()).await.unwrap();
    let mut chain_steps = Vec::new();
    for _ in 0..CHAINS {
        let step = |n: u64| NewJob::new("step", &n).unwrap().queue(&queue);
        let chain = (2..=STEPS).fold(Chain::new(step(1)), |c, n| c.then(step(n)));
        chain_steps.push(p.enqueue_chain(chain).await.unwrap());
    }
    let mut batches = Vec::new();
    for _ in 0..BATCHES {
        let members: Vec<NewJob> = (0..MEMBERS)
            .map(|n| NewJob::new("member", &n).unwrap().queue(&queue))
            .collect();
        let ids: Vec<String> = members.iter().map(|m| m.id().to_owned()).collect();
        let batch = Batch::new(&queue, NewJob::new("done", &()).unwrap()).members(members);
        batches.push((p.enqueue_batch(batch).await.unwrap(), ids));
    }
    // Kill a worker every 300-700 ms for four seconds, replacing each.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..700))).await;
        fleet.kill_one(&mut rng);
        fleet.spawn();
    }
    // Settle: every batch summarised, every chain's last step recorded,
    // nothing left anywhere.
    let deadline = Instant::now() + Duration::from_secs(60);
    let base = format!("jobstream:{{{queue}}}");
    loop {
        let summaries: usize = cli(&server, &["HLEN", &format!("flow:{run}:summary")])
            .parse()
            .unwrap();
        let ready: usize = cli(&server, &["XLEN", &format!("{base}:ready")])
            .parse()
            .unwrap();
        let scheduled: usize = cli(&server, &["ZCARD", &format!("{base}:scheduled")])
            .parse()
            .unwrap();
        let last_done = chain_steps
            .iter()
            .filter(|ids| {
                cli(
                    &server,
                    &["SCARD", &format!("flow:{run}:step:{}", ids[ids.len() - 1])],
                ) != "0"
            })
            .count();
        if summaries == BATCHES && last_done == CHAINS && ready == 0 && scheduled == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {summaries}/{BATCHES} batches, {last_done}/{CHAINS} chains, ready {ready}, scheduled {scheduled}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fleet.kills >= 5, "kills: {}", fleet.kills);
    // Each step was created once: all its deliveries came from one entry.
    for ids in &chain_steps {
        for id in ids {
            let entries = cli(&server, &["SCARD", &format!("flow:{run}:step:{id}")]);
            assert_eq!(entries, "1", "step {id}: created once");
        }
    }
    let failing = (0..MEMBERS).filter(|n| n % 10 == 9).count() as u64;
    for (batch, members) in &batches {
        let entries = cli(&server, &["SCARD", &format!("flow:{run}:done:{batch}")]);
        assert_eq!(entries, "1", "batch {batch}: completion job created once");
        let summary = cli(&server, &["HGET", &format!("flow:{run}:summary"), batch]);
        assert_eq!(
            summary,
            format!("{MEMBERS}/{}/{failing}/0", MEMBERS - failing),
            "batch {batch}"
        );
        for m in members {
            let entries = cli(&server, &["SCARD", &format!("flow:{run}:member:{m}")]);
            assert_eq!(entries, "1", "member {m}: created once");
        }
    }
    // Nothing dead but the members that fail on purpose, nothing pending.
    let dead: u64 = cli(&server, &["XLEN", &format!("{base}:dead")])
        .parse()
        .unwrap();
    assert_eq!(dead, failing * BATCHES as u64);
    let pending = cli(&server, &["XPENDING", &format!("{base}:ready"), "workers"]);
    assert!(pending.starts_with('0'), "pending: {pending}");
}
