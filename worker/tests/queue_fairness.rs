#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! How queues share a worker, under the conditions a red-team review of the
//! first version found wanting: a busy worker must not hold jobs other
//! workers could run, a queue back from idle must not be starved by one
//! that ran alone, idle queues must not fetch more than there are slots,
//! and shutdown stays bounded with many queues and a frozen Redis.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, QueueOrder, Worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_worker_claims_no_job_it_has_no_slot_for() {
    let server = RedisServer::start();
    let high = unique_queue("high");
    let low = unique_queue("low");
    // (worker, ms from enqueue to start) of the low job
    let low_run: Arc<Mutex<Option<(&'static str, u64)>>> = Arc::default();
    let low_handler = |tag: &'static str, rec: Arc<Mutex<Option<(&'static str, u64)>>>| {
        move |sent_ms: u64, _job: JobContext| {
            let rec = rec.clone();
            async move {
                let waited = jobstream_core::now_ms().saturating_sub(sent_ms);
                rec.lock().unwrap().get_or_insert((tag, waited));
                Ok(())
            }
        }
    };
    // W1: strict [high, low], one slot; both queues empty, so both lanes go idle.
    let w1 = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .concurrency(1)
            .queue_order(QueueOrder::Strict)
            .queue(&high)
            .queue(&low)
            .handle("slow", |_: u64, _job: JobContext| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(())
            })
            .handle("low", low_handler("w1", low_run.clone())),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let producer = producer(&server).await;
    // A backlog on high: 10 x 300 ms.
    for i in 0..10u64 {
        producer.enqueue_named(&high, "slow", &i).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    producer
        .enqueue_named(&low, "low", &jobstream_core::now_ms())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // W2 serves only low and is idle.
    let w2 = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .concurrency(4)
            .queue(&low)
            .handle("low", low_handler("w2", low_run.clone())),
    );
    while low_run.lock().unwrap().is_none() {
        assert!(sent.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = low_run.lock().unwrap().unwrap();
    w2.stop().await;
    w1.stop().await;
    assert!(
        got.1 < 1000,
        "the low job waited {} ms and ran on {} while w2 sat idle",
        got.1,
        got.0
    );
}

/// Queue A runs a backlog alone, drains; then B gets a backlog, then A gets
/// one too: with equal weights A must start at once, not after B caught up
/// with all A ran alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_ran_alone_is_not_starved_when_another_comes_back() {
    use jobstream_producer::NewJob;
    let server = RedisServer::start();
    let a = unique_queue("a");
    let b = unique_queue("b");
    let starts: Arc<Mutex<Vec<bool>>> = Arc::default(); // true = queue a
    let (st, a_name) = (starts.clone(), a.clone());
    let w = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .concurrency(2)
            .queue(&a)
            .queue(&b)
            .handle("work", move |ms: u64, job: JobContext| {
                st.lock().unwrap().push(job.queue() == a_name);
                async move {
                    if ms > 0 {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    Ok(())
                }
            }),
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // both lanes idle
    let producer = producer(&server).await;
    let jobs = |n: usize, ms: u64| (0..n).map(|_| NewJob::new("work", &ms).unwrap()).collect();
    // Phase 1: A alone, 3000 quick jobs.
    producer.enqueue_many(&a, jobs(3000, 0)).await.unwrap();
    wait_stats(&server, &a, "phase 1 done", |s| s.processed == 3000).await;
    tokio::time::sleep(Duration::from_millis(600)).await; // A idle
    let before = starts.lock().unwrap().len();
    // Phase 2: B first (500 x 2 ms, ~0.5 s on 2 slots), then A.
    producer.enqueue_many(&b, jobs(500, 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    producer.enqueue_many(&a, jobs(100, 2)).await.unwrap();
    // Counted once A's jobs are in Redis: B runs ~1 job/ms on 2 slots, so
    // counting before the enqueue charged its round trip to the scheduler.
    let b_started_when_a_enqueued = starts.lock().unwrap()[before..].len();
    wait_stats(&server, &a, "phase 2 done", |s| s.processed == 3100).await;
    w.stop().await;
    let phase2 = starts.lock().unwrap()[before..].to_vec();
    let first_a = phase2.iter().position(|&is_a| is_a).unwrap();
    let b_before_first_a = first_a.saturating_sub(b_started_when_a_enqueued);
    // The bug this guards against made A wait for all of B's backlog (A had
    // "used" 3000 jobs alone). A fair scheduler starts A within a blocked
    // read's wake-up, a few dozen of B's 2 ms jobs on a loaded machine; the
    // bound is a quarter of what B had left, far from starvation either way.
    let b_left = 500 - b_started_when_a_enqueued.min(500);
    assert!(
        b_left >= 200,
        "B drained too fast to tell ({b_started_when_a_enqueued} of 500 started before A arrived)"
    );
    assert!(
        b_before_first_a < b_left / 4,
        "equal weights, both backlogged: {b_before_first_a} jobs of B started after A's backlog arrived and before A's first job \
         (B had {b_left} of 500 left when A's jobs arrived)"
    );
    // Once both are backlogged, equal weights share the slots: of the next
    // 60 starts, A (100 queued) gets a fair part, not a trickle.
    let next: Vec<bool> = phase2[first_a..].iter().take(60).copied().collect();
    let a_share = next.iter().filter(|&&is_a| is_a).count();
    assert!(
        a_share >= 20,
        "equal weights: A got {a_share} of the 60 starts after its first"
    );
}

/// Shutdown with 100 queues and Redis frozen (SIGSTOP) ends within
/// `shutdown_grace + shutdown_flush`: the blocked reads are unblocked all
/// at once, not one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_many_queues_and_a_frozen_redis_is_bounded() {
    let server = RedisServer::start();
    let grace = Duration::from_secs(1);
    let flush = Duration::from_millis(500);
    let mut builder = Worker::builder(&server.url())
        .timings(fast_timings().shutdown_grace(grace).shutdown_flush(flush))
        .concurrency(4)
        .handle("t", |_: u64, _job: JobContext| async { Ok(()) });
    let n: usize = 100;
    for i in 0..n {
        builder = builder.queue(&unique_queue(&format!("q{i}")));
    }
    let w = start(builder);
    tokio::time::sleep(Duration::from_secs(2)).await; // every lane connected and blocked
    server.pause();
    let began = Instant::now();
    w.handle.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(60), w.task).await;
    let took = began.elapsed();
    server.resume();
    let _ = result.expect("shutdown hung");
    assert!(
        took <= grace + flush + Duration::from_millis(300),
        "shutdown took {took:?}, bound is grace {grace:?} + flush {flush:?}"
    );
}

/// A worker with 4 slots over 20 idle queues takes about as many jobs as it
/// can run (idle queues share the spare slots), not one or more per queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_queues_fetch_no_more_than_the_spare_slots() {
    let server = RedisServer::start();
    let queues: Vec<String> = (0..20).map(|i| unique_queue(&format!("o{i}"))).collect();
    let mut builder = Worker::builder(&server.url())
        .timings(fast_timings().reclaim_interval(Duration::from_secs(5)))
        .concurrency(4)
        .handle("slow", |_: u64, _job: JobContext| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(())
        });
    for q in &queues {
        builder = builder.queue(q);
    }
    let w = start(builder);
    tokio::time::sleep(Duration::from_millis(800)).await; // every lane idle
    let producer = producer(&server).await;
    for q in &queues {
        for i in 0..4u64 {
            producer.enqueue_named(q, "slow", &i).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut held = 0;
    for q in &queues {
        held += stats(&server, q).await.in_flight;
    }
    w.stop().await;
    assert!(
        held <= 8,
        "4 slots, but {held} jobs are pending on this worker"
    );
}
