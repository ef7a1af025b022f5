//! Fleet accuracy of rate limits: four worker processes share one limit
//! of 100 jobs/s (burst 5) over a backlog far larger than 30 s of it; the
//! jobs started in a steady 30 s window (start-up excluded), by the Redis
//! server's clock, are within ±10% of 100 × 30. With the per-queue limit
//! (`rate-1`, before each fetch), a per-type limit and a per-key limit
//! (`throttle-6`, after each read).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jobstream_producer::{NewJob, Producer};
use jobstream_testkit::{RedisServer, unique_queue};

const RATE: u32 = 100;
const WINDOW_S: u64 = 30;

/// The worker processes, killed when dropped (a failed assertion too).
struct Fleet(Vec<Child>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for w in &mut self.0 {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn starts(server: &RedisServer, run: &str) -> Vec<u64> {
    let out = server
        .cli(&["LRANGE", &format!("rate:{run}:starts"), "0", "-1"])
        .unwrap();
    out.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// One fleet at a time: two would share this machine's cores and measure
/// each other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn fleet_stays_within_ten_percent(kind: &str) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = RedisServer::start();
    let queue = unique_queue("fleet-rate");
    let run = format!("{kind}-{}", std::process::id());
    let producer = Producer::connect(&server.url()).await.unwrap();
    // 60 s of backlog: the limit binds all along.
    let backlog = RATE as usize * 60;
    for chunk in (0..backlog).collect::<Vec<_>>().chunks(1000) {
        let jobs = chunk
            .iter()
            .map(|i| {
                let job = NewJob::new("work", i).unwrap();
                // Per key: every job of the one key shares its bucket.
                if kind == "key" {
                    job.rate_key("tenant-1").unwrap()
                } else {
                    job
                }
            })
            .collect();
        producer.enqueue_many(&queue, jobs).await.unwrap();
    }
    let url = server.url();
    let fleet = Fleet(
        (0..4)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_rate-worker"))
                    .args([
                        "--redis-url",
                        &url,
                        "--queue",
                        &queue,
                        "--run",
                        &run,
                        "--rate",
                        &RATE.to_string(),
                        "--burst",
                        "5",
                        "--kind",
                        kind,
                    ])
                    .stdout(Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    // Start-up: wait for the first start, then 3 s more for every process
    // to be up; the window begins then, by the server's clock.
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(first) = starts(&server, &run).into_iter().min() {
            break first;
        }
        assert!(Instant::now() < deadline, "{kind}: no job started in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let from = first + 3_000;
    let to = from + WINDOW_S * 1000;
    tokio::time::sleep(Duration::from_secs(3 + WINDOW_S + 2)).await;
    let all = starts(&server, &run);
    drop(fleet);
    let n = all.iter().filter(|t| (from..to).contains(*t)).count() as f64;
    let want = f64::from(RATE) * WINDOW_S as f64;
    // Per second, to show how even it was.
    let mut per_s = vec![0u32; WINDOW_S as usize];
    for t in all.iter().filter(|t| (from..to).contains(*t)) {
        per_s[((t - from) / 1000) as usize] += 1;
    }
    eprintln!(
        "{kind}: {n} starts in the {WINDOW_S} s window (want {want} ± 10%), {} in all; per second: {per_s:?}",
        all.len()
    );
    assert!(
        (n - want).abs() <= want * 0.1,
        "{kind}: {n} starts in {WINDOW_S} s at {RATE}/s (want {want} ± 10%)"
    );
    // Never more than the limit plus the burst in any second.
    let worst = per_s.iter().max().copied().unwrap_or(0);
    assert!(
        worst <= RATE + 5 + 2,
        "{kind}: {worst} starts in one second"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_hold_a_queue_limit_within_ten_percent_over_30_s() {
    fleet_stays_within_ten_percent("queue").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_hold_a_type_limit_within_ten_percent_over_30_s() {
    fleet_stays_within_ten_percent("type").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_hold_a_key_limit_within_ten_percent_over_30_s() {
    fleet_stays_within_ten_percent("key").await;
}
