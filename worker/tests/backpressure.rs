#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Load shedding under a real worker: a producer outpaces a worker on a
//! queue with `max_ready` and policy `shed` (to dead). The books balance at
//! every check, no job a worker fetched is shed, and every job either ran
//! or is in dead with reason `shed`, never both and never neither.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use jobstream_core::{BooksStatus, OverflowPolicy, QueueLimits};
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobOptions, Worker};

const JOBS: u64 = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shedding_under_a_running_worker_loses_nothing_and_keeps_the_books() {
    let server = RedisServer::start();
    let queue = unique_queue("bp-worker");
    let s = store(&server, &queue);
    s.set_limits(
        &QueueLimits::default()
            .max_ready(10)
            .policy(OverflowPolicy::Shed)
            .shed_to_dead(true),
    )
    .await
    .unwrap();
    let runs = Runs::default();
    let r = runs.clone();
    let worker = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .concurrency(2)
            .timings(fast_timings())
            .handle_with(
                "job",
                JobOptions::default().timeout(Duration::from_secs(5)),
                move |_: u64, job: JobContext| {
                    let r = r.clone();
                    async move {
                        r.record(job.id());
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        Ok::<(), jobstream_worker::JobError>(())
                    }
                },
            ),
    );
    let p = producer(&server).await;
    let mut ids = Vec::new();
    for i in 0..JOBS {
        if i % 4 == 3 {
            let batch = (0..3)
                .map(|k| NewJob::new("job", &(i * 10 + k)).unwrap())
                .collect();
            ids.extend(p.enqueue_many(&queue, batch).await.unwrap());
        } else {
            ids.push(p.enqueue_named(&queue, "job", &i).await.unwrap());
        }
        if i % 20 == 0 {
            let b = s.books().await.unwrap();
            assert_eq!(b.status, BooksStatus::Ok, "{b:?}");
        }
    }
    let total = ids.len() as u64;
    let st = wait_stats(&server, &queue, "drained", |st| {
        st.ready == 0 && st.in_flight == 0 && st.processed + st.shed == total
    })
    .await;
    worker.stop().await;
    assert!(
        st.shed > 0,
        "the producer never outpaced the worker: {st:?}"
    );
    assert_eq!(st.dead_total, st.shed, "{st:?}");
    let b = s.books().await.unwrap();
    assert_eq!(b.status, BooksStatus::Ok, "{b:?}");

    let dead: Vec<String> = s
        .dead_entries("-", 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let get = |k: &[u8]| {
                e.fields
                    .iter()
                    .find(|(f, _)| f.as_slice() == k)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            assert_eq!(get(b"reason"), "shed");
            get(b"id")
        })
        .collect();
    let dead: HashSet<String> = dead.into_iter().collect();
    assert_eq!(dead.len() as u64, st.shed);
    for id in &ids {
        let ran = runs.count(id);
        assert!(ran <= 1, "{id} ran {ran} times");
        assert!(
            (ran == 1) != dead.contains(id),
            "{id}: ran {ran}, shed {}",
            dead.contains(id)
        );
    }
}
