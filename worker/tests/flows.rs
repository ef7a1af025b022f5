#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Chains and batches against a real server: each step starts only after
//! the previous one succeeded and gets its result; a failed step ends the
//! chain; a batch's completion job runs once, after every member ended,
//! with the summary; a member enqueued twice counts once.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use jobstream_producer::{Batch, Chain, NewJob};
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, RetryPolicy, Worker, WorkerBuilder};
use tokio::sync::mpsc;

fn worker(server: &RedisServer, queue: &str) -> WorkerBuilder {
    Worker::builder(&server.url())
        .queue(queue)
        .timings(fast_timings())
        .concurrency(4)
}

fn step(queue: &str, job_type: &str, n: u64) -> NewJob {
    NewJob::new(job_type, &n).unwrap().queue(queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_runs_its_steps_in_order_each_with_the_previous_result() {
    let server = RedisServer::start();
    let queue = unique_queue("chain");
    let p = producer(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Option<u64>)>();
    let flaky = Arc::new(AtomicU32::new(0));
    let f = Arc::clone(&flaky);
    let w = start(worker(&server, &queue).handle_with(
        "add",
        JobOptions::new().retry(RetryPolicy::exponential(
            3,
            Duration::from_millis(10),
            Duration::from_millis(20),
        )),
        move |n: u64, ctx: JobContext| {
            let (tx, f) = (tx.clone(), Arc::clone(&f));
            async move {
                // The second step fails once: the chain waits for it.
                if n == 2 && f.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(JobError::retry("flaky"));
                }
                let prev: Option<u64> = ctx.previous_result()?;
                tx.send((n, prev)).unwrap();
                Ok(prev.unwrap_or(0) + n)
            }
        },
    ));
    let chain = (2..=5).fold(Chain::new(step(&queue, "add", 1)), |c, n| {
        c.then(step(&queue, "add", n))
    });
    let ids = p.enqueue_chain(chain).await.unwrap();
    assert_eq!(ids.len(), 5);
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(
            tokio::time::timeout(Duration::from_secs(10), rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(
        seen,
        vec![
            (1, None),
            (2, Some(1)),
            (3, Some(3)),
            (4, Some(6)),
            (5, Some(10))
        ]
    );
    let s = wait_stats(&server, &queue, "settled", |s| s.processed == 5).await;
    assert_eq!((s.ready, s.in_flight, s.retried), (0, 0, 1));
    w.stop().await;
    let books = store(&server, &queue).books().await.unwrap();
    assert_eq!(books.difference, Some(0), "{books:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_ends_the_chain() {
    let server = RedisServer::start();
    let queue = unique_queue("chain-stop");
    let p = producer(&server).await;
    let runs = Runs::default();
    let r = runs.clone();
    let w = start(
        worker(&server, &queue).handle("s", move |n: u64, _ctx: JobContext| {
            let r = r.clone();
            async move {
                r.record(&n.to_string());
                if n == 2 {
                    return Err(JobError::permanent("step two refuses"));
                }
                Ok(())
            }
        }),
    );
    let chain = Chain::new(step(&queue, "s", 1))
        .then(step(&queue, "s", 2))
        .then(step(&queue, "s", 3));
    p.enqueue_chain(chain).await.unwrap();
    wait_stats(&server, &queue, "dead", |s| s.dead == 1 && s.processed == 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        (runs.count("1"), runs.count("2"), runs.count("3")),
        (1, 1, 0)
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_completes_once_after_every_member_with_a_summary() {
    let server = RedisServer::start();
    let queue = unique_queue("batch");
    let p = producer(&server).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, u64, u64, usize)>();
    let w = start(
        worker(&server, &queue)
            .handle("member", |n: u64, _ctx: JobContext| async move {
                tokio::time::sleep(Duration::from_millis(n % 7 * 5)).await;
                if n % 10 == 3 {
                    return Err(JobError::permanent("a member that fails"));
                }
                Ok(())
            })
            .handle("done", move |_: (), ctx: JobContext| {
                let tx = tx.clone();
                async move {
                    let b = ctx.batch().await?.expect("the batch summary");
                    tx.send((b.total, b.succeeded, b.failed, b.failed_ids.len()))
                        .unwrap();
                    Ok(())
                }
            }),
    );
    let members: Vec<NewJob> = (0..40).map(|n| step(&queue, "member", n)).collect();
    // One member enqueued twice (same id): it still counts once.
    let twice = members[5].clone();
    let batch = Batch::new(&queue, NewJob::new("done", &()).unwrap()).members(members);
    p.enqueue_batch(batch).await.unwrap();
    p.enqueue_job(&queue, twice).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, (40, 36, 4, 4));
    wait_stats(&server, &queue, "all settled", |s| {
        s.ready == 0 && s.in_flight == 0 && s.scheduled == 0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "the completion job ran once");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_batch_completes_at_once() {
    let server = RedisServer::start();
    let queue = unique_queue("batch-empty");
    let p = producer(&server).await;
    let runs = Arc::new(AtomicU32::new(0));
    let r = Arc::clone(&runs);
    let w = start(
        worker(&server, &queue).handle("done", move |_: (), ctx: JobContext| {
            let r = Arc::clone(&r);
            async move {
                assert!(
                    ctx.batch().await?.is_none(),
                    "an empty batch has no summary"
                );
                r.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        }),
    );
    p.enqueue_batch(Batch::new(&queue, NewJob::new("done", &()).unwrap()))
        .await
        .unwrap();
    wait_stats(&server, &queue, "done", |s| s.processed == 1).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    w.stop().await;
}

/// A member whose workers keep dying is dead-lettered as `abandoned` by the
/// reclaimer (reclaim-3); its batch still counts it and its record says
/// dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_member_still_completes_its_batch() {
    use jobstream_producer::JobState;
    let server = RedisServer::start();
    let queue = unique_queue("batch-abandoned");
    let p = producer(&server).await;
    let member = step(&queue, "member", 1).keep_record(Duration::from_secs(600));
    let member_id = member.id().to_owned();
    let batch = Batch::new(&queue, NewJob::new("done", &()).unwrap()).member(member);
    p.enqueue_batch(batch).await.unwrap();
    // A worker that took the job and died, again and again: delivered five
    // times, idle for a minute.
    assert_eq!(abandon_to_ghost(&server, &queue, 5).len(), 1);
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, u64)>();
    let w = start(
        worker(&server, &queue)
            .limits(jobstream_worker::Limits::default().max_deliveries(3))
            .handle("member", |_: u64, _ctx: JobContext| async { Ok(()) })
            .handle("done", move |_: (), ctx: JobContext| {
                let tx = tx.clone();
                async move {
                    let b = ctx.batch().await?.unwrap();
                    tx.send((b.succeeded, b.failed)).unwrap();
                    Ok(())
                }
            }),
    );
    let got = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, (0, 1), "the abandoned member counts as failed");
    let rec = p.job(&queue, &member_id).await.unwrap().unwrap();
    assert_eq!(rec.state, JobState::Dead);
    assert_eq!(rec.last_error_class.as_deref(), Some("abandoned"));
    w.stop().await;
}

/// A member cancelled before it ran still counts: the batch completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_member_counts_and_the_batch_completes() {
    let server = RedisServer::start();
    let queue = unique_queue("batch-cancel");
    let p = producer(&server).await;
    let members: Vec<NewJob> = (0..3)
        .map(|n| step(&queue, "member", n).keep_record(Duration::from_secs(60)))
        .collect();
    let doomed = members[1].id().to_owned();
    let batch = Batch::new(&queue, NewJob::new("done", &()).unwrap()).members(members);
    p.enqueue_batch(batch).await.unwrap();
    assert_eq!(
        p.cancel(&queue, &doomed).await.unwrap(),
        jobstream_producer::CancelOutcome::Cancelled
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, u64, Vec<String>)>();
    let w = start(
        worker(&server, &queue)
            .handle("member", |_: u64, _ctx: JobContext| async { Ok(()) })
            .handle("done", move |_: (), ctx: JobContext| {
                let tx = tx.clone();
                async move {
                    let b = ctx.batch().await?.unwrap();
                    tx.send((b.succeeded, b.failed, b.failed_ids)).unwrap();
                    Ok(())
                }
            }),
    );
    let got = tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, (2, 1, vec![doomed]));
    // `stats` is read in several round trips, not one snapshot: a read
    // can see the completion job settled in `ready` but not yet counted
    // (seen once in CI). Wait for the count, then check both exactly.
    let s = wait_stats(&server, &queue, "settled", |s| {
        s.in_flight == 0 && s.ready == 0 && s.processed >= 3
    })
    .await;
    assert_eq!((s.cancelled, s.processed), (1, 3));
    w.stop().await;
}

/// A batch with one id twice could never complete: it is refused, and so
/// is a member with a uniqueness key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_repeated_member_id_is_refused() {
    let server = RedisServer::start();
    let queue = unique_queue("batch-dup");
    let p = producer(&server).await;
    let m = step(&queue, "member", 1);
    let batch = Batch::new(&queue, NewJob::new("done", &()).unwrap())
        .member(m.clone())
        .member(m);
    let e = p.enqueue_batch(batch).await.unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    let unique = step(&queue, "member", 2)
        .unique("k", jobstream_producer::Uniqueness::UntilDone)
        .unwrap();
    let batch = Batch::new(&queue, NewJob::new("done", &()).unwrap()).member(unique);
    assert!(p.enqueue_batch(batch).await.is_err());
    assert_eq!(stats(&server, &queue).await.ready, 0, "nothing enqueued");
}
