#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `queue pause|resume`, fleet-wide, against a real server: three workers
//! serving two queues; pausing one stops every worker fetching it within a
//! second while its running jobs finish and the other queue goes on; a
//! worker started while it is paused fetches nothing; resume starts every
//! worker again; the books balance throughout.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::NewJob;
use jobstream_producer::inspect::Inspector;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobResult, Worker};

/// Every job start: (worker number, queue, when).
#[derive(Clone, Default)]
struct Starts(Arc<Mutex<Vec<(usize, String, Instant)>>>);

impl Starts {
    fn of(&self, queue: &str) -> Vec<(usize, Instant)> {
        let v = self.0.lock().unwrap();
        v.iter()
            .filter(|(_, q, _)| q == queue)
            .map(|(w, _, t)| (*w, *t))
            .collect()
    }
    fn after(&self, queue: &str, at: Instant) -> Vec<(usize, Instant)> {
        self.of(queue)
            .into_iter()
            .filter(|(_, t)| *t > at)
            .collect()
    }
}

/// Worker `n` on `queues`: jobs sleep their payload's milliseconds. Long
/// blocking reads and no reclaim pass to cut them short: a pause must end
/// a blocked read, not wait it out.
fn worker(server: &RedisServer, n: usize, queues: &[&str], starts: &Starts) -> Running {
    let mut builder = Worker::builder(&server.url())
        .timings(
            fast_timings()
                .block(Duration::from_secs(10))
                .reclaim_interval(Duration::from_secs(60)),
        )
        .concurrency(3);
    for q in queues {
        builder = builder.queue(q);
    }
    let starts = starts.clone();
    start(builder.handle("work", move |ms: u64, job: JobContext| {
        starts
            .0
            .lock()
            .unwrap()
            .push((n, job.queue().to_owned(), Instant::now()));
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            JobResult::Ok(())
        }
    }))
}

async fn enqueue(server: &RedisServer, queue: &str, n: usize, ms: u64) {
    let producer = producer(server).await;
    let jobs = (0..n).map(|_| NewJob::new("work", &ms).unwrap()).collect();
    producer.enqueue_many(queue, jobs).await.unwrap();
}

/// Enqueues a job of `ms` milliseconds onto each queue every `every` until
/// stopped; returns how many went onto each.
fn feed(
    server: &RedisServer,
    queues: Vec<String>,
    ms: u64,
    every: Duration,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<u64>,
) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let url = server.url();
    let task = tokio::spawn(async move {
        let producer = jobstream_producer::Producer::connect(&url).await.unwrap();
        let mut n = 0;
        loop {
            for q in &queues {
                producer
                    .enqueue_job(q, NewJob::new("work", &ms).unwrap())
                    .await
                    .unwrap();
            }
            n += 1;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = &mut stopped => return n,
            }
        }
    });
    (stop, task)
}

/// Waits (20 s at most) until every worker in `workers` started a job of
/// `queue` after `at`; returns the earliest of those starts.
async fn every_worker_starts(
    starts: &Starts,
    queue: &str,
    at: Instant,
    workers: &[usize],
) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let after = starts.after(queue, at);
        if workers.iter().all(|w| after.iter().any(|(x, _)| x == w)) {
            return after.iter().map(|(_, t)| *t).min().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "not every worker of {workers:?} started a job after resume: {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Busy workers: the pause stops starts within a second on all of them
/// while the other queue goes on and running jobs finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_every_worker_within_a_second_and_resume_starts_them_again() {
    let server = RedisServer::start();
    let (paused_q, other_q) = (unique_queue("paused"), unique_queue("other"));
    let starts = Starts::default();
    let workers: Vec<Running> = (0..3)
        .map(|n| worker(&server, n, &[&paused_q, &other_q], &starts))
        .collect();
    let (stop_feed, fed) = feed(
        &server,
        vec![paused_q.clone(), other_q.clone()],
        200,
        Duration::from_millis(40),
    );
    let inspector = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();

    // Running, with jobs in flight.
    wait_stats(&server, &paused_q, "jobs running", |s| {
        s.processed >= 5 && s.in_flight > 0
    })
    .await;
    assert!(inspector.pause(&paused_q).await.unwrap());
    let paused_at = Instant::now();
    assert!(!inspector.pause(&paused_q).await.unwrap(), "already paused");
    let s = stats(&server, &paused_q).await;
    assert!(s.paused && s.paused_at_ms.is_some(), "{s:?}");
    assert!(!stats(&server, &other_q).await.paused);

    // A worker started while the queue is paused fetches nothing from it.
    let late = worker(&server, 3, &[&paused_q], &starts);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let late_starts = starts
        .of(&paused_q)
        .into_iter()
        .filter(|(w, _)| *w == 3)
        .count();
    assert_eq!(
        late_starts, 0,
        "a worker started on a paused queue ran its jobs"
    );
    let after = starts.after(&paused_q, paused_at + Duration::from_secs(1));
    assert!(
        after.is_empty(),
        "{} jobs of the paused queue started more than 1 s after the pause",
        after.len()
    );
    assert!(
        !starts
            .after(&other_q, paused_at + Duration::from_secs(1))
            .is_empty(),
        "the other queue must go on"
    );
    // What was running when the pause came has finished: nothing of the
    // paused queue is in flight, and its backlog grows.
    let s = wait_stats(&server, &paused_q, "running jobs to finish", |s| {
        s.in_flight == 0
    })
    .await;
    assert!(s.ready > 0, "{s:?}");

    // Resume: every worker starts jobs again, the late one too.
    assert!(inspector.resume(&paused_q).await.unwrap());
    let resumed_at = Instant::now();
    assert!(!inspector.resume(&paused_q).await.unwrap(), "not paused");
    let first = every_worker_starts(&starts, &paused_q, resumed_at, &[0, 1, 2, 3]).await;
    assert!(
        first - resumed_at < Duration::from_secs(1),
        "first start {:?} after resume",
        first - resumed_at
    );
    assert!(!stats(&server, &paused_q).await.paused);

    stop_feed.send(()).unwrap();
    let n = fed.await.unwrap();
    for q in [&paused_q, &other_q] {
        wait_stats(&server, q, "every job done", |s| {
            s.processed == n && s.ready == 0 && s.in_flight == 0
        })
        .await;
        let books = store(&server, q).books().await.unwrap();
        assert!(books.balances(), "{books:?}");
    }
    late.stop().await;
    for w in workers {
        w.stop().await;
    }
}

/// Idle workers blocked in their reads: the pause ends the reads, so jobs
/// enqueued while paused are not even delivered (nothing is handed out and
/// given back); resume delivers them to every worker within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_ends_blocked_reads_and_resume_wakes_every_worker() {
    let server = RedisServer::start();
    let q = unique_queue("idlepause");
    let starts = Starts::default();
    let workers: Vec<Running> = (0..3).map(|n| worker(&server, n, &[&q], &starts)).collect();
    // Every worker is blocked in its read (10 s BLOCK).
    enqueue(&server, &q, 3, 10).await;
    wait_stats(&server, &q, "a first round", |s| s.processed == 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let inspector = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();
    inspector.pause(&q).await.unwrap();
    // A pause is seen within 250 ms plus a round trip.
    tokio::time::sleep(Duration::from_millis(700)).await;
    enqueue(&server, &q, 30, 300).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = stats(&server, &q).await;
    assert_eq!(
        (s.processed, s.in_flight, s.ready, s.requeued),
        (3, 0, 30, 0),
        "paused: no job delivered, none given back: {s:?}"
    );

    inspector.resume(&q).await.unwrap();
    let resumed_at = Instant::now();
    let first = every_worker_starts(&starts, &q, resumed_at, &[0, 1, 2]).await;
    assert!(
        first - resumed_at < Duration::from_secs(1),
        "{:?}",
        first - resumed_at
    );
    wait_stats(&server, &q, "every job done", |s| s.processed == 33).await;
    for w in workers {
        w.stop().await;
    }
}

/// A pause written by another tool (any value, even not a number) still
/// pauses; a wrong-typed key breaks neither stats nor the workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_with_a_hand_written_value_still_pauses() {
    let server = RedisServer::start();
    let q = unique_queue("handpaused");
    server
        .cli(&["HSET", "jobstream:paused", &q, "by hand"])
        .expect("redis-cli HSET");
    let starts = Starts::default();
    let w = worker(&server, 0, &[&q], &starts);
    enqueue(&server, &q, 1, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(starts.of(&q).is_empty());
    let s = stats(&server, &q).await;
    assert_eq!(
        (s.paused, s.paused_at_ms, s.ready),
        (true, Some(0), 1),
        "{s:?}"
    );
    let inspector = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();
    assert_eq!(inspector.paused().await.unwrap(), vec![(q.clone(), 0)]);
    assert!(inspector.resume(&q).await.unwrap());
    wait_stats(&server, &q, "the job to run", |s| s.processed == 1).await;

    // Someone breaks the key: stats still answer, the worker runs on.
    server.cli(&["DEL", "jobstream:paused"]).unwrap();
    server.cli(&["SET", "jobstream:paused", "oops"]).unwrap();
    let s = stats(&server, &q).await;
    assert!(!s.paused, "{s:?}");
    enqueue(&server, &q, 1, 1).await;
    wait_stats(&server, &q, "the worker to run on", |s| s.processed == 2).await;
    server.cli(&["DEL", "jobstream:paused"]).unwrap();
    // So are a queue's limits and groups keys: stats still answer.
    for key in ["limits", "groups"] {
        server
            .cli(&["SET", &format!("jobstream:{{{q}}}:{key}"), "oops"])
            .unwrap();
    }
    let s = stats(&server, &q).await;
    assert_eq!(
        (s.processed, s.limits.clone(), s.groups),
        (2, None, 0),
        "{s:?}"
    );
    w.stop().await;
}
