#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Start deadlines: a job not started by its deadline (by the server's
//! clock) is not run; it goes to dead as `expired`, or is discarded and
//! counted as `expired`. The books still balance.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use jobstream_producer::NewJob;
use jobstream_producer::inspect::DeadFilter;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, Worker};

fn counting(
    runs: Arc<AtomicU32>,
) -> impl Fn(u32, JobContext) -> std::future::Ready<jobstream_worker::JobResult> + Send + Sync + 'static
{
    move |_, _| {
        runs.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_past_its_start_deadline_is_not_run() {
    let server = RedisServer::start();
    let queue = unique_queue("deadline");
    let producer = producer(&server).await;
    // Enqueued while no worker runs: two expire, one does not.
    let late = NewJob::new("work", &1u32)
        .unwrap()
        .start_within(Duration::from_millis(100));
    let late_id = producer.enqueue_job(&queue, late).await.unwrap();
    let dropped = NewJob::new("work", &2u32)
        .unwrap()
        .start_within(Duration::from_millis(100))
        .discard_after_deadline();
    producer.enqueue_job(&queue, dropped).await.unwrap();
    let in_time = NewJob::new("work", &3u32)
        .unwrap()
        .start_within(Duration::from_secs(60));
    producer.enqueue_job(&queue, in_time).await.unwrap();
    // A delayed job's window starts when it is due.
    let delayed = NewJob::new("work", &4u32)
        .unwrap()
        .delay(Duration::from_millis(300))
        .start_within(Duration::from_secs(60));
    producer.enqueue_job(&queue, delayed).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;

    let runs = Arc::new(AtomicU32::new(0));
    let worker = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .queue(&queue)
            .handle("work", counting(runs.clone())),
    );
    let s = wait_stats(&server, &queue, "2 run, 1 dead, 1 expired", |s| {
        s.processed == 2 && s.dead == 1 && s.expired == 1
    })
    .await;
    worker.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 2, "{s:?}");
    let dead = producer
        .inspector()
        .dead_list(&queue, &DeadFilter::default())
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "expired");
    assert_eq!(dead[0].job_id, late_id);
    let books = store(&server, &queue).books().await.unwrap();
    assert!(books.balances(), "{books:?}");
}

/// A producer in another language sets `deadline_ms` itself; the worker
/// judges it by the server's clock. A bad `on_deadline` is malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadline_fields_written_by_hand() {
    let server = RedisServer::start();
    let queue = unique_queue("deadline-raw");
    let key = format!("jobstream:{{{queue}}}:ready");
    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (secs, _micros): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
    let now_ms = secs * 1000;
    let payload = rmp_serde::to_vec(&7u32).unwrap();
    for (deadline, on) in [
        (now_ms - 5_000, "dead"),
        (now_ms - 5_000, "discard"),
        (now_ms + 60_000, "dead"),
        (now_ms + 60_000, "later"),
    ] {
        let _: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("type")
            .arg("work")
            .arg("payload")
            .arg(&payload)
            .arg("deadline_ms")
            .arg(deadline.to_string())
            .arg("on_deadline")
            .arg(on)
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let runs = Arc::new(AtomicU32::new(0));
    let worker = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .queue(&queue)
            .handle("work", counting(runs.clone())),
    );
    wait_stats(&server, &queue, "1 run, 1 expired, 2 dead", |s| {
        s.processed == 1 && s.expired == 1 && s.dead == 2
    })
    .await;
    worker.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let dead = producer(&server)
        .await
        .inspector()
        .dead_list(&queue, &DeadFilter::default())
        .await
        .unwrap();
    let mut reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons, ["expired", "malformed"]);
}
