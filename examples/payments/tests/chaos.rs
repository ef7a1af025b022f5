#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Exactly-once payments under chaos, against a real PostgreSQL and a real
//! Redis: three worker processes of the example apply 600 payments (and
//! about 60 duplicate enqueues of the same `txn_id`s) while workers are
//! SIGKILLed at random moments and replaced, Redis is killed and restarted
//! from its AOF, and every handler fails on purpose now and then, before
//! its transaction and after its commit. At the end every account's
//! balance must be exactly the sum of its distinct payments, and
//! `applied_txns` must hold exactly the planned `txn_id`s.
//!
//! `PAYMENTS_CHAOS_SEED=N` replays a run's payments and chaos schedule
//! (the seed is printed; process timing still varies).

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use example_payments::plan::{self, PlanOptions};
use example_payments::{Payment, ledger};
use jobstream::testkit::RedisServer;
use jobstream::{Job, NewJob, Producer, ProducerOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::fleet::Fleet;
use support::postgres::Postgres;

const PAYMENTS: usize = 600;
const ACCOUNTS: usize = 10;
const DUPLICATE_RATE: f64 = 0.1;
const WORKERS: usize = 3;
const WORKER_KILLS: usize = 5;
const WAVES: usize = 12;

/// Fast retries and a short visibility timeout, so the run settles in
/// seconds; attempts enough that no job can run out of them (a job fails
/// 36% of its attempts on purpose: 0.36^40 is nil).
const WORKER_ARGS: &[&str] = &[
    "--concurrency",
    "8",
    "--fail-rate",
    "0.2",
    "--work-ms",
    "2",
    "--max-attempts",
    "40",
    "--backoff-ms",
    "20",
    "--backoff-max-ms",
    "300",
    "--visibility-timeout-ms",
    "1500",
];

/// What the chaos thread did.
struct Chaos {
    fleet: Fleet,
    redis: RedisServer,
    redis_restarts: usize,
}

/// The chaos thread, joined when the test ends, even by a panic: then its
/// fleet and Redis are dropped (killed) rather than left running.
struct ChaosThread(Option<std::thread::JoinHandle<Chaos>>);

impl ChaosThread {
    fn finish(mut self) -> Chaos {
        let handle = self.0.take().expect("finished once");
        handle.join().expect("the chaos thread panicked")
    }
}

impl Drop for ChaosThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.join();
        }
    }
}

/// Kills a worker at each of `kill_at` (from the start) and restarts Redis
/// at `restart_at`, in time order, on a thread of its own while the test
/// enqueues. Replacements start only while Redis is up.
fn run_chaos(
    mut fleet: Fleet,
    mut redis: RedisServer,
    kill_at: Vec<(Duration, usize)>,
    restart_at: Duration,
) -> ChaosThread {
    ChaosThread(Some(std::thread::spawn(move || {
        let start = Instant::now();
        let mut redis_restarts = 0;
        let mut events: Vec<(Duration, Option<usize>)> =
            kill_at.into_iter().map(|(t, i)| (t, Some(i))).collect();
        events.push((restart_at, None));
        events.sort_by_key(|(t, _)| *t);
        for (at, event) in events {
            std::thread::sleep(at.saturating_sub(start.elapsed()));
            match event {
                Some(worker) => fleet.kill_and_replace(worker),
                None => {
                    redis.restart(); // SIGKILL, then start again from the AOF
                    redis_restarts += 1;
                }
            }
        }
        Chaos {
            fleet,
            redis,
            redis_restarts,
        }
    })))
}

/// Enqueues `payments` in `WAVES` waves with pauses between them. A wave
/// whose enqueue fails (Redis restarting for longer than the producer's
/// own retries) is sent again whole, with new job ids: part of it may
/// have been stored, so this makes duplicates, as a real caller would.
/// Returns the jobs whose enqueue Redis acknowledged.
async fn enqueue_in_waves(producer: &Producer, payments: &[Payment]) -> usize {
    let mut acknowledged = 0;
    for wave in payments.chunks(payments.len().div_ceil(WAVES)) {
        let mut tries = 0;
        loop {
            tries += 1;
            let jobs = wave.iter().map(|p| NewJob::of(p).unwrap()).collect();
            match producer.enqueue_many(Payment::QUEUE, jobs).await {
                Ok(ids) => {
                    acknowledged += ids.len();
                    break;
                }
                Err(e) if tries < 20 => {
                    eprintln!("enqueue failed, sending the wave again: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("enqueue kept failing: {e}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    acknowledged
}

#[test]
fn every_payment_is_applied_exactly_once_through_kills_restarts_and_failures() {
    let started = Instant::now();
    let seed: u64 = std::env::var("PAYMENTS_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("PAYMENTS_CHAOS_SEED={seed}");
    let payments = plan::generate(&PlanOptions {
        seed,
        payments: PAYMENTS,
        accounts: ACCOUNTS,
        duplicate_rate: DUPLICATE_RATE,
        txn_prefix: format!("t{seed:x}"),
    });
    let planned: BTreeMap<String, (String, i64)> = payments
        .iter()
        .map(|p| (p.txn_id.clone(), (p.account.clone(), p.amount_cents)))
        .collect();
    assert_eq!(planned.len(), PAYMENTS);

    let pg = Postgres::start();
    let redis = RedisServer::start_durable();
    let redis_url = redis.url();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let mut fleet = Fleet::new(&redis_url, &pg.url(), WORKER_ARGS);
    for _ in 0..WORKERS {
        fleet.spawn();
    }
    // Another stream than the payments' ("chaos" in hex).
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0063_6861_6f73);
    // Kills while enqueueing and after; the restart in the middle of it.
    let kill_at = (0..WORKER_KILLS)
        .map(|_| {
            (
                Duration::from_millis(rng.random_range(300..5000)),
                rng.random_range(0..WORKERS),
            )
        })
        .collect();
    let restart_at = Duration::from_millis(rng.random_range(1200..2500));
    let chaos = run_chaos(fleet, redis, kill_at, restart_at);

    // Rides out the restart by itself (reconnecting) for up to 10 s.
    let producer = rt
        .block_on(async {
            Producer::with_options(
                &redis_url,
                ProducerOptions::default().retry_for(Duration::from_secs(10)),
            )
        })
        .unwrap();
    let acknowledged = rt.block_on(enqueue_in_waves(&producer, &payments));
    let Chaos {
        mut fleet,
        redis: _redis,
        redis_restarts,
    } = chaos.finish();

    // Settled: nothing ready, running or waiting for a retry, and every
    // acknowledged job processed or dead.
    let inspector = producer.inspector();
    let deadline = Instant::now() + Duration::from_secs(45);
    let stats = loop {
        let stats = rt.block_on(inspector.stats(Payment::QUEUE));
        if let Ok(s) = &stats
            && s.ready == 0
            && s.in_flight == 0
            && s.scheduled == 0
            && (s.processed + s.dead_total) as usize >= acknowledged
        {
            break stats.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "not settled after 45 s (seed {seed}): {stats:?}\n{}",
            fleet.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let kills = fleet.kills;
    let exited = fleet.exited();
    let no_ops = fleet.count_in_logs("payment was applied before");
    let logs = fleet.logs();
    drop(fleet);

    let (applied, balances) = rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        (
            ledger::applied(&client).await.unwrap(),
            ledger::balances(&client).await.unwrap(),
        )
    });
    let applied: BTreeMap<String, (String, i64)> = applied
        .into_iter()
        .map(|(txn, account, cents)| (txn, (account, cents)))
        .collect();
    let expected = plan::expected_balances(&payments);

    println!(
        "seed {seed}: {PAYMENTS} payments, {} jobs planned, {acknowledged} enqueued; processed {}, \
         retried {}, dead {}; {no_ops} runs found their txn_id applied; {} worker kills, \
         {redis_restarts} Redis restart; {:.1} s",
        payments.len(),
        stats.processed,
        stats.retried,
        stats.dead_total,
        kills,
        started.elapsed().as_secs_f64()
    );
    // The money: every balance exactly its distinct payments' sum.
    assert_eq!(balances, expected, "balances (seed {seed})");
    // Exactly the planned payments in applied_txns, each once, as planned.
    let missing: Vec<&String> = planned
        .keys()
        .filter(|t| !applied.contains_key(*t))
        .collect();
    let unplanned: Vec<&String> = applied
        .keys()
        .filter(|t| !planned.contains_key(*t))
        .collect();
    assert_eq!(
        (applied.len(), missing.len(), unplanned.len()),
        (PAYMENTS, 0, 0),
        "applied_txns (seed {seed}): missing {missing:?}, unplanned {unplanned:?}"
    );
    assert!(
        applied == planned,
        "an applied payment differs from its plan (seed {seed})"
    );
    // And the run was what it claims to be: nothing dead or left behind,
    // failures retried, duplicates met, workers killed, Redis restarted.
    let context = format!("seed {seed}, {stats:?}\n{logs}");
    assert!(exited.is_empty(), "workers exited: {exited:?}\n{context}");
    assert_eq!(stats.dead_total, 0, "{context}");
    assert!(acknowledged >= payments.len(), "{context}");
    assert!(stats.processed as usize >= acknowledged, "{context}");
    assert!(
        stats.retried > 0,
        "failures on purpose were retried: {context}"
    );
    assert!(
        no_ops > 0,
        "duplicate deliveries reached the handler and changed nothing: {context}"
    );
    assert_eq!((kills, redis_restarts), (WORKER_KILLS, 1));
}
