#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Handler failures end to end: retries with a stable id, permanent errors,
//! exhausted attempts, panics, timeouts, discards, retry-after.

mod common;

use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, RetryPolicy, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Copy)]
enum Behaviour {
    FailTimes(u32),
    Permanent,
    AlwaysFail,
    Panic,
    Hang,
    Discard,
    RetryAfterMs(u64),
}

fn fast_retry(max_attempts: u32) -> JobOptions {
    JobOptions::default()
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy::exponential(
            max_attempts,
            Duration::from_millis(20),
            Duration::from_millis(100),
        ))
}

fn worker(server: &RedisServer, queue: &str, runs: &Runs, max_attempts: u32) -> Running {
    let runs = runs.clone();
    start(
        Worker::builder(&server.url())
            .queue(queue)
            .concurrency(4)
            .timings(fast_timings())
            .handle_with(
                "flaky",
                fast_retry(max_attempts),
                move |b: Behaviour, job: JobContext| {
                    let runs = runs.clone();
                    async move {
                        let n = runs.record(job.id());
                        assert_eq!(n, job.attempt(), "attempt counts handler runs");
                        match b {
                            Behaviour::FailTimes(k) if job.attempt() <= k => {
                                Err(JobError::retry("transient").with_class("flaky"))
                            }
                            Behaviour::FailTimes(_) => Ok(()),
                            Behaviour::Permanent => Err(JobError::permanent("bad input")),
                            Behaviour::AlwaysFail => {
                                Err(std::io::Error::other("still down").into())
                            }
                            Behaviour::Panic => panic!("handler bug"),
                            Behaviour::Hang => {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                                Ok(())
                            }
                            Behaviour::Discard => Err(JobError::discard("not wanted")),
                            Behaviour::RetryAfterMs(ms) if job.attempt() == 1 => Err(
                                JobError::retry_after(Duration::from_millis(ms), "rate limited"),
                            ),
                            Behaviour::RetryAfterMs(_) => Ok(()),
                        }
                    }
                },
            ),
    )
}

async fn enqueue(server: &RedisServer, queue: &str, b: Behaviour) -> String {
    producer(server)
        .await
        .enqueue_named(queue, "flaky", &b)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_with_the_same_job_id_until_it_succeeds() {
    let server = RedisServer::start();
    let queue = unique_queue("retry");
    let runs = Runs::default();
    let w = worker(&server, &queue, &runs, 5);
    let id = enqueue(&server, &queue, Behaviour::FailTimes(2)).await;
    let s = wait_stats(&server, &queue, "processed", |s| s.processed == 1).await;
    assert_eq!((s.retried, s.dead, s.scheduled, s.in_flight), (2, 0, 0, 0));
    assert_eq!(runs.count(&id), 3);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_error_skips_retries_and_dead_letters_with_context() {
    let server = RedisServer::start();
    let queue = unique_queue("permanent");
    let runs = Runs::default();
    let w = worker(&server, &queue, &runs, 5);
    let id = enqueue(&server, &queue, Behaviour::Permanent).await;
    let s = wait_stats(&server, &queue, "dead", |s| s.dead == 1).await;
    assert_eq!((s.retried, s.processed), (0, 0));
    let dead = producer(&server)
        .await
        .inspector()
        .dead_list(&queue, &Default::default())
        .await
        .unwrap();
    let d = &dead[0];
    assert_eq!(
        (d.job_id.as_str(), d.job_type.as_str(), d.reason.as_str()),
        (id.as_str(), "flaky", "permanent")
    );
    assert_eq!(
        (
            d.error_class.as_str(),
            d.error.as_str(),
            d.attempt,
            d.deliveries
        ),
        ("permanent", "bad input", 1, 1)
    );
    assert!(d.failed_at >= d.enqueued_at && d.enqueued_at > 0);
    assert!(!d.worker.is_empty());
    assert_eq!(runs.count(&id), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_attempts_dead_letter_with_the_last_error() {
    let server = RedisServer::start();
    let queue = unique_queue("exhausted");
    let runs = Runs::default();
    let w = worker(&server, &queue, &runs, 3);
    let id = enqueue(&server, &queue, Behaviour::AlwaysFail).await;
    let s = wait_stats(&server, &queue, "dead", |s| s.dead == 1).await;
    assert_eq!(s.retried, 2);
    let dead = producer(&server)
        .await
        .inspector()
        .dead_list(&queue, &Default::default())
        .await
        .unwrap();
    assert_eq!((dead[0].reason.as_str(), dead[0].attempt), ("exhausted", 3));
    assert!(dead[0].error.contains("still down"));
    assert_eq!(runs.count(&id), 3);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_job_max_attempts_overrides_the_policy() {
    let server = RedisServer::start();
    let queue = unique_queue("override");
    let runs = Runs::default();
    let w = worker(&server, &queue, &runs, 10);
    let job = NewJob::new("flaky", &Behaviour::AlwaysFail)
        .unwrap()
        .max_attempts(2);
    let id = producer(&server)
        .await
        .enqueue_job(&queue, job)
        .await
        .unwrap();
    wait_stats(&server, &queue, "dead", |s| s.dead == 1).await;
    assert_eq!(runs.count(&id), 2);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_with_class_panic_and_the_worker_survives() {
    let server = RedisServer::start();
    let queue = unique_queue("panic");
    let runs = Runs::default();
    let w = worker(&server, &queue, &runs, 2);
    let id = enqueue(&server, &queue, Behaviour::Panic).await;
    wait_stats(&server, &queue, "dead", |s| s.dead == 1).await;
    let dead = producer(&server)
        .await
        .inspector()
        .dead_list(&queue, &Default::default())
        .await
        .unwrap();
    assert_eq!(dead[0].error_class, "panic");
    assert!(dead[0].error.contains("handler bug"));
    assert_eq!(runs.count(&id), 2);
    enqueue(&server, &queue, Behaviour::FailTimes(0)).await;
    wait_stats(&server, &queue, "processed after a panic", |s| {
        s.processed == 1
    })
    .await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_over_its_timeout_is_dropped_and_fails_with_class_timeout() {
    let server = RedisServer::start();
    let queue = unique_queue("timeout");
    let runs = Runs::default();
    let w = worker(&server, &queue, &runs, 2);
    let job = NewJob::new("flaky", &Behaviour::Hang)
        .unwrap()
        .timeout(Duration::from_millis(100));
    producer(&server)
        .await
        .enqueue_job(&queue, job)
        .await
        .unwrap();
    wait_stats(&server, &queue, "dead", |s| s.dead == 1).await;
    let dead = producer(&server)
        .await
        .inspector()
        .dead_list(&queue, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        (dead[0].error_class.as_str(), dead[0].reason.as_str()),
        ("timeout", "exhausted")
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_job_is_dropped_and_counted() {
    let server = RedisServer::start();
    let queue = unique_queue("discard");
    let runs = Runs::default();
    let w = worker(&server, &queue, &runs, 5);
    enqueue(&server, &queue, Behaviour::Discard).await;
    let s = wait_stats(&server, &queue, "discarded", |s| s.discarded == 1).await;
    assert_eq!((s.dead, s.retried, s.ready, s.in_flight), (0, 0, 0, 0));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_waits_the_requested_time() {
    let server = RedisServer::start();
    let queue = unique_queue("retry-after");
    let runs = Runs::default();
    let w = worker(&server, &queue, &runs, 5);
    let t = Instant::now();
    enqueue(&server, &queue, Behaviour::RetryAfterMs(700)).await;
    wait_stats(&server, &queue, "processed", |s| s.processed == 1).await;
    assert!(
        t.elapsed() >= Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_jobs_retried_together_stay_two_jobs() {
    let server = RedisServer::start();
    let queue = unique_queue("twins");
    let store = store(&server, &queue);
    store.ensure_group().await.unwrap();
    // Two entries with the same explicit id and identical content: their
    // retries must not collapse into one `scheduled` member.
    let payload = rmp_serde::to_vec(&Behaviour::FailTimes(1)).unwrap();
    let fields: Vec<(&[u8], &[u8])> = vec![
        (b"type", b"twin"),
        (b"payload", &payload),
        (b"id", b"same-id"),
        (b"enqueued_at", b"1700000000000"),
    ];
    store.add(&fields).await.unwrap();
    store.add(&fields).await.unwrap();
    let runs = Runs::default();
    let r = runs.clone();
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .concurrency(4)
            .timings(fast_timings())
            .handle_with(
                "twin",
                fast_retry(3),
                move |_: Behaviour, job: JobContext| {
                    let r = r.clone();
                    async move {
                        r.record(&format!("attempt{}", job.attempt()));
                        if job.attempt() == 1 {
                            return Err(JobError::retry("once"));
                        }
                        Ok(())
                    }
                },
            ),
    );
    let s = wait_stats(&server, &queue, "both processed", |s| s.processed == 2).await;
    w.stop().await;
    assert_eq!((s.retried, s.dead, s.scheduled), (2, 0, 0), "{s:?}");
    assert_eq!((runs.count("attempt1"), runs.count("attempt2")), (2, 2));
}
