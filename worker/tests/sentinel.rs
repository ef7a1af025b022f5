#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Failover with Redis Sentinel, against real processes: a master, a
//! replica and three `redis-server --sentinel` processes. The master is
//! killed (SIGKILL) while a producer enqueues and a worker runs jobs, both
//! through a `redis+sentinel://` URL; a replica is promoted and both carry
//! on without a restart. Every job acknowledged with durable enqueue
//! (`WAIT` 1 replica) before the kill runs; what plain enqueues lost is
//! counted and printed (an asynchronous replica can be behind).

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::{Durability, NewJob, Producer, ProducerOptions};
use jobstream_testkit::{RedisServer, free_port, server_binary, unique_queue};
use jobstream_worker::{JobContext, Worker};

/// A `redis-server --sentinel` process watching `mymaster`.
struct Sentinel {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sentinel {
    fn start(master_port: u16) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "jobstream-sentinel-{port}-{:08x}",
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor mymaster 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds mymaster 800\n\
                 sentinel failover-timeout mymaster 4000\n\
                 sentinel parallel-syncs mymaster 1\n",
                dir.display()
            ),
        )
        .unwrap();
        let child = Command::new(server_binary())
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel");
        let s = Self { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while cli(port, &["PING"]).as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "sentinel on {port} did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `redis-cli -p PORT ARGS`, trimmed.
fn cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_fails_over_and_durable_jobs_survive() {
    let mut master = RedisServer::start_with(&["--appendonly", "yes"]);
    let replica = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--replicaof",
        "127.0.0.1",
        &master.port().to_string(),
    ]);
    wait_for("the replica to sync", Duration::from_secs(15), || {
        replica
            .cli(&["INFO", "replication"])
            .is_some_and(|i| i.contains("master_link_status:up"))
    });
    let sentinels: Vec<Sentinel> = (0..3).map(|_| Sentinel::start(master.port())).collect();
    wait_for(
        "the sentinels to see the replica and each other",
        Duration::from_secs(20),
        || {
            sentinels.iter().all(|s| {
                cli(s.port, &["SENTINEL", "master", "mymaster"]).is_some_and(|m| {
                    let lines: Vec<&str> = m.lines().collect();
                    let field = |name: &str| {
                        lines
                            .iter()
                            .position(|l| *l == name)
                            .and_then(|i| lines.get(i + 1))
                            .and_then(|v| v.parse::<u32>().ok())
                            .unwrap_or(0)
                    };
                    field("num-slaves") >= 1 && field("num-other-sentinels") >= 2
                })
            })
        },
    );
    let hosts: Vec<String> = sentinels
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let url = format!("redis+sentinel://{}/mymaster", hosts.join(","));
    let queue = unique_queue("failover");

    let seen: Arc<Mutex<HashSet<u64>>> = Arc::default();
    let log = seen.clone();
    let w = start(
        Worker::builder(&url)
            .queue(&queue)
            .timings(fast_timings())
            .concurrency(8)
            .handle("n", move |n: u64, _ctx: JobContext| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().insert(n);
                    Ok(())
                }
            }),
    );
    let options = ProducerOptions::default()
        .timings(fast_timings())
        .retry_for(Duration::from_secs(30));
    let plain = Producer::with_options(&url, options).unwrap();
    let durable = plain.durable(Durability::replicas(1, Duration::from_secs(2)));

    // Enqueue for 2 s, kill the master, go on until 3 s after a new one is
    // in place. Even numbers durable, odd plain.
    let mut acked_durable = Vec::new();
    let mut acked_plain = Vec::new();
    let mut not_durable = 0u32;
    let start_at = Instant::now();
    let mut killed_at = None;
    let mut moved_at: Option<Instant> = None;
    let old_port = master.port();
    let mut n = 0u64;
    loop {
        if killed_at.is_none() && start_at.elapsed() > Duration::from_secs(2) {
            master.kill();
            killed_at = Some(Instant::now());
        }
        if killed_at.is_some() && moved_at.is_none() {
            let now_master = cli(
                sentinels[0].port,
                &["SENTINEL", "get-master-addr-by-name", "mymaster"],
            );
            if now_master.is_some_and(|m| !m.ends_with(&old_port.to_string())) {
                moved_at = Some(Instant::now());
            }
        }
        if moved_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
        assert!(
            start_at.elapsed() < Duration::from_secs(60),
            "no failover within a minute"
        );
        let producer = if n.is_multiple_of(2) {
            &durable
        } else {
            &plain
        };
        match producer
            .push(NewJob::new("n", &n).unwrap().queue(&queue))
            .await
        {
            Ok(_) if n.is_multiple_of(2) => acked_durable.push(n),
            Ok(_) => acked_plain.push(n),
            Err(jobstream_producer::Error::NotDurable { .. }) => not_durable += 1,
            Err(e) => panic!("enqueue {n} failed for good: {e}"),
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let failover = moved_at.unwrap() - killed_at.unwrap();
    // Everything acknowledged durably runs on the new master.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing: Vec<u64> = {
            let seen = seen.lock().unwrap();
            acked_durable
                .iter()
                .copied()
                .filter(|n| !seen.contains(n))
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} durable jobs never ran after the failover: {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lost_plain = {
        let seen = seen.lock().unwrap();
        acked_plain.iter().filter(|n| !seen.contains(n)).count()
    };
    w.stop().await;
    println!(
        "failover: sentinels named a new master {failover:?} after the kill; \
         durable {} acknowledged, all ran ({not_durable} not confirmed in time); \
         plain {} acknowledged, {lost_plain} lost",
        acked_durable.len(),
        acked_plain.len()
    );
    assert!(
        acked_durable.len() > 100 && acked_plain.len() > 100,
        "too few jobs to mean anything"
    );
    drop(replica);
}
