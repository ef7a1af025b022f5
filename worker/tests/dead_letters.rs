#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Dead letters end to end: replay keeps the job id and runs the job again,
//! discard deletes, and a worker that lost its lease drops its outcome.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use jobstream_producer::NewJob;
use jobstream_producer::inspect::DeadFilter;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, Worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_dead_job_runs_again_with_its_id_and_fresh_attempts() {
    let server = RedisServer::start();
    let queue = unique_queue("replay");
    let runs = Runs::default();
    let fixed = Arc::new(AtomicBool::new(false));
    let (r, f) = (runs.clone(), fixed.clone());
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .handle("deploy_bug", move |_: u8, job: JobContext| {
                let (r, f) = (r.clone(), f.clone());
                async move {
                    r.record(job.id());
                    assert_eq!(job.attempt(), 1, "replay resets attempts");
                    if f.load(Ordering::SeqCst) {
                        Ok(())
                    } else {
                        Err(JobError::permanent("handler bug"))
                    }
                }
            }),
    );
    let producer = producer(&server).await;
    let job = NewJob::new("deploy_bug", &1u8)
        .unwrap()
        .traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        .field("tenant", "acme")
        .unwrap();
    let id = producer.enqueue_job(&queue, job).await.unwrap();
    producer
        .enqueue_named(&queue, "deploy_bug", &2u8)
        .await
        .unwrap();
    wait_stats(&server, &queue, "2 dead", |s| s.dead == 2).await;
    let inspector = producer.inspector();
    let only_first = DeadFilter::default().ids(vec![id.clone()]);
    let dead = inspector.dead_list(&queue, &only_first).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .fields
            .iter()
            .any(|(k, v)| k == "tenant" && v == "acme")
    );
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(inspector.dead_replay(&queue, &only_first).await.unwrap(), 1);
    assert_eq!(
        inspector.dead_replay(&queue, &only_first).await.unwrap(),
        0,
        "a second replay finds nothing"
    );
    let s = wait_stats(&server, &queue, "replayed job processed", |s| {
        s.processed == 1
    })
    .await;
    assert_eq!(s.dead, 1);
    assert_eq!(runs.count(&id), 2, "same job id on the replayed run");
    assert_eq!(
        inspector
            .dead_discard(&queue, &DeadFilter::default())
            .await
            .unwrap(),
        1
    );
    assert_eq!(stats(&server, &queue).await.dead, 0);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_drops_its_outcome() {
    let server = RedisServer::start();
    let queue = unique_queue("lost");
    let runs = Runs::default();
    let r = runs.clone();
    // A visibility timeout longer than the test, so the thief's claim is
    // not reclaimed back while we look.
    let timings = fast_timings()
        .visibility_timeout(Duration::from_secs(30))
        .lease_refresh(Duration::from_millis(300));
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(timings)
            .handle("slow", move |ms: u64, job: JobContext| {
                let r = r.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    r.record(job.id());
                    Ok(())
                }
            }),
    );
    let id = producer(&server)
        .await
        .enqueue_named(&queue, "slow", &1500u64)
        .await
        .unwrap();
    wait_stats(&server, &queue, "running", |s| s.in_flight == 1).await;
    // Another consumer takes the job over while it runs (as a reclaimer
    // would after a long pause of this worker).
    let ready = format!("jobstream:{{{queue}}}:ready");
    let entry = first_entry_id(&server, &queue);
    server
        .cli(&["XCLAIM", &ready, "workers", "thief", "0", &entry, "JUSTID"])
        .unwrap();
    assert!(jobstream_testkit::wait_until(
        Duration::from_secs(10),
        || runs.count(&id) == 1
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = stats(&server, &queue).await;
    assert_eq!(
        (s.processed, s.in_flight),
        (0, 1),
        "the outcome was dropped; the job stays with its new owner: {s:?}"
    );
    let pending = server
        .cli(&["XPENDING", &ready, "workers", "-", "+", "10"])
        .unwrap();
    assert!(pending.contains("thief"), "{pending}");
    w.stop().await;
}
