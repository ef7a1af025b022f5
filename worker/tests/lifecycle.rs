#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The job lifecycle against a real server: unique jobs (racing
//! producers, each release mode), job records through retries and dead
//! letters, results and waiting, progress, and cancellation of scheduled,
//! ready and running jobs.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::*;
use jobstream_producer::{CancelOutcome, Error, JobState, NewJob, Producer, Uniqueness};
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, RetryPolicy, Worker, WorkerBuilder};
use tokio::sync::Notify;

const KEEP: Duration = Duration::from_secs(600);

fn worker(server: &RedisServer, queue: &str) -> WorkerBuilder {
    Worker::builder(&server.url())
        .queue(queue)
        .timings(fast_timings())
        .concurrency(4)
}

/// A retry policy with no wait to speak of.
fn quick_retries(n: u32) -> JobOptions {
    JobOptions::new().retry(RetryPolicy::exponential(
        n,
        Duration::from_millis(10),
        Duration::from_millis(20),
    ))
}

fn job_on(queue: &str, n: u64) -> NewJob {
    NewJob::new("work", &n).unwrap().queue(queue)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_producers_racing_on_one_key_enqueue_exactly_one_job() {
    let server = RedisServer::start();
    for round in 0..5 {
        let queue = unique_queue("race");
        let mut tasks = Vec::new();
        for p in 0..8u64 {
            let url = server.url();
            let queue = queue.clone();
            tasks.push(tokio::spawn(async move {
                // Each its own producer and connection, as separate processes.
                let producer = Producer::connect(&url).await.unwrap();
                let job = job_on(&queue, p)
                    .unique("invoice-7", Uniqueness::UntilDone)
                    .unwrap();
                let mine = job.id().to_owned();
                (mine, producer.push(job).await.unwrap())
            }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap());
        }
        let winners: Vec<_> = got.iter().filter(|(mine, id)| mine == id).collect();
        assert_eq!(winners.len(), 1, "round {round}: {got:?}");
        let holder = &winners[0].0;
        assert!(
            got.iter().all(|(_, id)| id == holder),
            "everyone gets the holder's id"
        );
        let s = stats(&server, &queue).await;
        assert_eq!((s.ready, s.duplicates), (1, 7), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_done_holds_the_key_through_retries_and_releases_it_when_final() {
    let server = RedisServer::start();
    let queue = unique_queue("until-done");
    let p = producer(&server).await;
    let gate = Arc::new(Notify::new());
    let runs = Arc::new(AtomicU32::new(0));
    let (g, r) = (Arc::clone(&gate), Arc::clone(&runs));
    let w = start(worker(&server, &queue).handle_with(
        "work",
        quick_retries(2),
        move |_: u64, _ctx: JobContext| {
            let (g, r) = (Arc::clone(&g), Arc::clone(&r));
            async move {
                // The first attempt fails; the second waits for the test.
                if r.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(JobError::retry("first attempt fails"));
                }
                g.notified().await;
                Ok(())
            }
        },
    ));
    let unique = |n| {
        job_on(&queue, n)
            .unique("k", Uniqueness::UntilDone)
            .unwrap()
    };
    let first = p.push(unique(1)).await.unwrap();
    // Through its failed attempt and its retry the key stays held.
    tokio::time::timeout(Duration::from_secs(10), async {
        while runs.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(
        p.push(unique(2)).await.unwrap(),
        first,
        "held while running"
    );
    gate.notify_one();
    wait_stats(&server, &queue, "done", |s| s.processed == 1).await;
    let second = p.push(unique(3)).await.unwrap();
    assert_ne!(second, first, "released when the job completed");
    gate.notify_one();
    wait_stats(&server, &queue, "second done", |s| s.processed == 2).await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_releases_its_key_and_while_queued_releases_at_start() {
    let server = RedisServer::start();
    let queue = unique_queue("release");
    let p = producer(&server).await;
    let gate = Arc::new(Notify::new());
    let started = Arc::new(AtomicU32::new(0));
    let (g, st) = (Arc::clone(&gate), Arc::clone(&started));
    // One slot: a second `hold` job stays queued while the first runs.
    let w = start(
        worker(&server, &queue)
            .concurrency(1)
            .handle("fail", |_: u64, _ctx: JobContext| async {
                Err::<(), _>(JobError::permanent("no"))
            })
            .handle("hold", move |_: u64, _ctx: JobContext| {
                let (g, st) = (Arc::clone(&g), Arc::clone(&st));
                async move {
                    st.fetch_add(1, Ordering::SeqCst);
                    g.notified().await;
                    Ok(())
                }
            }),
    );
    let dying = NewJob::new("fail", &1u64)
        .unwrap()
        .queue(&queue)
        .unique("d", Uniqueness::UntilDone)
        .unwrap();
    let id = p.push(dying).await.unwrap();
    wait_stats(&server, &queue, "dead", |s| s.dead == 1).await;
    let again = NewJob::new("fail", &2u64)
        .unwrap()
        .queue(&queue)
        .unique("d", Uniqueness::UntilDone)
        .unwrap();
    assert_ne!(p.push(again).await.unwrap(), id, "released at dead");
    wait_stats(&server, &queue, "dead again", |s| s.dead == 2).await;

    let holding = |n: u64| {
        NewJob::new("hold", &n)
            .unwrap()
            .queue(&queue)
            .unique("q", Uniqueness::WhileQueued)
            .unwrap()
    };
    let running = p.push(holding(1)).await.unwrap();
    // Its handler runs only after start-3 released the key.
    tokio::time::timeout(Duration::from_secs(10), async {
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    let queued = p.push(holding(2)).await.unwrap();
    assert_ne!(queued, running, "released when it started");
    assert_eq!(
        p.push(holding(3)).await.unwrap(),
        queued,
        "held while queued"
    );
    gate.notify_waiters();
    gate.notify_one();
    wait_stats(&server, &queue, "both ran", |s| {
        gate.notify_one();
        s.processed == 2
    })
    .await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_key_expires_on_its_own() {
    let server = RedisServer::start();
    let queue = unique_queue("ttl");
    let p = producer(&server).await;
    let job = |n| {
        job_on(&queue, n)
            .unique("t", Uniqueness::For(Duration::from_millis(400)))
            .unwrap()
    };
    let a = p.push(job(1)).await.unwrap();
    assert_eq!(p.push(job(2)).await.unwrap(), a);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_ne!(p.push(job(3)).await.unwrap(), a, "the key expired");
    assert_eq!(stats(&server, &queue).await.ready, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_follows_a_retry_to_completion_with_the_result() {
    let server = RedisServer::start();
    let queue = unique_queue("record");
    let p = producer(&server).await;
    let tries = Arc::new(AtomicU32::new(0));
    let t = Arc::clone(&tries);
    let w = start(worker(&server, &queue).handle_with(
        "work",
        quick_retries(3),
        move |n: u64, ctx: JobContext| {
            let t = Arc::clone(&t);
            async move {
                if t.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(JobError::retry("flaky upstream"));
                }
                ctx.progress(100, "done").await;
                Ok(format!("receipt-{n}"))
            }
        },
    ));
    let id = p.push(job_on(&queue, 42).keep_record(KEEP)).await.unwrap();
    let rec = p
        .wait_for(&queue, &id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(rec.state, JobState::Completed);
    assert_eq!(rec.attempt, 2);
    assert_eq!(
        rec.result::<String>().unwrap().as_deref(),
        Some("receipt-42")
    );
    assert_eq!(rec.last_error.as_deref(), Some("flaky upstream"));
    assert_eq!(rec.progress, Some(100));
    assert!(rec.finished_at_ms >= rec.started_at_ms && rec.started_at_ms >= rec.enqueued_at_ms);
    // Kept for its keep time, not forever.
    let ttl: i64 = server
        .cli(&["PTTL", &format!("jobstream:{{{queue}}}:job:{id}")])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= KEEP.as_millis() as i64, "ttl {ttl}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_job_is_final_in_its_record_with_its_error() {
    let server = RedisServer::start();
    let queue = unique_queue("record-dead");
    let p = producer(&server).await;
    let w = start(worker(&server, &queue).handle_with(
        "work",
        quick_retries(2),
        |_: u64, _ctx: JobContext| async { Err::<(), _>(JobError::retry("always fails")) },
    ));
    let id = p.push(job_on(&queue, 1).keep_record(KEEP)).await.unwrap();
    let rec = p
        .wait_for(&queue, &id, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(rec.state, JobState::Dead);
    assert_eq!(rec.attempt, 2);
    assert_eq!(rec.last_error.as_deref(), Some("always fails"));
    let s = stats(&server, &queue).await;
    assert_eq!((s.dead, s.retried), (1, 1));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_times_out_and_a_job_without_record_is_not_found() {
    let server = RedisServer::start();
    let queue = unique_queue("wait");
    let p = producer(&server).await;
    let id = p.push(job_on(&queue, 1).keep_record(KEEP)).await.unwrap();
    let started = std::time::Instant::now();
    let e = p
        .wait_for(&queue, &id, Duration::from_millis(700))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::WaitTimeout { .. }), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(
        p.job(&queue, &id).await.unwrap().unwrap().state,
        JobState::Ready
    );
    let plain = p.push(job_on(&queue, 2)).await.unwrap();
    let e = p
        .wait_for(&queue, &plain, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoRecord { .. }), "{e}");
    assert!(p.job(&queue, &plain).await.unwrap().is_none());
    assert_eq!(
        p.cancel(&queue, &plain).await.unwrap(),
        CancelOutcome::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_ready_and_scheduled_jobs_never_run() {
    let server = RedisServer::start();
    let queue = unique_queue("cancel-queued");
    let p = producer(&server).await;
    let ready = p.push(job_on(&queue, 1).keep_record(KEEP)).await.unwrap();
    let later = p
        .push(
            job_on(&queue, 2)
                .keep_record(KEEP)
                .delay(Duration::from_millis(300))
                .unique("later", Uniqueness::UntilDone)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        p.cancel(&queue, &ready).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        p.cancel(&queue, &later).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        p.cancel(&queue, &ready).await.unwrap(),
        CancelOutcome::AlreadyFinal
    );
    // A waiter learns at once.
    let rec = p
        .wait_for(&queue, &later, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(rec.state, JobState::Cancelled);
    // Its key is free again.
    let other = job_on(&queue, 3)
        .unique("later", Uniqueness::UntilDone)
        .unwrap();
    assert_ne!(p.push(other).await.unwrap(), later);
    let runs = Runs::default();
    let r = runs.clone();
    let w = start(
        worker(&server, &queue).handle("work", move |n: u64, _ctx: JobContext| {
            let r = r.clone();
            async move {
                r.record(&n.to_string());
                Ok(())
            }
        }),
    );
    let s = wait_stats(&server, &queue, "all settled", |s| {
        s.cancelled == 2 && s.processed == 1 && s.scheduled == 0 && s.in_flight == 0
    })
    .await;
    assert_eq!(s.ready, 0);
    assert_eq!(
        (runs.count("1"), runs.count("2"), runs.count("3")),
        (0, 0, 1)
    );
    w.stop().await;
    let books = store(&server, &queue).books().await.unwrap();
    assert_eq!(books.difference, Some(0), "{books:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_job_sees_cancellation_within_about_a_second() {
    let server = RedisServer::start();
    let queue = unique_queue("cancel-running");
    let p = producer(&server).await;
    let w = start(
        worker(&server, &queue).handle("work", |_: u64, ctx: JobContext| async move {
            ctx.progress(10, "working").await;
            tokio::select! {
                _ = ctx.cancelled() => Err(JobError::cancelled()),
                _ = tokio::time::sleep(Duration::from_secs(60)) => Ok(()),
            }
        }),
    );
    let id = p.push(job_on(&queue, 1).keep_record(KEEP)).await.unwrap();
    // Active, with its progress visible.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rec = p.job(&queue, &id).await.unwrap().unwrap();
        if rec.state == JobState::Active && rec.progress == Some(10) {
            assert_eq!(rec.progress_message.as_deref(), Some("working"));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{rec:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let asked = std::time::Instant::now();
    assert_eq!(
        p.cancel(&queue, &id).await.unwrap(),
        CancelOutcome::Requested
    );
    let rec = p
        .wait_for(&queue, &id, Duration::from_secs(10))
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(rec.state, JobState::Cancelled);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(stats(&server, &queue).await.cancelled, 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_id_is_enqueued_once_and_cancel_wins_over_a_deadline() {
    let server = RedisServer::start();
    let queue = unique_queue("record-once");
    let p = producer(&server).await;
    let job = job_on(&queue, 1)
        .keep_record(KEEP)
        .with_id("order-7-receipt")
        .unwrap();
    assert_eq!(p.push(job.clone()).await.unwrap(), "order-7-receipt");
    assert_eq!(p.push(job).await.unwrap(), "order-7-receipt");
    assert_eq!(stats(&server, &queue).await.ready, 1, "enqueued once");
    // Past its deadline and cancelled: it ends as cancelled, not expired.
    let late = job_on(&queue, 2)
        .keep_record(KEEP)
        .start_within(Duration::from_millis(1));
    let late_id = p.push(late).await.unwrap();
    // Delivered to a worker that died before starting it: the entry stays
    // pending, and the next worker reclaims it past its deadline.
    assert_eq!(abandon_to_ghost(&server, &queue, 1).len(), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        p.cancel(&queue, &late_id).await.unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(
        stats(&server, &queue).await.in_flight,
        2,
        "both still pending"
    );
    let w =
        start(worker(&server, &queue).handle("work", |_: u64, _ctx: JobContext| async { Ok(()) }));
    let rec = p
        .wait_for(&queue, &late_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(rec.state, JobState::Cancelled);
    let s = wait_stats(&server, &queue, "settled", |s| {
        s.processed == 1 && s.cancelled == 1 && s.in_flight == 0
    })
    .await;
    assert_eq!((s.expired, s.dead_total, s.ready), (0, 0, 0));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_keeps_records_for_a_whole_queue() {
    let server = RedisServer::start();
    let queue = unique_queue("records-queue");
    let options = jobstream_producer::ProducerOptions::default()
        .keep_records(&queue, Duration::from_secs(60));
    let p = Producer::with_options(&server.url(), options).unwrap();
    let id = p.push(job_on(&queue, 1)).await.unwrap();
    let rec = p
        .job(&queue, &id)
        .await
        .unwrap()
        .expect("a record per queue");
    assert_eq!(
        (rec.state, rec.keep),
        (JobState::Ready, Duration::from_secs(60))
    );
    // Its own keep time wins; another queue keeps none.
    let own = p
        .push(job_on(&queue, 2).keep_record(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(
        p.job(&queue, &own).await.unwrap().unwrap().keep,
        Duration::from_secs(5)
    );
    let other = unique_queue("no-records");
    let plain = p.push(job_on(&other, 3)).await.unwrap();
    assert!(p.job(&other, &plain).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_cannot_be_decoded_frees_its_key_and_record_when_it_dies() {
    // enqueue-6 reserves the key and writes the record without decoding
    // the payload (another language's producer, a newer wire version): the
    // job dies malformed, and must not hold its key for good.
    let server = RedisServer::start();
    let queue = unique_queue("badunique");
    let p = producer(&server).await;
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/enqueue-6.lua"
    ))
    .unwrap();
    let base = format!("jobstream:{{{queue}}}");
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    let now = secs * 1000 + micros / 1000;
    for (id, payload, version) in [("bad-1", &b"\xc1"[..], "1"), ("newer-1", &b"\x01"[..], "2")] {
        let key = format!("k-{id}");
        let reply: Vec<redis::Value> = redis::cmd("EVAL")
            .arg(&script)
            .arg(6)
            .arg(format!("{base}:ready"))
            .arg(format!("{base}:scheduled"))
            .arg(format!("{base}:stats"))
            .arg(format!("{base}:unique:{key}"))
            .arg(format!("{base}:job:{id}"))
            .arg(format!("{base}:done:{id}"))
            .arg(id)
            .arg("done")
            .arg(0)
            .arg(600_000)
            .arg(now)
            .arg(0)
            .arg("work")
            .arg("type")
            .arg("work")
            .arg("payload")
            .arg(payload)
            .arg("id")
            .arg(id)
            .arg("unique_key")
            .arg(&key)
            .arg("unique_for")
            .arg("done")
            .arg("record_ms")
            .arg(600_000)
            .arg("wire_version")
            .arg(version)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(reply[0], redis::Value::Int(1), "{id}: enqueued");
    }
    let w =
        start(worker(&server, &queue).handle("work", |_: u64, _ctx: JobContext| async { Ok(()) }));
    wait_stats(&server, &queue, "both dead", |s| s.dead == 2).await;
    for id in ["bad-1", "newer-1"] {
        let again = NewJob::new("work", &7u64)
            .unwrap()
            .queue(&queue)
            .unique(format!("k-{id}"), Uniqueness::UntilDone)
            .unwrap();
        assert_ne!(p.push(again).await.unwrap(), id, "{id}'s key was released");
        let record = p.job(&queue, id).await.unwrap().expect("its record");
        assert_eq!(record.state, JobState::Dead, "{id}: {record:?}");
    }
    wait_stats(&server, &queue, "the new ones ran", |s| s.processed == 2).await;
    w.stop().await;
}
