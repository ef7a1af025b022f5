#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One worker, many queues, against a real server: weighted shares under
//! backlog, strict priority, a capped slow queue beside a fast one, and
//! entry ids that repeat across streams.
//!
//! The parameters (weights, job counts, concurrency) come from a seeded
//! generator (`JOBSTREAM_QUEUES_SEED`), so a run checks the behaviour, not
//! one set of figures.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobResult, Limits, QueueOptions, QueueOrder, Worker};
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    std::env::var("JOBSTREAM_QUEUES_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// The queue of every job, in the order the handlers started.
#[derive(Clone, Default)]
struct Starts(Arc<Mutex<Vec<String>>>);

impl Starts {
    fn push(&self, queue: &str) -> usize {
        let mut v = self.0.lock().unwrap();
        v.push(queue.to_owned());
        v.len()
    }
    fn snapshot(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// How long each job waited from its enqueue (its payload: the enqueue
/// time, unix ms) to its handler's start.
#[derive(Clone, Default)]
struct Pickups(Arc<Mutex<Vec<Duration>>>);

impl Pickups {
    fn handler(
        &self,
    ) -> impl Fn(u64, JobContext) -> std::future::Ready<JobResult> + Send + Sync + 'static {
        let picks = self.0.clone();
        move |sent_ms, _job| {
            let waited = jobstream_core::now_ms().saturating_sub(sent_ms);
            picks.lock().unwrap().push(Duration::from_millis(waited));
            std::future::ready(Ok(()))
        }
    }

    fn assert_all_within(&self, jobs: usize, limit: Duration) {
        let picks = self.0.lock().unwrap().clone();
        assert_eq!(picks.len(), jobs);
        let worst = picks.iter().max().copied().unwrap_or_default();
        assert!(worst < limit, "a job waited {worst:?}: {picks:?}");
    }
}

async fn fill(server: &RedisServer, queue: &str, n: usize) {
    let producer = producer(server).await;
    let jobs = (0..n).map(|i| NewJob::new("work", &i).unwrap()).collect();
    producer.enqueue_many(queue, jobs).await.unwrap();
}

/// Three queues with a backlog each: the jobs started follow the weights
/// within ±10% of each queue's share, and every queue gets some.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_backlog_started_jobs_follow_the_weights() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let weights: Vec<u32> = match rng.random_range(0..3) {
        0 => vec![6, 3, 1],
        1 => vec![1, 1, 1],
        _ => (0..3).map(|_| rng.random_range(1..=8)).collect(),
    };
    let concurrency = rng.random_range(4..=16);
    let total_w: u32 = weights.iter().sum();
    let server = RedisServer::start();
    let queues: Vec<String> = (0..3).map(|i| unique_queue(&format!("w{i}"))).collect();
    // Enough that every queue still has a backlog when counting stops.
    let counted = 1200;
    for q in &queues {
        fill(&server, q, counted + 200).await;
    }
    let starts = Starts::default();
    let mut builder = Worker::builder(&server.url())
        .timings(fast_timings())
        .concurrency(concurrency);
    for (q, w) in queues.iter().zip(&weights) {
        builder = builder.queue_with(q, QueueOptions::new().weight(*w));
    }
    let s = starts.clone();
    let worker = start(builder.handle("work", move |_: u64, job: JobContext| {
        let s = s.clone();
        async move {
            s.push(job.queue());
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok(())
        }
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while starts.snapshot().len() < counted + 100 {
        assert!(
            Instant::now() < deadline,
            "too slow: {}",
            starts.snapshot().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    // The first starts settle the pool; count the next `counted`.
    let seen = starts.snapshot();
    let window = &seen[100..100 + counted];
    for (q, w) in queues.iter().zip(&weights) {
        let got = window.iter().filter(|s| *s == q).count() as f64 / counted as f64;
        let share = f64::from(*w) / f64::from(total_w);
        assert!(
            (got - share).abs() <= share * 0.10,
            "seed {seed}: weights {weights:?}, concurrency {concurrency}: queue with weight {w} got {got:.3} of the starts, expected {share:.3} ± 10%"
        );
    }
}

/// Strict priority: a lower queue's jobs start only once every higher
/// queue is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_strict_order_a_lower_queue_runs_only_when_higher_ones_are_empty() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let concurrency = rng.random_range(2..=12);
    // Reads smaller than the pool too: a higher queue mid-read must still
    // get every freed slot.
    let ack_batch = rng.random_range(1..=concurrency);
    let n: Vec<usize> = (0..3).map(|_| rng.random_range(50..200)).collect();
    let server = RedisServer::start();
    let queues: Vec<String> = (0..3).map(|i| unique_queue(&format!("p{i}"))).collect();
    // The lowest queue is filled first: order of arrival must not matter.
    for i in [2, 1, 0] {
        fill(&server, &queues[i], n[i]).await;
    }
    let started: Arc<Vec<AtomicUsize>> = Arc::new((0..3).map(|_| AtomicUsize::new(0)).collect());
    // For each queue, how many jobs of each higher queue had started when
    // its first job started.
    let seen_at_first: Arc<Mutex<Vec<Option<Vec<usize>>>>> = Arc::new(Mutex::new(vec![None; 3]));
    let mut builder = Worker::builder(&server.url())
        .timings(fast_timings())
        .concurrency(concurrency)
        .limits(Limits::default().ack_batch(ack_batch))
        .queue_order(QueueOrder::Strict);
    for q in &queues {
        builder = builder.queue(q);
    }
    let (st, seen, names) = (started.clone(), seen_at_first.clone(), queues.clone());
    let worker = start(builder.handle("work", move |_: u64, job: JobContext| {
        let (st, seen) = (st.clone(), seen.clone());
        let lane = names.iter().position(|q| q == job.queue()).unwrap();
        async move {
            {
                let mut seen = seen.lock().unwrap();
                if seen[lane].is_none() {
                    seen[lane] = Some(st.iter().map(|c| c.load(Ordering::SeqCst)).collect());
                }
            }
            st[lane].fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(())
        }
    }));
    let deadline = Instant::now() + Duration::from_secs(60);
    while (0..3).any(|i| started[i].load(Ordering::SeqCst) < n[i]) {
        assert!(Instant::now() < deadline, "not all jobs ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    let seen = seen_at_first.lock().unwrap().clone();
    for (lower, at) in seen.iter().enumerate().skip(1) {
        let at = at.clone().unwrap();
        for higher in 0..lower {
            // The last batch of a higher queue may still be starting on its
            // tasks when the lower queue gets the slots it frees.
            assert!(
                at[higher] + concurrency >= n[higher],
                "seed {seed}: queue {lower} started while queue {higher} had {} of {} jobs not started (concurrency {concurrency}, ack_batch {ack_batch})",
                n[higher] - at[higher],
                n[higher]
            );
        }
    }
}

/// A flood of slow jobs on a capped queue never takes the slots of a fast
/// queue: fast jobs are picked up at once, and the slow queue never runs
/// more than its cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capped_slow_queue_never_takes_the_fast_queues_slots() {
    let server = RedisServer::start();
    let reports = unique_queue("reports");
    let emails = unique_queue("emails");
    let cap = 2;
    fill(&server, &reports, 200).await;
    let running_reports = Arc::new(AtomicUsize::new(0));
    let most_reports = Arc::new(AtomicUsize::new(0));
    let pickups = Pickups::default();
    let (run, most, reports_name) = (
        running_reports.clone(),
        most_reports.clone(),
        reports.clone(),
    );
    let worker = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .concurrency(4)
            .queue_with(&reports, QueueOptions::new().max_concurrency(cap))
            .queue(&emails)
            .handle("work", move |_: u64, job: JobContext| {
                let (run, most) = (run.clone(), most.clone());
                let is_report = job.queue() == reports_name;
                async move {
                    if is_report {
                        let now = run.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(400)).await;
                        run.fetch_sub(1, Ordering::SeqCst);
                    }
                    Ok(())
                }
            })
            .handle("email", pickups.handler()),
    );
    // Let the flood take every slot it can.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let producer = producer(&server).await;
    for _ in 0..20 {
        producer
            .enqueue_named(&emails, "email", &jobstream_core::now_ms())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_stats(&server, &emails, "every email processed", |s| {
        s.processed == 20
    })
    .await;
    worker.stop().await;
    // A report takes 400 ms: an email that waited for a report's slot
    // would show it.
    pickups.assert_all_within(20, Duration::from_millis(200));
    assert!(
        most_reports.load(Ordering::SeqCst) <= cap,
        "the capped queue ran {} at once",
        most_reports.load(Ordering::SeqCst)
    );
    assert_eq!(
        most_reports.load(Ordering::SeqCst),
        cap,
        "the flood should use its cap"
    );
}

/// Entry ids repeat across streams: two queues with entries of the same id
/// are both run once and both acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_entry_id_in_two_queues_is_two_jobs() {
    let server = RedisServer::start();
    let a = unique_queue("same-a");
    let b = unique_queue("same-b");
    for q in [&a, &b] {
        for i in 1..=5 {
            let payload = rmp_serde::to_vec(&i).unwrap();
            let key = format!("jobstream:{{{q}}}:ready");
            let id = format!("{i}-1");
            let mut c = redis::Client::open(server.url())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap();
            let _: String = redis::cmd("XADD")
                .arg(&key)
                .arg(&id)
                .arg("type")
                .arg("work")
                .arg("payload")
                .arg(payload)
                .query_async(&mut c)
                .await
                .unwrap();
        }
    }
    let runs = Runs::default();
    let r = runs.clone();
    let worker = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .queue(&a)
            .queue(&b)
            .handle("work", move |_: u64, job: JobContext| {
                let r = r.clone();
                async move {
                    // Slow enough that both copies of an id are in flight
                    // together.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    r.record(&format!("{}/{}", job.queue(), job.entry_id()));
                    Ok(())
                }
            }),
    );
    for q in [&a, &b] {
        wait_stats(&server, q, "all processed", |s| {
            s.processed == 5 && s.in_flight == 0 && s.ready == 0
        })
        .await;
    }
    worker.stop().await;
    assert_eq!(runs.distinct(), 10);
    assert_eq!(runs.total(), 10);
}

#[test]
fn queues_are_checked_by_build() {
    let b = || Worker::builder("redis://127.0.0.1:1").handle("t", |_: u8, _| async { Ok(()) });
    let err = |b: jobstream_worker::WorkerBuilder| {
        b.build().err().map(|e| e.to_string()).unwrap_or_default()
    };
    assert!(err(b().queue("a").queue("a")).contains("added twice"));
    assert!(err(b().queue_with("a", QueueOptions::new().weight(0))).contains("weight"));
    assert!(
        err(b().queue_with("a", QueueOptions::new().max_concurrency(0)))
            .contains("max_concurrency")
    );
    assert!(b().queue("a").queue("b").build().is_ok());
}

/// Two idle queues, no caps: a job arriving on either is picked up at once.
/// An idle queue's blocked read must hold no slot the other one needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_on_an_idle_queue_is_picked_up_at_once_whichever_queue() {
    let server = RedisServer::start();
    let queues = [unique_queue("idle-a"), unique_queue("idle-b")];
    let pickups = Pickups::default();
    let mut timings = fast_timings();
    // A long block: a read holding slots would show as a long wait.
    timings.block = Duration::from_secs(3);
    timings.reclaim_interval = Duration::from_secs(10);
    let worker = start(
        Worker::builder(&server.url())
            .timings(timings)
            .concurrency(4)
            .queue(&queues[0])
            .queue(&queues[1])
            .handle("email", pickups.handler()),
    );
    // Both lanes find their queue empty and block.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let producer = producer(&server).await;
    // Ten jobs on one queue, then ten on the other: whichever lane blocks
    // with the free slots, the other one's jobs must not wait for it.
    for i in 0..20 {
        producer
            .enqueue_named(&queues[i / 10], "email", &jobstream_core::now_ms())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for q in &queues {
        wait_stats(&server, q, "processed", |s| s.processed == 10).await;
    }
    worker.stop().await;
    pickups.assert_all_within(20, Duration::from_millis(200));
}

/// More queues than the pool's 16 dedicated connections: every queue is
/// served (each lane's fetcher holds a connection while it blocks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_more_queues_than_the_connection_pool_had() {
    let server = RedisServer::start();
    let queues: Vec<String> = (0..20).map(|i| unique_queue(&format!("many{i}"))).collect();
    let mut builder = Worker::builder(&server.url())
        .timings(fast_timings())
        .concurrency(4);
    for q in &queues {
        builder = builder.queue(q);
    }
    let worker = start(builder.handle("work", |_: u64, _job: JobContext| async { Ok(()) }));
    for q in &queues {
        fill(&server, q, 3).await;
    }
    for q in &queues {
        wait_stats(&server, q, "processed on every queue", |s| s.processed == 3).await;
    }
    worker.stop().await;
}
