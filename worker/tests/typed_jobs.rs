#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Typed jobs end to end: the producer enqueues a `Job` type, the worker
//! serves it with `job::<T>()`, handlers get the shared state, the type's
//! own options apply, and middleware sees every job.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use jobstream_producer::{Job, NewJob};
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, JobResult, Middleware, Next, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Charge {
    order: u64,
    cents: i64,
}

impl Job for Charge {
    const NAME: &'static str = "charge";
    // Tests need a unique queue; the constant is the default one.
    fn options() -> Option<JobOptions> {
        // One attempt: a failure goes straight to dead.
        Some(JobOptions::new().max_attempts(1))
    }
}

#[derive(Clone)]
struct App {
    charged: Arc<AtomicU32>,
    refuse_above: i64,
}

async fn charge(job: Charge, ctx: JobContext<App>) -> JobResult {
    if job.cents > ctx.state().refuse_above {
        // Retryable by default; the type allows one attempt.
        Err(anyhow::anyhow!("order {} over the limit", job.order))?;
    }
    ctx.state().charged.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Counts the jobs it wraps.
struct Count(Arc<AtomicU32>);

impl Middleware for Count {
    async fn around(&self, job: JobContext, next: Next<'_>) -> JobResult {
        self.0.fetch_add(1, Ordering::SeqCst);
        next.run(job).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_jobs_run_with_state_options_and_middleware() {
    let server = RedisServer::start();
    let queue = unique_queue("typed");
    let producer = producer(&server).await;
    for order in 0..10 {
        let cents = if order == 7 { 1_000_000 } else { 500 };
        producer
            .push(NewJob::of(&Charge { order, cents }).unwrap().queue(&queue))
            .await
            .unwrap();
    }
    let app = App {
        charged: Arc::default(),
        refuse_above: 10_000,
    };
    let wrapped = Arc::new(AtomicU32::new(0));
    let worker = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .queue(&queue)
            .middleware(Count(wrapped.clone()))
            .state(app.clone())
            .job::<Charge>(charge),
    );
    let s = wait_stats(&server, &queue, "9 processed, 1 dead", |s| {
        s.processed == 9 && s.dead == 1
    })
    .await;
    worker.stop().await;
    assert_eq!(s.retried, 0, "the type's max_attempts(1) applies");
    assert_eq!(app.charged.load(Ordering::SeqCst), 9);
    assert_eq!(wrapped.load(Ordering::SeqCst), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_puts_a_typed_job_on_its_own_queue() {
    #[derive(Serialize, Deserialize)]
    struct Ping(u32);
    impl Job for Ping {
        const NAME: &'static str = "ping";
        const QUEUE: &'static str = "typed-ping-queue";
    }
    let server = RedisServer::start();
    let producer = producer(&server).await;
    producer.enqueue(&Ping(1)).await.unwrap();
    let got = Arc::new(AtomicU32::new(0));
    let g = got.clone();
    let worker = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .queue(Ping::QUEUE)
            .job::<Ping>(move |ping, _ctx| {
                let g = g.clone();
                async move {
                    g.fetch_add(ping.0, Ordering::SeqCst);
                    Ok(())
                }
            }),
    );
    wait_stats(&server, Ping::QUEUE, "processed", |s| s.processed == 1).await;
    worker.stop().await;
    assert_eq!(got.load(Ordering::SeqCst), 1);
    let _ = Duration::ZERO;
    let _ = JobError::retry("unused");
}

#[test]
fn a_typed_job_registered_twice_is_refused() {
    async fn nothing(_: Charge, _: JobContext) -> JobResult {
        Ok(())
    }
    let err = Worker::builder("redis://127.0.0.1:1")
        .job::<Charge>(nothing)
        .handle("charge", |_: u8, _| async { Ok(()) })
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("\"charge\" is registered twice"), "{err}");
}
