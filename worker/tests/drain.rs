#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! testing::Drain against a real redis-server: follow-up jobs, scheduled
//! jobs and retries run in the drain, limits end it with a clear error,
//! and only the drained queues are touched.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::{Job, NewJob, Producer};
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::testing::{Drain, DrainError};
use jobstream_worker::{JobContext, JobError, JobOptions, JobResult, Worker, WorkerBuilder};
use serde::{Deserialize, Serialize};

/// Counts down: each job enqueues the next one on `queue` until 0.
#[derive(Serialize, Deserialize)]
struct Countdown {
    n: u32,
    queue: String,
}

impl Job for Countdown {
    const NAME: &'static str = "countdown";
}

/// Fails its first `fail` attempts.
#[derive(Serialize, Deserialize)]
struct Flaky {
    fail: u32,
}

impl Job for Flaky {
    const NAME: &'static str = "flaky";
    fn options() -> Option<JobOptions> {
        Some(JobOptions::new().max_attempts(3))
    }
}

#[derive(Clone)]
struct App {
    producer: Producer,
    ran: Arc<AtomicU32>,
}

async fn countdown(job: Countdown, ctx: JobContext<App>) -> JobResult {
    ctx.state().ran.fetch_add(1, Ordering::SeqCst);
    if job.n > 0 {
        let next = Countdown {
            n: job.n - 1,
            queue: job.queue.clone(),
        };
        ctx.state()
            .producer
            .push(NewJob::of(&next)?.queue(&job.queue))
            .await?;
    }
    Ok(())
}

async fn flaky(job: Flaky, ctx: JobContext<App>) -> JobResult {
    ctx.state().ran.fetch_add(1, Ordering::SeqCst);
    if ctx.attempt() <= job.fail {
        return Err(JobError::retry("not yet"));
    }
    Ok(())
}

async fn refuse(_: String, _: JobContext<App>) -> JobResult {
    Err(JobError::permanent("no recipient"))
}

async fn setup(server: &RedisServer) -> (Producer, App) {
    let producer = producer(server).await;
    let app = App {
        producer: producer.clone(),
        ran: Arc::default(),
    };
    (producer, app)
}

fn builder(server: &RedisServer, queues: &[&str], app: &App) -> WorkerBuilder<App> {
    let mut b = Worker::builder(&server.url()).timings(fast_timings());
    for q in queues {
        b = b.queue(q);
    }
    b.state(app.clone())
        .job::<Countdown>(countdown)
        .job::<Flaky>(flaky)
        .handle("refuse", refuse)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_up_jobs_run_in_the_same_drain() {
    let server = RedisServer::start();
    let (a, b) = (unique_queue("drain-a"), unique_queue("drain-b"));
    let (producer, app) = setup(&server).await;
    // One chain on each queue; a chain on `a` that continues on `b`.
    producer
        .push(
            NewJob::of(&Countdown {
                n: 5,
                queue: a.clone(),
            })
            .unwrap()
            .queue(&a),
        )
        .await
        .unwrap();
    producer
        .push(
            NewJob::of(&Countdown {
                n: 3,
                queue: b.clone(),
            })
            .unwrap()
            .queue(&a),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let report = Drain::new(builder(&server, &[&a, &b], &app))
        .run()
        .await
        .unwrap();
    assert_eq!(report.processed, 6 + 4, "{report:?}");
    assert_eq!((report.ready, report.in_flight, report.dead), (0, 0, 0));
    assert_eq!(app.ran.load(Ordering::SeqCst), 10);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The queues are left empty, as the stats say too.
    for q in [&a, &b] {
        let s = stats(&server, q).await;
        assert_eq!((s.ready, s.in_flight), (0, 0), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_scheduled_runs_delayed_jobs_and_retries_at_once() {
    let server = RedisServer::start();
    let q = unique_queue("drain-sched");
    let (producer, app) = setup(&server).await;
    let hour = Duration::from_secs(3600);
    producer
        .push(
            NewJob::of(&Flaky { fail: 1 })
                .unwrap()
                .queue(&q)
                .delay(hour),
        )
        .await
        .unwrap();
    producer
        .push(NewJob::of(&Flaky { fail: 9 }).unwrap().queue(&q))
        .await
        .unwrap();
    producer
        .push(
            NewJob::new("refuse", "x")
                .unwrap()
                .queue(&q)
                .delay(2 * hour),
        )
        .await
        .unwrap();

    // Without it, the delayed jobs stay; the failing one's retry waits.
    let report = Drain::new(builder(&server, &[&q], &app))
        .run()
        .await
        .unwrap();
    assert_eq!(
        (
            report.processed,
            report.retried,
            report.dead,
            report.scheduled
        ),
        (0, 1, 0, 3),
        "{report:?}"
    );

    let started = Instant::now();
    let report = Drain::new(builder(&server, &[&q], &app))
        .with_scheduled(true)
        .run()
        .await
        .unwrap();
    // flaky(1): fails once, then done; flaky(9): 2 more attempts, then
    // dead as exhausted (3 attempts); refuse: dead at once.
    assert_eq!(report.processed, 1, "{report:?}");
    assert_eq!(report.retried, 1 + 1, "{report:?}");
    assert_eq!(report.dead, 2, "{report:?}");
    assert_eq!(
        (report.scheduled, report.ready, report.in_flight),
        (0, 0, 0)
    );
    assert!(report.promoted >= 4, "{report:?}");
    let mut reasons: Vec<(&str, &str)> = report
        .dead_letters
        .iter()
        .map(|d| (d.job_type.as_str(), d.reason.as_str()))
        .collect();
    reasons.sort();
    assert_eq!(reasons, [("flaky", "exhausted"), ("refuse", "permanent")]);
    let refused = report
        .dead_letters
        .iter()
        .find(|d| d.job_type == "refuse")
        .unwrap();
    assert_eq!(refused.error, "permanent: no recipient");
    // No backoff was waited for (the retries were due in seconds).
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_enqueuing_itself_hits_max_jobs() {
    let server = RedisServer::start();
    let q = unique_queue("drain-loop");
    let (producer, app) = setup(&server).await;
    producer
        .push(
            NewJob::of(&Countdown {
                n: u32::MAX,
                queue: q.clone(),
            })
            .unwrap()
            .queue(&q),
        )
        .await
        .unwrap();
    let err = Drain::new(builder(&server, &[&q], &app))
        .max_jobs(30)
        .run()
        .await
        .unwrap_err();
    let DrainError::TooManyJobs { max_jobs, report } = &err else {
        panic!("{err}");
    };
    assert_eq!(*max_jobs, 30);
    assert!(report.processed > 30, "{report:?}");
    assert!(err.to_string().contains("keeps enqueuing itself"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_hangs_ends_the_drain_at_its_timeout() {
    let server = RedisServer::start();
    let q = unique_queue("drain-hang");
    let producer = producer(&server).await;
    producer.enqueue_named(&q, "hang", &()).await.unwrap();
    let builder = Worker::builder(&server.url())
        .timings(fast_timings())
        .queue(&q)
        .handle("hang", |_: (), _| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(())
        });
    let started = Instant::now();
    let err = Drain::new(builder)
        .timeout(Duration::from_millis(500))
        .run()
        .await
        .unwrap_err();
    let DrainError::Timeout { report, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(report.in_flight + report.ready, 1, "{report:?}");
    assert!(err.to_string().contains("not empty after 500ms"), "{err}");
    // The timeout, plus at most the drain's 1 s of grace and the flush.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_drains_the_named_queue_and_an_empty_queue_drains_at_once() {
    let server = RedisServer::start();
    let (a, b) = (unique_queue("drain-only-a"), unique_queue("drain-only-b"));
    let (producer, app) = setup(&server).await;
    for q in [&a, &b] {
        producer
            .push(
                NewJob::of(&Countdown {
                    n: 0,
                    queue: q.clone(),
                })
                .unwrap()
                .queue(q),
            )
            .await
            .unwrap();
    }
    let report = Drain::new(builder(&server, &[&a, &b], &app))
        .only(&a)
        .run()
        .await
        .unwrap();
    assert_eq!(report.processed, 1, "{report:?}");
    assert_eq!(stats(&server, &b).await.ready, 1);

    let empty = unique_queue("drain-empty");
    let report = Drain::new(builder(&server, &[&empty], &app))
        .run()
        .await
        .unwrap();
    assert_eq!(report.processed, 0);

    let err = Drain::new(builder(&server, &[&a], &app))
        .only("elsewhere")
        .run()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("\"elsewhere\" is not one this worker serves"),
        "{err}"
    );
    // A builder that does not build: its error, not a panic.
    let err = Drain::new(Worker::builder(&server.url()).queue(&a))
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err, DrainError::Worker(_)), "{err}");
}
