#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! End to end: jobs enqueued by the producer (or by plain XADD) run once,
//! delayed jobs wait, malformed entries go to dead and the worker carries on.

mod common;

use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, Worker};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Email {
    to: String,
}

fn email_worker(server: &RedisServer, queue: &str, runs: &Runs, concurrency: usize) -> Running {
    let runs = runs.clone();
    start(
        Worker::builder(&server.url())
            .queue(queue)
            .concurrency(concurrency)
            .timings(fast_timings())
            .handle("send_email", move |email: Email, job: JobContext| {
                let runs = runs.clone();
                async move {
                    assert!(email.to.contains('@'));
                    runs.record(job.id());
                    Ok(())
                }
            }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_enqueued_job_runs_once_and_is_acknowledged() {
    let server = RedisServer::start();
    let queue = unique_queue("pipeline");
    let producer = producer(&server).await;
    let mut ids = Vec::new();
    ids.push(
        producer
            .enqueue_named(&queue, "send_email", &Email { to: "a@x".into() })
            .await
            .unwrap(),
    );
    let jobs: Vec<NewJob> = (0..500)
        .map(|i| {
            NewJob::new(
                "send_email",
                &Email {
                    to: format!("{i}@x"),
                },
            )
            .unwrap()
        })
        .collect();
    ids.extend(producer.enqueue_many(&queue, jobs).await.unwrap());
    let runs = Runs::default();
    let worker = email_worker(&server, &queue, &runs, 16);
    let s = wait_stats(&server, &queue, "501 processed", |s| s.processed == 501).await;
    assert_eq!((s.ready, s.in_flight, s.dead), (0, 0, 0));
    assert_eq!(runs.distinct(), 501);
    assert_eq!(runs.total(), 501);
    assert!(ids.iter().all(|id| runs.count(id) == 1));
    assert_eq!(
        server
            .cli(&["XLEN", &format!("jobstream:{{{queue}}}:ready")])
            .unwrap()
            .trim(),
        "0"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_added_with_plain_xadd_runs() {
    let server = RedisServer::start();
    let queue = unique_queue("xadd");
    let payload = rmp_serde::to_vec_named(&Email { to: "py@x".into() }).unwrap();
    let key = format!("jobstream:{{{queue}}}:ready");
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &server.port().to_string(),
            "-x",
            "XADD",
            &key,
            "*",
            "type",
            "send_email",
            "payload",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(&payload)?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let runs = Runs::default();
    let worker = email_worker(&server, &queue, &runs, 2);
    wait_stats(&server, &queue, "processed", |s| s.processed == 1).await;
    assert_eq!(runs.total(), 1);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_picks_up_a_new_job_without_polling_delay() {
    let server = RedisServer::start();
    let queue = unique_queue("idle");
    let runs = Runs::default();
    let worker = email_worker(&server, &queue, &runs, 2);
    wait_stats(&server, &queue, "consumer registered", |s| s.consumers == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    producer(&server)
        .await
        .enqueue_named(&queue, "send_email", &Email { to: "a@x".into() })
        .await
        .unwrap();
    wait_stats(&server, &queue, "processed", |s| s.processed == 1).await;
    // Liveness bound only: far below the 500 ms block time, so the blocked
    // read (not a poll loop) delivered the job.
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_waits_for_its_time_then_runs() {
    let server = RedisServer::start();
    let queue = unique_queue("delayed");
    let runs = Runs::default();
    let worker = email_worker(&server, &queue, &runs, 2);
    let producer = producer(&server).await;
    let enqueued = Instant::now();
    let id = producer
        .enqueue_job(
            &queue,
            NewJob::new(
                "send_email",
                &Email {
                    to: "later@x".into(),
                },
            )
            .unwrap()
            .delay(Duration::from_millis(800)),
        )
        .await
        .unwrap();
    let s = stats(&server, &queue).await;
    assert_eq!(s.scheduled, 1);
    wait_stats(&server, &queue, "processed", |s| s.processed == 1).await;
    assert!(
        enqueued.elapsed() >= Duration::from_millis(800),
        "ran early: {:?}",
        enqueued.elapsed()
    );
    assert_eq!(
        runs.count(&id),
        1,
        "the delayed job keeps the id the producer returned"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_go_to_dead_with_a_reason_and_the_worker_carries_on() {
    let server = RedisServer::start();
    let queue = unique_queue("malformed");
    let runs = Runs::default();
    let worker = email_worker(&server, &queue, &runs, 4);
    let key = format!("jobstream:{{{queue}}}:ready");
    let good = rmp_serde::to_vec_named(&Email { to: "ok@x".into() }).unwrap();
    let wrong_shape = rmp_serde::to_vec_named(&vec![1, 2, 3]).unwrap();
    let p = server.port().to_string();
    let xadd = |args: &[&str]| {
        let mut all = vec!["-p", p.as_str(), "XADD", key.as_str(), "*"];
        all.extend_from_slice(args);
        assert!(
            std::process::Command::new("redis-cli")
                .args(&all)
                .output()
                .unwrap()
                .status
                .success()
        );
    };
    xadd(&["payload", "x"]); // no type
    xadd(&["type", "send_email", "payload", "\u{1}\u{2}"]); // not one MessagePack value
    xadd(&["type", "send_email"]); // no payload
    xadd(&["type", "no_such_handler", "payload", "1"]); // unknown type (payload: fixint 49)
    let producer = producer(&server).await;
    producer
        .enqueue_job(
            &queue,
            NewJob::from_msgpack("send_email", wrong_shape).unwrap(),
        )
        .await
        .unwrap();
    producer
        .enqueue_job(&queue, NewJob::from_msgpack("send_email", good).unwrap())
        .await
        .unwrap();
    let s = wait_stats(&server, &queue, "5 dead, 1 processed", |s| {
        s.dead == 5 && s.processed == 1
    })
    .await;
    assert_eq!((s.ready, s.in_flight), (0, 0));
    let dead = producer
        .inspector()
        .dead_list(&queue, &Default::default())
        .await
        .unwrap();
    let mut reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "malformed",
            "malformed",
            "malformed",
            "malformed",
            "unknown_type"
        ]
    );
    assert!(
        dead.iter()
            .all(|d| !d.error.is_empty() && !d.job_id.is_empty())
    );
    assert_eq!(runs.total(), 1);
    worker.stop().await;
}

#[tokio::test]
async fn invalid_input_gets_a_clear_error_before_anything_is_sent() {
    let server = RedisServer::start();
    let producer = producer(&server).await;
    let err = producer
        .enqueue_named("bad{queue}", "t", &1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("hash tag"), "{err}");
    let big = vec![7u8; 600 * 1024];
    let err = producer.enqueue_named("q", "t", &big).await.unwrap_err();
    assert!(err.to_string().contains("exceeds the limit"), "{err}");
    struct Unserializable;
    impl Serialize for Unserializable {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("cannot serialize this"))
        }
    }
    let err = producer
        .enqueue_named("q", "t", &Unserializable)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot serialize this"), "{err}");
    assert!(NewJob::new("", &1).is_err());
    assert!(NewJob::new("t", &1).unwrap().field("attempt", "3").is_err());
    assert_eq!(
        server.cli(&["DBSIZE"]).unwrap().trim(),
        "0",
        "nothing was written"
    );
    let err = Worker::builder(&server.url())
        .queue("q")
        .build()
        .err()
        .unwrap();
    assert!(err.to_string().contains("handler"), "{err}");
    let _ = JobError::retry("unused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_stops_gracefully_when_the_future_completes() {
    let server = RedisServer::start();
    let queue = unique_queue("until");
    let runs = Runs::default();
    let r = runs.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let worker = jobstream_worker::Worker::builder(&server.url())
        .queue(&queue)
        .timings(fast_timings())
        .handle(
            "t",
            move |_: serde_json::Value, job: jobstream_worker::JobContext| {
                let r = r.clone();
                async move {
                    r.record(job.id());
                    Ok(())
                }
            },
        )
        .build()
        .unwrap();
    let task = tokio::spawn(worker.run_until(async {
        let _ = rx.await;
    }));
    let p = producer(&server).await;
    let id = p
        .enqueue_named(&queue, "t", &serde_json::json!({}))
        .await
        .unwrap();
    wait_stats(&server, &queue, "processed", |s| s.processed == 1).await;
    assert!(!task.is_finished());
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run_until must return once its future completes")
        .unwrap()
        .unwrap();
    assert_eq!(runs.count(&id), 1);
}

/// Records "name:before" and "name:after:<ok|error class>" around each job;
/// `veto` stops jobs whose payload says so without running the handler.
struct Recorder {
    name: &'static str,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    veto: bool,
}

impl jobstream_worker::Middleware for Recorder {
    async fn around(
        &self,
        job: JobContext,
        next: jobstream_worker::Next<'_>,
    ) -> jobstream_worker::JobResult {
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:before", self.name));
        if self.veto && job.payload::<String>().is_ok_and(|p| p == "veto") {
            return Err(JobError::discard("vetoed by middleware"));
        }
        let result = next.run(job).await;
        let how = match &result {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.class().to_owned(),
        };
        self.log
            .lock()
            .unwrap()
            .push(format!("{}:after:{how}", self.name));
        result
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn middleware_runs_around_every_job_in_order_and_can_stop_one() {
    let server = RedisServer::start();
    let queue = unique_queue("middleware");
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let runs = Runs::default();
    let r = runs.clone();
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .concurrency(1)
            .timings(fast_timings())
            .middleware(Recorder {
                name: "outer",
                log: log.clone(),
                veto: false,
            })
            .middleware(Recorder {
                name: "inner",
                log: log.clone(),
                veto: true,
            })
            .handle("t", move |p: String, _job: JobContext| {
                let r = r.clone();
                async move {
                    r.record(&p);
                    if p == "fail" {
                        return Err(JobError::permanent("no").with_class("bad_input"));
                    }
                    Ok(())
                }
            }),
    );
    let p = producer(&server).await;
    for payload in ["ok", "fail", "veto"] {
        p.enqueue_named(&queue, "t", &payload).await.unwrap();
        wait_stats(&server, &queue, "settled", |s| {
            s.in_flight == 0 && s.ready == 0
        })
        .await;
    }
    let s = wait_stats(&server, &queue, "all settled", |s| {
        s.processed + s.dead + s.discarded == 3
    })
    .await;
    w.stop().await;
    assert_eq!((s.processed, s.dead, s.discarded), (1, 1, 1), "{s:?}");
    assert_eq!(
        (runs.count("ok"), runs.count("fail"), runs.count("veto")),
        (1, 1, 0)
    );
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "outer:before",
            "inner:before",
            "inner:after:ok",
            "outer:after:ok",
            "outer:before",
            "inner:before",
            "inner:after:bad_input",
            "outer:after:bad_input",
            "outer:before",
            "inner:before",
            "outer:after:discard",
        ]
    );
}
