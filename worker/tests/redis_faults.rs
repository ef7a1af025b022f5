#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Redis errors by class, against a real server: transient ones (OOM, BUSY,
//! READONLY, MASTERDOWN, unreachable) are ridden out with no extra run of
//! an attempt; fatal ones (wrong password, NOPERM, WRONGTYPE, an
//! unsupported server, a bad database) stop the worker at once with one
//! message that names the server and the fix.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, Timings, Worker};
use serde_json::Value;

/// A gate the handlers wait at, so the test decides when outcomes are
/// written (while Redis refuses them).
#[derive(Clone, Default)]
struct Gate(Arc<AtomicBool>);

impl Gate {
    async fn wait(&self) {
        while !self.0.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Timings with a visibility timeout long enough that a refused write is
/// retried well inside it, and short enough to show an extra run if the
/// worker gave up.
fn timings() -> Timings {
    fast_timings()
        .visibility_timeout(Duration::from_secs(4))
        .lease_refresh(Duration::from_millis(400))
}

/// A worker whose handler fails attempt 1 (a retry must be written) and
/// succeeds on attempt 2; attempt 1 waits at the gate.
fn gated_worker(server: &RedisServer, queue: &str, runs: &Runs, gate: &Gate) -> Running {
    let (runs, gate) = (runs.clone(), gate.clone());
    start(
        Worker::builder(&server.url())
            .queue(queue)
            .concurrency(50)
            .timings(timings())
            .default_options(jobstream_worker::JobOptions::default().retry(
                jobstream_worker::RetryPolicy::exponential(
                    3,
                    Duration::from_millis(10),
                    Duration::from_millis(10),
                ),
            ))
            .handle("t", move |_: Value, job: JobContext| {
                let (runs, gate) = (runs.clone(), gate.clone());
                async move {
                    runs.record(&format!("{}#{}", job.id(), job.attempt()));
                    if job.attempt() == 1 {
                        gate.wait().await;
                        return Err(JobError::retry("first attempt fails"));
                    }
                    Ok(())
                }
            }),
    )
}

async fn enqueue(server: &RedisServer, queue: &str, n: usize) -> Vec<String> {
    let p = producer(server).await;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            p.enqueue_named(queue, "t", &serde_json::json!({ "i": i }))
                .await
                .unwrap(),
        );
    }
    ids
}

fn assert_each_attempt_ran_once(runs: &Runs, ids: &[String]) {
    for id in ids {
        assert_eq!(
            runs.count(&format!("{id}#1")),
            1,
            "attempt 1 of {id} ran again"
        );
        assert_eq!(runs.count(&format!("{id}#2")), 1, "attempt 2 of {id}");
    }
}

/// Redis refuses writes for a while (`refuse`, then `allow` again): every
/// retry-3 is refused, and the worker must ride it out with no extra run
/// of the attempt.
async fn refused_writes_are_ridden_out(
    server: RedisServer,
    refuse: impl Fn(&RedisServer),
    allow: impl Fn(&RedisServer),
) {
    let queue = unique_queue("refused");
    let (runs, gate) = (Runs::default(), Gate::default());
    let ids = enqueue(&server, &queue, 20).await;
    let w = gated_worker(&server, &queue, &runs, &gate);
    wait_stats(&server, &queue, "20 in flight", |s| s.in_flight == 20).await;
    refuse(&server);
    gate.open();
    // Twice the visibility timeout: a worker that gave up on the write
    // would have let the job be reclaimed and run attempt 1 again.
    tokio::time::sleep(timings().visibility_timeout * 2).await;
    let s = stats(&server, &queue).await;
    assert_eq!((s.retried, s.in_flight), (0, 20), "{s:?}");
    allow(&server);
    wait_stats(&server, &queue, "all processed", |s| s.processed == 20).await;
    w.stop().await;
    let s = stats(&server, &queue).await;
    assert_eq!((s.retried, s.dead, s.in_flight), (20, 0, 0), "{s:?}");
    assert_each_attempt_ran_once(&runs, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_is_ridden_out_without_an_extra_run() {
    // Redis is full: -OOM.
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "noeviction",
    ]);
    refused_writes_are_ridden_out(
        server,
        |s| drop(s.cli(&["CONFIG", "SET", "maxmemory", "1"]).unwrap()),
        |s| drop(s.cli(&["CONFIG", "SET", "maxmemory", "0"]).unwrap()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_replicas_is_ridden_out_without_an_extra_run() {
    // min-replicas-to-write with no replica: -NOREPLICAS.
    refused_writes_are_ridden_out(
        RedisServer::start(),
        |s| {
            drop(
                s.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"])
                    .unwrap(),
            )
        },
        |s| {
            drop(
                s.cli(&["CONFIG", "SET", "min-replicas-to-write", "0"])
                    .unwrap(),
            )
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_background_save_is_ridden_out_without_an_extra_run() {
    // The data directory vanishes and a BGSAVE fails: -MISCONF on every
    // write (stop-writes-on-bgsave-error) until the operator acts.
    // RDB snapshots on (only then does a failed save stop writes), and
    // `dir` settable at run time.
    let server = RedisServer::start_with(&[
        "--save",
        "3600 1",
        "--appendonly",
        "no",
        "--enable-protected-configs",
        "yes",
    ]);
    refused_writes_are_ridden_out(
        server,
        |s| {
            let gone = std::env::temp_dir().join(format!("jobstream-gone-{}", s.port()));
            std::fs::create_dir_all(&gone).unwrap();
            s.cli(&["CONFIG", "SET", "dir", &gone.to_string_lossy()])
                .unwrap();
            std::fs::remove_dir_all(&gone).unwrap();
            s.cli(&["BGSAVE"]).unwrap();
            let refused = jobstream_testkit::wait_until(Duration::from_secs(10), || {
                s.cli(&["SET", "probe-misconf", "1"])
                    .is_some_and(|o| o.contains("MISCONF"))
            });
            assert!(refused, "writes were not refused with MISCONF");
        },
        |s| {
            drop(
                s.cli(&["CONFIG", "SET", "stop-writes-on-bgsave-error", "no"])
                    .unwrap(),
            )
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_script_is_ridden_out_without_an_extra_run() {
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--busy-reply-threshold",
        "50",
    ]);
    let queue = unique_queue("busy");
    let (runs, gate) = (Runs::default(), Gate::default());
    let ids = enqueue(&server, &queue, 20).await;
    let w = gated_worker(&server, &queue, &runs, &gate);
    wait_stats(&server, &queue, "20 in flight", |s| s.in_flight == 20).await;
    // A script that spins for 2 s: every other command gets -BUSY.
    let spin = "local t = redis.call('TIME') while true do local n = redis.call('TIME') \
                if (n[1] - t[1]) * 1000000 + (n[2] - t[2]) > 2000000 then break end end return 1";
    let mut busy = std::process::Command::new("redis-cli")
        .args(["-p", &server.port().to_string(), "EVAL", spin, "0"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.open();
    wait_stats(&server, &queue, "all processed", |s| s.processed == 20).await;
    let _ = busy.wait();
    w.stop().await;
    let s = stats(&server, &queue).await;
    assert_eq!((s.retried, s.dead, s.in_flight), (20, 0, 0), "{s:?}");
    assert_each_attempt_ran_once(&runs, &ids);
}

/// READONLY and MASTERDOWN: a worker pointed at a replica (a failover
/// under way) waits, and serves once the replica is promoted.
async fn waits_on_a_replica_then_serves(serve_stale: &str) {
    let primary_port = jobstream_testkit::free_port(); // nothing listens there
    let server = RedisServer::start();
    server
        .cli(&["CONFIG", "SET", "replica-serve-stale-data", serve_stale])
        .unwrap();
    server
        .cli(&["REPLICAOF", "127.0.0.1", &primary_port.to_string()])
        .unwrap();
    let queue = unique_queue("replica");
    let runs = Runs::default();
    let r = runs.clone();
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .handle("t", move |_: Value, job: JobContext| {
                let r = r.clone();
                async move {
                    r.record(job.id());
                    Ok(())
                }
            }),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !w.task.is_finished(),
        "a transient error must not stop the worker"
    );
    server.cli(&["REPLICAOF", "NO", "ONE"]).unwrap();
    let ids = enqueue(&server, &queue, 5).await;
    wait_stats(&server, &queue, "processed", |s| s.processed == 5).await;
    w.stop().await;
    for id in ids {
        assert_eq!(runs.count(&id), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_replica_is_waited_for() {
    waits_on_a_replica_then_serves("yes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn master_down_is_waited_for() {
    waits_on_a_replica_then_serves("no").await;
}

/// Runs a worker against `url` and expects it to stop at once with an
/// error that names the server, never the password, and says what to fix.
async fn refuses(url: &str, expect: &str) -> String {
    let builder = Worker::builder(url)
        .queue("faults")
        .timings(fast_timings())
        .handle("t", |_: Value, _| async { Ok(()) });
    refused_at_start(builder, expect, "127.0.0.1:")
        .await
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_missing_password_and_bad_database_fail_fast() {
    let server = RedisServer::start();
    server
        .cli(&["CONFIG", "SET", "requirepass", "s3cret"])
        .unwrap();
    let port = server.port();
    refuses(
        &format!("redis://:wrong-s3cret@127.0.0.1:{port}"),
        "password",
    )
    .await;
    refuses(&format!("redis://127.0.0.1:{port}"), "password").await;
    refuses(&format!("redis://:s3cret@127.0.0.1:{port}/99"), "database").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_denial_fails_fast() {
    let server = RedisServer::start();
    server
        .cli(&[
            "ACL", "SETUSER", "jobs", "on", ">s3cret", "~*", "+@all", "-evalsha", "-eval",
            "-script",
        ])
        .unwrap();
    let msg = refuses(
        &format!("redis://jobs:s3cret@127.0.0.1:{}", server.port()),
        "permission",
    )
    .await;
    assert!(msg.contains("ACL"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_key_of_the_wrong_type_fails_fast() {
    let server = RedisServer::start();
    for key in ["ready", "scheduled", "dead", "stats"] {
        let queue = unique_queue("wrongtype");
        server
            .cli(&["SET", &format!("jobstream:{{{queue}}}:{key}"), "not ours"])
            .unwrap();
        let worker = Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .handle("t", |_: Value, _| async { Ok(()) })
            .build()
            .unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), worker.run_until_stopped())
            .await
            .expect("a key of the wrong type must stop the worker at start")
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(":{key}")) && msg.contains("Fix:"),
            "{msg}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_broken_under_a_running_worker_stops_it() {
    // The dead stream overwritten while the worker runs: dead letters can
    // no longer be written, and retrying cannot help.
    let server = RedisServer::start();
    let queue = unique_queue("broken");
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .handle("t", |_: Value, _| async {
                Err::<(), _>(JobError::permanent("no"))
            }),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    server
        .cli(&["SET", &format!("jobstream:{{{queue}}}:dead"), "not ours"])
        .unwrap();
    enqueue(&server, &queue, 1).await;
    let err = tokio::time::timeout(Duration::from_secs(10), w.task)
        .await
        .expect("the worker must stop")
        .unwrap()
        .unwrap_err();
    assert!(err.is_fatal(), "{err}");
    // Not lost: still pending, for a worker once the key is fixed.
    let pending = server
        .cli(&[
            "XPENDING",
            &format!("jobstream:{{{queue}}}:ready"),
            "workers",
        ])
        .unwrap();
    assert_eq!(pending.lines().next(), Some("1"), "{pending}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_waiting_for_redis_at_start_is_immediate() {
    let server = RedisServer::start();
    // Writes paused (as FAILOVER does): start-up cannot create the group.
    server.cli(&["CLIENT", "PAUSE", "20000", "WRITE"]).unwrap();
    let w = start(
        Worker::builder(&server.url())
            .queue(&unique_queue("paused"))
            .timings(
                fast_timings()
                    .shutdown_grace(Duration::from_millis(200))
                    .shutdown_flush(Duration::from_millis(100)),
            )
            .handle("t", |_: Value, _| async { Ok(()) }),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    w.handle.shutdown();
    tokio::time::timeout(Duration::from_secs(10), w.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        began.elapsed() < Duration::from_millis(600),
        "took {:?}",
        began.elapsed()
    );
    server.cli(&["CLIENT", "UNPAUSE"]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_needed_command_fails_fast() {
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--rename-command",
        "XAUTOCLAIM",
        "",
    ]);
    refuses(&server.url(), "XAUTOCLAIM").await;
}

#[test]
fn build_needs_no_runtime() {
    // Outside any Tokio runtime: nothing connects until run.
    let worker = Worker::builder("redis://127.0.0.1:1")
        .handle("t", |_: Value, _| async { Ok(()) })
        .build();
    assert!(worker.is_ok());
    let bad = Worker::builder("not a url")
        .handle("t", |_: Value, _| async { Ok(()) })
        .build();
    assert!(bad.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_redis_unreachable_is_bounded_and_loses_nothing() {
    let server = RedisServer::start();
    let queue = unique_queue("unreachable");
    let (runs, gate) = (Runs::default(), Gate::default());
    let ids = enqueue(&server, &queue, 20).await;
    let grace = Duration::from_millis(500);
    let flush = Duration::from_secs(1);
    let (r, g) = (runs.clone(), gate.clone());
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .concurrency(50)
            .timings(timings().shutdown_grace(grace).shutdown_flush(flush))
            .handle("t", move |_: Value, job: JobContext| {
                let (r, g) = (r.clone(), g.clone());
                async move {
                    r.record(job.id());
                    g.wait().await;
                    Ok(())
                }
            }),
    );
    wait_stats(&server, &queue, "20 in flight", |s| s.in_flight == 20).await;
    server.pause();
    gate.open();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let began = Instant::now();
    w.handle.shutdown();
    let result = tokio::time::timeout(Duration::from_secs(30), w.task).await;
    let took = began.elapsed();
    server.resume();
    result.expect("shutdown hung").unwrap().unwrap();
    assert!(
        took <= grace + flush + Duration::from_millis(300),
        "shutdown took {took:?}, bound is grace {grace:?} + flush {flush:?}"
    );
    // Nothing lost: the 20 outcomes were not written, so the jobs are
    // still pending and another worker finishes them.
    let s = stats(&server, &queue).await;
    assert_eq!(s.in_flight + s.processed, 20, "{s:?}");
    let r = runs.clone();
    let w2 = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(timings())
            .handle("t", move |_: Value, job: JobContext| {
                let r = r.clone();
                async move {
                    r.record(job.id());
                    Ok(())
                }
            }),
    );
    wait_stats(&server, &queue, "all processed", |s| {
        s.processed == 20 && s.in_flight == 0
    })
    .await;
    w2.stop().await;
    for id in ids {
        assert!(runs.count(&id) >= 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_least_privilege_acl_user_can_run_a_worker() {
    // The user documented in docs/configuration.md.
    let server = RedisServer::start();
    let rule = "on >s3cret ~jobstream:* +@stream +@sortedset +@hash +@set +@string +@list +@keyspace +@scripting +@connection +time +type +client|id +client|unblock +command|info +config|get";
    let mut args = vec!["ACL", "SETUSER", "jobs"];
    args.extend(rule.split(' '));
    server.cli(&args).unwrap();
    let url = format!("redis://jobs:s3cret@127.0.0.1:{}", server.port());
    let queue = unique_queue("acl");
    let runs = Runs::default();
    let r = runs.clone();
    let w = start(
        Worker::builder(&url)
            .queue(&queue)
            .timings(fast_timings())
            .handle("t", move |_: Value, job: JobContext| {
                let r = r.clone();
                async move {
                    r.record(job.id());
                    if job.attempt() == 1 {
                        return Err(JobError::retry("once"));
                    }
                    Ok(())
                }
            }),
    );
    let ids = enqueue(&server, &queue, 5).await;
    wait_stats(&server, &queue, "processed", |s| s.processed == 5).await;
    w.stop().await;
    for id in ids {
        assert_eq!(runs.count(&id), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_that_hides_the_queue_keys_from_scripts_fails_fast() {
    // Scripting is allowed but the keys are not: the refusal comes from
    // inside a script, as -ERR on every server, and is still fatal.
    let server = RedisServer::start();
    server
        .cli(&[
            "ACL", "SETUSER", "jobs", "on", ">s3cret", "~other:*", "+@all",
        ])
        .unwrap();
    refuses(
        &format!("redis://jobs:s3cret@127.0.0.1:{}", server.port()),
        "Fix:",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_loading_its_data_is_waited_for() {
    // A restart with a data set that takes seconds to load (key-load-delay):
    // every command gets -LOADING meanwhile. The worker rides it out and
    // finishes the jobs that were saved before the restart.
    let mut server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--key-load-delay",
        "100",
        "--loading-process-events-interval-bytes",
        "1024",
    ]);
    server
        .cli(&[
            "EVAL",
            "for i = 1, 20000 do redis.call('SET', 'filler:' .. i, 'v') end return 1",
            "0",
        ])
        .unwrap();
    let queue = unique_queue("loading");
    let ids = enqueue(&server, &queue, 5).await;
    server.cli(&["SAVE"]).unwrap();
    let (port, url) = (server.port(), server.url());
    // The restart blocks until the server answers PING again, that is
    // until it has loaded (about 2 s).
    let restarted = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    });
    let loading = jobstream_testkit::wait_until(Duration::from_secs(5), || {
        std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "INFO", "persistence"])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("loading:1"))
    });
    assert!(loading, "the server never reported loading");
    // The worker starts while every command gets -LOADING.
    let runs = Runs::default();
    let r = runs.clone();
    let w = start(
        Worker::builder(&url)
            .queue(&queue)
            .timings(fast_timings())
            .handle("t", move |_: Value, job: JobContext| {
                let r = r.clone();
                async move {
                    r.record(job.id());
                    Ok(())
                }
            }),
    );
    let server = restarted.await.unwrap();
    wait_stats(&server, &queue, "processed", |s| s.processed == 5).await;
    assert!(!w.task.is_finished(), "LOADING must not stop the worker");
    w.stop().await;
    for id in ids {
        assert_eq!(runs.count(&id), 1);
    }
}
