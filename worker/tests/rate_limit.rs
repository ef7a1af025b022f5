#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Fleet-wide rate limits against a real server: four workers share one
//! limit; the jobs that start stay under it (GCRA on the server's clock)
//! and close to it while there is a backlog; a job held back spends no
//! attempt; another queue of the same workers is not slowed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, free_addr, http_get_when_up, unique_queue};
use jobstream_worker::{JobContext, JobResult, QueueOptions, RateLimit, Worker};
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    std::env::var("JOBSTREAM_RATE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_one_limit() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rate: u32 = rng.random_range(30..=80);
    let burst: u32 = rng.random_range(1..=8);
    let run = Duration::from_secs(6);
    let server = RedisServer::start();
    let (limited, free) = (unique_queue("rate"), unique_queue("free"));
    let producer = producer(&server).await;
    let backlog = (rate as usize) * 20;
    producer
        .enqueue_many(
            &limited,
            (0..backlog)
                .map(|i| NewJob::new("work", &i).unwrap())
                .collect(),
        )
        .await
        .unwrap();
    let starts: Arc<Mutex<Vec<(String, Instant, u32)>>> = Arc::default();
    let limit = RateLimit::per_second(rate).unwrap().burst(burst);
    let addr = free_addr();
    let workers: Vec<Running> = (0..4)
        .map(|i| {
            let starts = starts.clone();
            let mut builder = Worker::builder(&server.url());
            if i == 0 {
                builder = builder.serve_http(addr);
            }
            start(
                builder
                    .timings(fast_timings())
                    .concurrency(8)
                    .queue_with(&limited, QueueOptions::new().rate_limit(limit))
                    .queue(&free)
                    .handle("work", move |_: usize, job: JobContext| {
                        starts.lock().unwrap().push((
                            job.queue().to_owned(),
                            Instant::now(),
                            job.attempt(),
                        ));
                        std::future::ready(JobResult::Ok(()))
                    }),
            )
        })
        .collect();
    // The unlimited queue of the same workers is not held back.
    producer
        .enqueue_many(
            &free,
            (0..500).map(|i| NewJob::new("work", &i).unwrap()).collect(),
        )
        .await
        .unwrap();
    tokio::time::sleep(run).await;
    let snapshot = starts.lock().unwrap().clone();
    let of = |q: &str| snapshot.iter().filter(|(x, ..)| x == q).collect::<Vec<_>>();
    assert_eq!(of(&free).len(), 500, "seed {seed}: the free queue drained");
    let limited_starts = of(&limited);
    let first = limited_starts.iter().map(|(_, t, _)| *t).min().unwrap();
    let last = limited_starts.iter().map(|(_, t, _)| *t).max().unwrap();
    let span = (last - first).as_secs_f64();
    // GCRA: at most the burst plus one token per interval, measured at
    // the grants; starts follow grants by a varying delay (a fetch, a
    // task spawn), so allow 100 ms of it.
    let most = f64::from(burst) + f64::from(rate) * (span + 0.1) + 1.0;
    let n = limited_starts.len() as f64;
    eprintln!(
        "seed {seed}: {n} starts in {span:.2} s at {rate}/s burst {burst}: {:.1}/s",
        n / span.max(0.001)
    );
    assert!(
        n <= most,
        "seed {seed}: {n} starts in {span:.2} s at {rate}/s burst {burst} (at most {most:.0})"
    );
    assert!(
        n >= 0.8 * f64::from(rate) * run.as_secs_f64().min(span + 1.0),
        "seed {seed}: only {n} starts in {span:.2} s at {rate}/s with a backlog"
    );
    assert!(
        limited_starts.iter().all(|(.., attempt)| *attempt == 1),
        "seed {seed}: a job held back must spend no attempt"
    );
    let s = stats(&server, &limited).await;
    assert_eq!((s.retried, s.dead_total), (0, 0), "seed {seed}: {s:?}");
    // Visible: the worker counts the fetches its limit held back.
    let (_, body) = tokio::task::spawn_blocking(move || http_get_when_up(addr, "/metrics"))
        .await
        .unwrap();
    let held = body
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "jobstream_rate_limited_fetches_total{{queue=\"{limited}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(held.is_some_and(|n| n > 0.0), "seed {seed}: {held:?}");
    for w in workers {
        w.stop().await;
    }
}
