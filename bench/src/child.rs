//! The consuming side of a scenario, run as its own process so its RSS is
//! its own and it competes for the CPU like a real worker does. Prints one
//! JSON line on stdout when done.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobstream_worker::{JobContext, JobOptions, QueueOptions, RateLimit, Timings, Worker};
use serde::Serialize;
use tokio::sync::Notify;

use crate::{Payload, measure, raw};

#[derive(Serialize, Default)]
pub struct ChildReport {
    pub elapsed_s: f64,
    pub rss_mb: f64,
    pub latencies_ms: Vec<f64>,
}

pub async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("redis url");
    let cfg =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .expect("connect")
}

fn ready_key(queue: &str) -> String {
    format!("bench:{queue}:ready")
}

/// Tells the parent the consumer is waiting (for the pickup scenario).
async fn announce_ready(conn: &mut redis::aio::MultiplexedConnection, queue: &str) {
    let _: redis::RedisResult<()> = redis::cmd("SET")
        .arg(ready_key(queue))
        .arg(1)
        .query_async(conn)
        .await;
}

pub async fn wait_ready(conn: &mut redis::aio::MultiplexedConnection, queue: &str) {
    for _ in 0..1000 {
        let v: Option<String> = redis::cmd("GET")
            .arg(ready_key(queue))
            .query_async(conn)
            .await
            .unwrap_or(None);
        if v.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn run(
    kind: &str,
    what: &str,
    url: &str,
    queue: &str,
    jobs: usize,
    concurrency: usize,
) -> ChildReport {
    let mut report = match (kind, what) {
        ("raw", "drain") => {
            let mut conn = connect(url).await;
            ChildReport {
                elapsed_s: raw::drain(&mut conn, &format!("raw:{{{queue}}}:ready"), jobs)
                    .await
                    .as_secs_f64(),
                ..Default::default()
            }
        }
        ("raw", "pickup") => {
            let mut conn = connect(url).await;
            let key = format!("raw:{{{queue}}}:ready");
            raw::create_group(&mut conn, &key).await;
            let mut reader = connect(url).await;
            announce_ready(&mut conn, queue).await;
            ChildReport {
                latencies_ms: raw::pickup(&mut reader, &key, jobs).await,
                ..Default::default()
            }
        }
        ("jobstream", what) => {
            jobstream(
                what,
                url,
                &[(queue.to_owned(), 1)],
                jobs,
                concurrency,
                false,
            )
            .await
        }
        ("jobstream_metrics", what) => {
            jobstream(what, url, &[(queue.to_owned(), 1)], jobs, concurrency, true).await
        }
        ("jobstream_rate", what) => {
            RATE.store(true, Ordering::Relaxed);
            jobstream(
                what,
                url,
                &[(queue.to_owned(), 1)],
                jobs,
                concurrency,
                false,
            )
            .await
        }
        ("jobstream_type_rate", what) => {
            TYPE_RATE.store(true, Ordering::Relaxed);
            jobstream(
                what,
                url,
                &[(queue.to_owned(), 1)],
                jobs,
                concurrency,
                false,
            )
            .await
        }
        ("jobstream3", what) => {
            let queues: Vec<(String, u32)> = crate::THREE_QUEUES
                .iter()
                .map(|(suffix, w)| (format!("{queue}-{suffix}"), *w))
                .collect();
            jobstream(what, url, &queues, jobs, concurrency, false).await
        }
        _ => panic!("unknown child {kind} {what}"),
    };
    report.rss_mb = measure::peak_rss_mb();
    report
}

/// Set in the `jobstream_type_rate` child: its job type has a rate limit.
static TYPE_RATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set in the `jobstream_rate` child: its queue has a rate limit.
static RATE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn jobstream(
    what: &str,
    url: &str,
    queues: &[(String, u32)],
    jobs: usize,
    concurrency: usize,
    metrics: bool,
) -> ChildReport {
    let done = Arc::new(AtomicU64::new(0));
    let all_done = Arc::new(Notify::new());
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(jobs)));
    let pickup = what == "pickup";
    let (d, n, l) = (done.clone(), all_done.clone(), latencies.clone());
    let target = jobs as u64;
    let mut builder = Worker::builder(url);
    for (queue, weight) in queues {
        let mut options = QueueOptions::new().weight(*weight);
        if RATE.load(Ordering::Relaxed) {
            // A limit that never binds (a million a second): what taking
            // tokens costs, one `rate-1` call per fetch.
            let limit = RateLimit::per_second(1_000_000).expect("a valid limit");
            options = options.rate_limit(limit.burst(10_000));
        }
        if TYPE_RATE.load(Ordering::Relaxed) {
            // The same for the job type's limit: one `throttle-6` call per
            // job, checked after the read.
            let limit = RateLimit::per_second(1_000_000).expect("a valid limit");
            options = options.type_rate_limit("bench", limit.burst(10_000));
        }
        builder = builder.queue_with(queue, options);
    }
    if metrics {
        // A free port: bound and released here, taken by the worker.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        builder = builder.serve_http(addr);
    }
    let worker = builder
        .concurrency(concurrency)
        .timings(Timings::default().block(Duration::from_secs(2)))
        .handle_with(
            "bench",
            JobOptions::default(),
            move |p: Payload, _job: JobContext| {
                if pickup {
                    let ms = crate::now_ns().saturating_sub(p.sent_ns) as f64 / 1e6;
                    if let Ok(mut v) = l.lock() {
                        v.push(ms);
                    }
                }
                if d.fetch_add(1, Ordering::Relaxed) + 1 == target {
                    n.notify_one();
                }
                std::future::ready(Ok(()))
            },
        )
        .build()
        .expect("worker");
    let stop = worker.shutdown_handle();
    let started = Instant::now();
    let running = tokio::spawn(worker.run_until_stopped());
    let mut conn = connect(url).await;
    if pickup {
        // Let the worker create its group and block in XREADGROUP.
        tokio::time::sleep(Duration::from_millis(300)).await;
        announce_ready(&mut conn, &queues[0].0).await;
    }
    all_done.notified().await;
    // Done means acknowledged: wait for the acks to land.
    loop {
        let mut processed = 0;
        for (queue, _) in queues {
            let n: Option<u64> = redis::cmd("HGET")
                .arg(format!("jobstream:{{{queue}}}:stats"))
                .arg("processed")
                .query_async(&mut conn)
                .await
                .unwrap_or(None);
            processed += n.unwrap_or(0);
        }
        if processed >= target {
            break;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    stop.shutdown();
    let _ = running.await;
    let latencies_ms = latencies.lock().map(|v| v.clone()).unwrap_or_default();
    ChildReport {
        elapsed_s,
        rss_mb: 0.0,
        latencies_ms,
    }
}
