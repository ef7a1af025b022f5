#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The worker against an unfriendly world: group deleted, scripts flushed,
//! shutdown under load, long jobs, dead workers, poison messages, a Redis
//! restart.

mod common;

use std::time::Duration;

use common::*;
use jobstream_producer::{Producer, ProducerOptions};
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{
    JobContext, JobOptions, Limits, RetryPolicy, Timings, Worker, WorkerBuilder,
};

/// A worker whose `sleep` jobs sleep for the payload's ms.
fn sleeper(server: &RedisServer, queue: &str, runs: &Runs, timings: Timings) -> WorkerBuilder {
    let runs = runs.clone();
    let options = JobOptions::default()
        .timeout(Duration::from_secs(3600))
        .retry(RetryPolicy::default());
    Worker::builder(&server.url())
        .queue(queue)
        .concurrency(4)
        .timings(timings)
        .handle_with("sleep", options, move |ms: u64, job: JobContext| {
            let runs = runs.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                runs.record(job.id());
                Ok(())
            }
        })
}

async fn enqueue_sleeps(server: &RedisServer, queue: &str, ms: u64, n: usize) -> Vec<String> {
    let p = producer(server).await;
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(p.enqueue_named(queue, "sleep", &ms).await.unwrap());
    }
    ids
}

/// Creates the group and lets a consumer named `ghost` fetch one job and
/// never settle it, as a worker that died would.
fn ghost_fetches_one(server: &RedisServer, ready: &str) {
    server
        .cli(&["XGROUP", "CREATE", ready, "workers", "0"])
        .unwrap();
    let args = [
        "XREADGROUP",
        "GROUP",
        "workers",
        "ghost",
        "COUNT",
        "1",
        "STREAMS",
        ready,
        ">",
    ];
    server.cli(&args).unwrap();
}

fn pending_of(server: &RedisServer, queue: &str) -> String {
    server
        .cli(&[
            "XPENDING",
            &format!("jobstream:{{{queue}}}:ready"),
            "workers",
        ])
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_recreates_a_deleted_consumer_group_and_keeps_serving() {
    let server = RedisServer::start();
    let queue = unique_queue("nogroup");
    let runs = Runs::default();
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    enqueue_sleeps(&server, &queue, 1, 1).await;
    wait_stats(&server, &queue, "first job", |s| s.processed == 1).await;
    let destroyed = server
        .cli(&[
            "XGROUP",
            "DESTROY",
            &format!("jobstream:{{{queue}}}:ready"),
            "workers",
        ])
        .unwrap();
    assert_eq!(destroyed.trim(), "1");
    enqueue_sleeps(&server, &queue, 1, 3).await;
    wait_stats(&server, &queue, "jobs after XGROUP DESTROY", |s| {
        s.processed == 4
    })
    .await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_reloads_scripts_after_script_flush() {
    let server = RedisServer::start();
    let queue = unique_queue("flush");
    let runs = Runs::default();
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    enqueue_sleeps(&server, &queue, 1, 2).await;
    wait_stats(&server, &queue, "first jobs", |s| s.processed == 2).await;
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]).unwrap().trim(), "OK");
    enqueue_sleeps(&server, &queue, 1, 2).await;
    wait_stats(&server, &queue, "jobs after SCRIPT FLUSH", |s| {
        s.processed == 4
    })
    .await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_running_jobs_finish_and_leaves_nothing_pending() {
    let server = RedisServer::start();
    let queue = unique_queue("shutdown");
    let runs = Runs::default();
    let ids = enqueue_sleeps(&server, &queue, 300, 20).await;
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    wait_stats(&server, &queue, "jobs running", |s| s.in_flight == 4).await;
    w.stop().await;
    let s = stats(&server, &queue).await;
    assert_eq!(
        s.in_flight,
        0,
        "nothing pending after shutdown: {}",
        pending_of(&server, &queue)
    );
    assert!(s.processed >= 4, "the running jobs finished: {s:?}");
    assert_eq!(s.processed + s.ready, 20, "nothing lost: {s:?}");
    assert_eq!(
        runs.total() as u64,
        s.processed,
        "no job ran without being acknowledged"
    );
    // The rest run on the next worker, each once.
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    wait_stats(&server, &queue, "all processed", |s| s.processed == 20).await;
    assert!(ids.iter().all(|id| runs.count(id) == 1));
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_still_running_after_the_grace_period_goes_back_to_the_queue_at_once() {
    let server = RedisServer::start();
    let queue = unique_queue("grace");
    let runs = Runs::default();
    enqueue_sleeps(&server, &queue, 3_600_000, 1).await;
    let timings = fast_timings().shutdown_grace(Duration::from_millis(200));
    let w = start(sleeper(&server, &queue, &runs, timings));
    wait_stats(&server, &queue, "job running", |s| s.in_flight == 1).await;
    w.stop().await;
    let s = stats(&server, &queue).await;
    assert_eq!((s.in_flight, s.ready, s.processed), (0, 1, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_job_keeps_its_lease_and_is_not_stolen() {
    let server = RedisServer::start();
    let queue = unique_queue("lease");
    let runs = Runs::default();
    // 3 s job, 1.5 s visibility timeout: only lease refreshes keep it.
    let id = enqueue_sleeps(&server, &queue, 3000, 1).await.remove(0);
    let a = start(sleeper(&server, &queue, &runs, fast_timings()));
    wait_stats(&server, &queue, "job running", |s| s.in_flight == 1).await;
    let b = start(sleeper(&server, &queue, &runs, fast_timings()));
    wait_stats(&server, &queue, "processed", |s| s.processed == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs.count(&id), 1, "the job ran once");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_a_dead_consumer_are_reclaimed_after_the_visibility_timeout() {
    let server = RedisServer::start();
    let queue = unique_queue("reclaim");
    let runs = Runs::default();
    let ready = format!("jobstream:{{{queue}}}:ready");
    let id = enqueue_sleeps(&server, &queue, 1, 1).await.remove(0);
    // A consumer that fetches the job and dies without a word.
    ghost_fetches_one(&server, &ready);
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    wait_stats(&server, &queue, "reclaimed and processed", |s| {
        s.processed == 1
    })
    .await;
    assert_eq!(runs.count(&id), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_keeps_killing_its_worker_is_dead_lettered_as_abandoned() {
    let server = RedisServer::start();
    let queue = unique_queue("poison");
    let runs = Runs::default();
    let ready = format!("jobstream:{{{queue}}}:ready");
    let id = enqueue_sleeps(&server, &queue, 1, 1).await.remove(0);
    // A consumer that fetches the job and dies without a word.
    ghost_fetches_one(&server, &ready);
    let entry = first_entry_id(&server, &queue);
    for _ in 0..2 {
        // Two more deliveries, as if two more workers died running it.
        server
            .cli(&["XCLAIM", &ready, "workers", "ghost", "0", &entry])
            .unwrap();
    }
    let w = start(
        sleeper(&server, &queue, &runs, fast_timings()).limits(Limits::default().max_deliveries(3)),
    );
    let s = wait_stats(&server, &queue, "abandoned", |s| s.dead == 1).await;
    assert_eq!((s.processed, s.in_flight), (0, 0));
    assert_eq!(runs.count(&id), 0, "a poison job is not run again");
    let dead = producer(&server)
        .await
        .inspector()
        .dead_list(&queue, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        (
            dead[0].reason.as_str(),
            dead[0].deliveries,
            dead[0].job_id.as_str()
        ),
        ("abandoned", 4, id.as_str())
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_no_job_and_the_worker_reconnects() {
    let mut server = RedisServer::start_durable();
    let queue = unique_queue("restart");
    let runs = Runs::default();
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    let mut ids = enqueue_sleeps(&server, &queue, 20, 40).await;
    wait_stats(&server, &queue, "some processed", |s| s.processed >= 5).await;
    server.restart();
    ids.extend(enqueue_sleeps(&server, &queue, 1, 40).await);
    let s = wait_stats(&server, &queue, "all 80 settled", |s| {
        s.processed >= 80 && s.in_flight == 0 && s.ready == 0
    })
    .await;
    assert_eq!(s.dead, 0);
    let missing: Vec<&String> = ids.iter().filter(|id| runs.count(id) == 0).collect();
    assert!(missing.is_empty(), "lost jobs: {missing:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_of_seconds_is_ridden_out_by_workers_and_producers() {
    let mut server = RedisServer::start_durable();
    let queue = unique_queue("outage");
    let runs = Runs::default();
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    // Jobs that are running when Redis goes away: their acks must wait.
    let mut ids = enqueue_sleeps(&server, &queue, 800, 4).await;
    wait_stats(&server, &queue, "running", |s| s.in_flight == 4).await;
    // Redis is away for 2 s plus however long a restart takes on a busy
    // machine; the producer is told to ride out far more than that.
    let options = ProducerOptions::default().retry_for(Duration::from_secs(30));
    let p = Producer::with_options(&server.url(), options).unwrap();
    server.kill();
    // A producer that enqueues while Redis is down retries until it is back.
    let q = queue.clone();
    let late = tokio::spawn(async move { p.enqueue_named(&q, "sleep", &1u64).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart();
    ids.push(
        late.await
            .unwrap()
            .expect("the enqueue made during the outage went through"),
    );
    let s = wait_stats(&server, &queue, "all 5 settled", |s| {
        s.processed >= 5 && s.in_flight == 0 && s.ready == 0
    })
    .await;
    assert_eq!(s.dead, 0);
    assert!(ids.iter().all(|id| runs.count(id) >= 1), "every job ran");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_started_while_redis_is_down_waits_and_then_serves() {
    let mut server = RedisServer::start();
    let queue = unique_queue("late-redis");
    let runs = Runs::default();
    server.kill();
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !w.task.is_finished(),
        "the worker does not exit while Redis is away"
    );
    server.restart();
    let id = enqueue_sleeps(&server, &queue, 1, 1).await.remove(0);
    wait_stats(&server, &queue, "processed", |s| s.processed == 1).await;
    assert_eq!(runs.count(&id), 1);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_reclaims_its_own_running_job_does_not_run_it_twice() {
    let server = RedisServer::start();
    let queue = unique_queue("self-reclaim");
    let runs = Runs::default();
    let w = start(sleeper(&server, &queue, &runs, fast_timings()));
    let id = enqueue_sleeps(&server, &queue, 2000, 1).await.remove(0);
    wait_stats(&server, &queue, "running", |s| s.in_flight == 1).await;
    // Make the running job look abandoned (idle for a minute), as it would
    // after Redis was away longer than the visibility timeout.
    let ready = format!("jobstream:{{{queue}}}:ready");
    let entry = first_entry_id(&server, &queue);
    let args = [
        "XCLAIM",
        &ready,
        "workers",
        &w.consumer,
        "0",
        &entry,
        "IDLE",
        "60000",
        "JUSTID",
    ];
    server.cli(&args).unwrap();
    wait_stats(&server, &queue, "processed", |s| {
        s.processed == 1 && s.in_flight == 0
    })
    .await;
    // A second run, had one started after the claim, would finish by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(runs.count(&id), 1, "the job ran once");
    w.stop().await;
}
