#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The worker's HTTP listener against a real server: `/metrics` counts
//! what happened and agrees with the queue's stats, `/readyz` follows
//! Redis, `/livez` the worker's loops, and a taken port is a start error.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::*;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, free_addr, http_get, http_get_when_up, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, RetryPolicy, Worker};

/// `GET path`: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_get(addr, path).expect("GET")
}

/// The value of the sample `name{labels}` (labels as written, in order).
fn sample(body: &str, name_and_labels: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(name_and_labels) && l[name_and_labels.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_for_http(addr: SocketAddr) {
    tokio::task::spawn_blocking(move || http_get_when_up(addr, "/livez"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_outcomes_and_agree_with_the_queue() {
    let server = RedisServer::start();
    let queue = unique_queue("metrics");
    let addr = free_addr();
    let p = producer(&server).await;
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .concurrency(4)
            .serve_http(addr)
            .handle_with(
                "work",
                JobOptions::new().retry(RetryPolicy::exponential(
                    2,
                    Duration::from_millis(10),
                    Duration::from_millis(10),
                )),
                |n: u64, _ctx: JobContext| async move {
                    if n.is_multiple_of(4) {
                        return Err(JobError::retry("every fourth fails"));
                    }
                    Ok(())
                },
            ),
    );
    wait_for_http(addr).await;
    let jobs: Vec<NewJob> = (0..40).map(|n| NewJob::new("work", &n).unwrap()).collect();
    p.enqueue_many(&queue, jobs).await.unwrap();
    // Some jobs wait for a day: the gauges have something to show.
    let later: Vec<NewJob> = (0..3)
        .map(|n| {
            NewJob::new("work", &(n * 4 + 1))
                .unwrap()
                .delay(Duration::from_secs(86_400))
        })
        .collect();
    p.enqueue_many(&queue, later).await.unwrap();
    let s = wait_stats(&server, &queue, "settled", |s| {
        s.processed == 30 && s.dead == 10 && s.in_flight == 0 && s.ready == 0
    })
    .await;
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let jobs = |outcome: &str| {
        sample(
            &body,
            &format!(
                "jobstream_jobs_total{{queue=\"{queue}\",job_type=\"work\",outcome=\"{outcome}\"}}"
            ),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(
        (jobs("ok"), jobs("retry"), jobs("dead")),
        (30.0, 10.0, 10.0),
        "{body}"
    );
    let q = format!("{{queue=\"{queue}\"}}");
    assert_eq!(
        sample(&body, &format!("jobstream_queue_scheduled{q}")),
        Some(s.scheduled as f64)
    );
    assert_eq!(
        sample(&body, &format!("jobstream_queue_dead{q}")),
        Some(10.0)
    );
    assert_eq!(
        sample(&body, &format!("jobstream_queue_ready{q}")),
        Some(0.0)
    );
    let tl = format!("{{queue=\"{queue}\",job_type=\"work\"}}");
    assert_eq!(
        sample(&body, &format!("jobstream_job_duration_seconds_count{tl}")),
        Some(50.0)
    );
    assert_eq!(
        sample(&body, &format!("jobstream_job_pickup_seconds_count{tl}")),
        Some(50.0)
    );
    assert_eq!(sample(&body, "jobstream_worker_concurrency"), Some(4.0));
    assert_eq!(sample(&body, "jobstream_worker_busy_slots"), Some(0.0));
    assert!(body.trim_end().ends_with("# EOF"), "OpenMetrics text");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_redis_and_livez_the_worker() {
    let mut server = RedisServer::start();
    let queue = unique_queue("probes");
    let addr = free_addr();
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .serve_http(addr)
            .handle("work", |_: u64, _ctx: JobContext| async { Ok(()) }),
    );
    wait_for_http(addr).await;
    // Ready once the group exists.
    let mut ready = (0, String::new());
    for _ in 0..100 {
        ready = get(addr, "/readyz");
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert_eq!(get(addr, "/livez").0, 200);
    server.kill();
    let (status, body) = get(addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("Redis"), "{body}");
    assert!(!body.contains("s3cret"));
    assert_eq!(get(addr, "/livez").0, 200, "alive while Redis is away");
    server.restart();
    let mut back = 0;
    for _ in 0..200 {
        back = get(addr, "/readyz").0;
        if back == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(back, 200, "ready again after Redis is back");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_is_a_start_error() {
    let server = RedisServer::start();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let worker = Worker::builder(&server.url())
        .queue(&unique_queue("port"))
        .serve_http(addr)
        .handle("work", |_: u64, _ctx: JobContext| async { Ok(()) })
        .build()
        .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), worker.run_until_stopped())
        .await
        .expect("the worker stops at once")
        .unwrap_err();
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}
