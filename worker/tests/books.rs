#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The books balance at every instant while workers drain a queue with
//! retries, dead letters, discards, malformed entries and a graceful stop.

mod common;

use std::time::Duration;

use common::*;
use jobstream_core::BooksStatus;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, Limits, RetryPolicy, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy)]
enum Outcome {
    Ok,
    FailOnce,
    Permanent,
    Discard,
    AlwaysFail,
}

const JOBS: usize = 3000;
const MALFORMED: usize = 20;

fn worker(server: &RedisServer, queue: &str) -> Running {
    let options =
        JobOptions::default()
            .timeout(Duration::from_secs(5))
            .retry(RetryPolicy::exponential(
                2,
                Duration::from_millis(5),
                Duration::from_millis(20),
            ));
    start(
        Worker::builder(&server.url())
            .queue(queue)
            .concurrency(8)
            .timings(fast_timings())
            .limits(Limits::default().dead_max_len(50))
            .handle_with("job", options, |o: Outcome, job: JobContext| async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                match o {
                    Outcome::Ok => Ok(()),
                    Outcome::FailOnce if job.attempt() == 1 => Err(JobError::retry("once")),
                    Outcome::FailOnce => Ok(()),
                    Outcome::Permanent => Err(JobError::permanent("bad")),
                    Outcome::Discard => Err(JobError::discard("unwanted")),
                    Outcome::AlwaysFail => Err(JobError::retry("down")),
                }
            }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_balance_at_every_check_while_workers_drain_with_failures() {
    let server = RedisServer::start();
    let queue = unique_queue("books");
    let s = store(&server, &queue);
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|i| {
            let o = match i % 10 {
                6 => Outcome::FailOnce,
                7 => Outcome::Permanent,
                8 => Outcome::Discard,
                9 => Outcome::AlwaysFail,
                _ => Outcome::Ok,
            };
            NewJob::new("job", &o).unwrap()
        })
        .collect();
    producer(&server)
        .await
        .enqueue_many(&queue, jobs)
        .await
        .unwrap();
    for _ in 0..MALFORMED {
        s.add(&[(b"type", b"job")]).await.unwrap();
    }
    let first = worker(&server, &queue);
    let second = worker(&server, &queue);
    let mut first = Some(first);

    let total = (JOBS + MALFORMED) as i64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let (mut checks, mut under_load) = (0, 0);
    loop {
        let b = s.books().await.unwrap();
        checks += 1;
        assert_eq!(
            (b.difference, b.status),
            (Some(0), BooksStatus::Ok),
            "check {checks}: {b:?}"
        );
        if b.in_stream > 0 && b.processed > 0 {
            under_load += 1;
        }
        // Halfway, stop one worker gracefully: its fetched, unstarted jobs
        // go back through requeue-2.
        if b.processed > (JOBS / 3) as i64
            && let Some(w) = first.take()
        {
            w.stop().await;
        }
        if b.in_stream == 0 && b.processed + b.discarded + b.dead == total {
            let st = stats(&server, &queue).await;
            if st.scheduled == 0 {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "drain did not finish: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    second.stop().await;
    if let Some(w) = first {
        w.stop().await;
    }

    let b = s.books().await.unwrap();
    assert_eq!(b.difference, Some(0), "{b:?}");
    assert_eq!(
        (b.processed, b.discarded, b.dead),
        (1800 + 300, 300, 300 + 300 + MALFORMED as i64),
        "{b:?}"
    );
    // Every retry came back through promote-4, every requeue as a new entry.
    assert_eq!(b.retried, 600, "{b:?}");
    assert_eq!(b.entries_added, Some(total + b.retried + b.requeued));
    assert!(
        checks >= 10 && under_load >= 5,
        "too few checks under load: {checks} checks, {under_load} while busy"
    );
}
