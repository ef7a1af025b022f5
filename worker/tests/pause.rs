#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `queue pause|resume`, fleet-wide, against a real server: three workers
//! serving two queues; pausing one stops every worker fetching it within a
//! second while its running jobs finish and the other queue goes on;
//! resume starts it again; the books balance throughout.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::NewJob;
use jobstream_producer::inspect::Inspector;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobResult, Worker};

/// When each job started, by queue.
#[derive(Clone, Default)]
struct Starts(Arc<Mutex<Vec<(String, Instant)>>>);

impl Starts {
    fn of(&self, queue: &str) -> Vec<Instant> {
        let v = self.0.lock().unwrap();
        v.iter()
            .filter(|(q, _)| q == queue)
            .map(|(_, t)| *t)
            .collect()
    }
}

fn worker(server: &RedisServer, queues: &[&str], starts: &Starts) -> Running {
    let mut builder = Worker::builder(&server.url())
        // A long BLOCK: the pause must end a blocked read, not wait it out.
        .timings(fast_timings().block(Duration::from_secs(10)))
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
            .push((job.queue().to_owned(), Instant::now()));
        async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            JobResult::Ok(())
        }
    }))
}

/// Enqueues a job of `ms` milliseconds onto each queue every 20 ms until
/// stopped; returns how many went onto each.
fn feed(
    server: &RedisServer,
    queues: Vec<String>,
    ms: u64,
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
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                _ = &mut stopped => return n,
            }
        }
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_every_worker_within_a_second_and_resume_starts_them_again() {
    let server = RedisServer::start();
    let (paused_q, other_q) = (unique_queue("paused"), unique_queue("other"));
    let starts = Starts::default();
    let workers: Vec<Running> = (0..3)
        .map(|_| worker(&server, &[&paused_q, &other_q], &starts))
        .collect();
    let (stop_feed, fed) = feed(&server, vec![paused_q.clone(), other_q.clone()], 400);
    let inspector = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();

    // Running, with jobs in flight.
    wait_stats(&server, &paused_q, "jobs running", |s| {
        s.processed >= 5 && s.in_flight > 0
    })
    .await;
    assert!(inspector.pause(&paused_q).await.unwrap());
    assert!(!inspector.pause(&paused_q).await.unwrap(), "already paused");
    let paused_at = Instant::now();
    let s = stats(&server, &paused_q).await;
    assert!(s.paused && s.paused_at_ms.is_some(), "{s:?}");
    assert!(!common::stats(&server, &other_q).await.paused);

    // A worker started while the queue is paused fetches nothing from it.
    let late = worker(&server, &[&paused_q], &starts);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after: Vec<Instant> = starts
        .of(&paused_q)
        .into_iter()
        .filter(|t| *t > paused_at + Duration::from_secs(1))
        .collect();
    assert!(
        after.is_empty(),
        "{} jobs of the paused queue started more than 1 s after the pause",
        after.len()
    );
    let last_other = starts.of(&other_q).into_iter().max().unwrap();
    assert!(
        last_other > paused_at + Duration::from_secs(1),
        "the other queue must go on"
    );
    // What was running when the pause came has finished: nothing of the
    // paused queue is in flight, and its backlog grows.
    let s = wait_stats(&server, &paused_q, "running jobs to finish", |s| {
        s.in_flight == 0
    })
    .await;
    assert!(s.ready > 0, "{s:?}");

    // Resume: jobs start again, on the old workers and the late one.
    assert!(inspector.resume(&paused_q).await.unwrap());
    assert!(!inspector.resume(&paused_q).await.unwrap(), "not paused");
    let resumed_at = Instant::now();
    wait_stats(&server, &paused_q, "starts after resume", |s| {
        s.in_flight > 0 || s.processed > 0
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !starts.of(&paused_q).iter().any(|t| *t > resumed_at) {
        assert!(Instant::now() < deadline, "no job started after resume");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = *starts
        .of(&paused_q)
        .iter()
        .filter(|t| **t > resumed_at)
        .min()
        .unwrap();
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

/// A pause written by another tool (any value, even not a number) still
/// pauses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_with_a_hand_written_value_still_pauses() {
    let server = RedisServer::start();
    let q = unique_queue("handpaused");
    server
        .cli(&["HSET", "jobstream:paused", &q, "by hand"])
        .expect("redis-cli HSET");
    let starts = Starts::default();
    let w = worker(&server, &[&q], &starts);
    let producer = producer(&server).await;
    producer
        .enqueue_job(&q, NewJob::new("work", &1u64).unwrap())
        .await
        .unwrap();
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
    w.stop().await;
}
