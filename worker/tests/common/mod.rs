//! Shared setup for worker end-to-end tests: a real redis-server, short
//! timings, a worker running on a task, and a record of handler executions.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobstream_core::{QueueKeys, QueueName, QueueStats, QueueStore, Redis};
use jobstream_producer::Producer;
use jobstream_testkit::RedisServer;
use jobstream_worker::{ShutdownHandle, Timings, WorkerBuilder};

pub fn fast_timings() -> Timings {
    Timings::default()
        .block(Duration::from_millis(500))
        .visibility_timeout(Duration::from_millis(1500))
        .lease_refresh(Duration::from_millis(300))
        .reclaim_interval(Duration::from_millis(200))
        .promote_interval(Duration::from_millis(50))
        .shutdown_grace(Duration::from_secs(5))
        .shutdown_flush(Duration::from_secs(2))
        .response_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .reconnect_min(Duration::from_millis(20))
        .reconnect_max(Duration::from_millis(300))
        .consumer_idle_reap(Duration::from_secs(3600))
}

/// Which job ids ran, how often.
#[derive(Clone, Default)]
pub struct Runs(Arc<Mutex<HashMap<String, u32>>>);

impl Runs {
    pub fn record(&self, id: &str) -> u32 {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(id.to_owned()).or_default();
        *n += 1;
        *n
    }
    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    pub fn total(&self) -> u32 {
        self.0.lock().unwrap().values().sum()
    }
    pub fn count(&self, id: &str) -> u32 {
        self.0.lock().unwrap().get(id).copied().unwrap_or(0)
    }
}

pub struct Running {
    pub consumer: String,
    pub handle: ShutdownHandle,
    pub task: tokio::task::JoinHandle<Result<(), jobstream_worker::Error>>,
}

impl Running {
    pub async fn stop(self) {
        self.handle.shutdown();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("worker did not stop within 30 s")
            .unwrap()
            .unwrap();
    }
}

pub fn start<S: Clone + Send + Sync + 'static>(builder: WorkerBuilder<S>) -> Running {
    let worker = builder.build().unwrap();
    let handle = worker.shutdown_handle();
    let consumer = worker.consumer_name().to_owned();
    let task = tokio::spawn(worker.run_until_stopped());
    Running {
        consumer,
        handle,
        task,
    }
}

pub fn store(server: &RedisServer, queue: &str) -> QueueStore {
    let redis = Redis::open(&server.url(), &Timings::default()).unwrap();
    QueueStore::new(
        redis,
        QueueKeys::new("jobstream", &QueueName::new(queue).unwrap()),
        "workers",
    )
}

pub async fn stats(server: &RedisServer, queue: &str) -> QueueStats {
    store(server, queue)
        .stats(jobstream_core::now_ms())
        .await
        .unwrap()
}

/// Polls `check` on the queue's stats until true, or fails after 20 s.
pub async fn wait_stats(
    server: &RedisServer,
    queue: &str,
    what: &str,
    check: impl Fn(&QueueStats) -> bool,
) -> QueueStats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // Redis may refuse to answer for a while (a test makes it busy).
        let read = store(server, queue).stats(jobstream_core::now_ms()).await;
        if let Ok(s) = &read
            && check(s)
        {
            return read.unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn producer(server: &RedisServer) -> Producer {
    Producer::connect(&server.url()).await.unwrap()
}

/// Runs the worker `builder` makes and expects it to stop at once with a
/// fatal error that mentions `expect`, names the server (`server` is part
/// of its URL), never shows the password `s3cret`, and says what to fix.
pub async fn refused_at_start(
    builder: WorkerBuilder,
    expect: &str,
    server: &str,
) -> jobstream_worker::Error {
    let started = std::time::Instant::now();
    let worker = builder.build().unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), worker.run_until_stopped())
        .await
        .expect("a fatal configuration error must stop the worker, not retry forever")
        .expect_err("the worker must refuse to run");
    let msg = err.to_string();
    assert!(err.is_fatal(), "{msg}");
    assert!(msg.contains(expect), "{msg} should mention {expect}");
    assert!(msg.contains(server), "{msg} should name the server");
    assert!(msg.contains("Fix:"), "{msg} should say what to fix");
    assert!(!msg.contains("s3cret"), "{msg} leaks the password");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    err
}

/// The entry id of the oldest entry of the queue's `ready` stream (the
/// producer returns job ids, not entry ids).
pub fn first_entry_id(server: &RedisServer, queue: &str) -> String {
    let ready = format!("jobstream:{{{queue}}}:ready");
    server
        .cli(&["XRANGE", &ready, "-", "+", "COUNT", "1"])
        .expect("XRANGE")
        .lines()
        .next()
        .expect("an entry in ready")
        .to_owned()
}

/// Hands every job now in `queue`'s ready stream to a worker that died
/// with them ("ghost"): delivered `deliveries` times, idle for a minute,
/// so the next worker's reclaimer takes them over (or dead-letters them as
/// abandoned, past `max_deliveries`). Returns their entry ids.
pub fn abandon_to_ghost(server: &RedisServer, queue: &str, deliveries: u32) -> Vec<String> {
    let ready = format!("jobstream:{{{queue}}}:ready");
    let _ = server.cli(&["XGROUP", "CREATE", &ready, "workers", "0"]);
    server
        .cli(&[
            "XREADGROUP",
            "GROUP",
            "workers",
            "ghost",
            "COUNT",
            "1000",
            "STREAMS",
            &ready,
            ">",
        ])
        .unwrap();
    let pending = server
        .cli(&["XPENDING", &ready, "workers", "-", "+", "1000", "ghost"])
        .unwrap();
    let ids: Vec<String> = pending
        .lines()
        .map(str::trim)
        .filter(|l| l.contains('-') && l.chars().all(|c| c.is_ascii_digit() || c == '-'))
        .map(str::to_owned)
        .collect();
    let retries = deliveries.to_string();
    for id in &ids {
        server
            .cli(&[
                "XCLAIM",
                &ready,
                "workers",
                "ghost",
                "0",
                id,
                "IDLE",
                "60000",
                "RETRYCOUNT",
                &retries,
            ])
            .unwrap();
    }
    ids
}
