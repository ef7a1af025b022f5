#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Rate limits per job type and per rate key, and holds after an upstream
//! 429 (`JobError::rate_limited`), against a real server with several
//! workers: limited jobs start at no more than their limit (plus the
//! burst) and close to it under a backlog, others are not slowed, a job
//! held back spends no attempt, and nothing is lost.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobResult, QueueOptions, RateLimit, Worker};
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    let seed = std::env::var("JOBSTREAM_THROTTLE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (JOBSTREAM_THROTTLE_SEED={seed} repeats it)");
    seed
}

/// A job start: (job type, rate key, when, attempt).
type Start = (String, Option<String>, Instant, u32);

fn recorder(starts: &Arc<Mutex<Vec<Start>>>, job: &JobContext) {
    starts.lock().unwrap().push((
        job.job_type().to_owned(),
        job.rate_key().map(str::to_owned),
        Instant::now(),
        job.attempt(),
    ));
}

/// Starts within the span of the first to the last: (count, span in s).
fn rate_of(starts: &[&Start]) -> (f64, f64) {
    let first = starts.iter().map(|s| s.2).min().unwrap();
    let last = starts.iter().map(|s| s.2).max().unwrap();
    (starts.len() as f64, (last - first).as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_per_job_type_slows_that_type_only_and_spends_no_attempt() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rate: u32 = rng.random_range(20..=40);
    let burst: u32 = rng.random_range(1..=4);
    let run = Duration::from_secs(5);
    let server = RedisServer::start();
    let queue = unique_queue("type-rate");
    let producer = producer(&server).await;
    let backlog = rate as usize * 10;
    let mut jobs: Vec<NewJob> = (0..backlog)
        .map(|i| NewJob::new("slow", &i).unwrap())
        .collect();
    jobs.extend((0..400).map(|i| NewJob::new("fast", &i).unwrap()));
    producer.enqueue_many(&queue, jobs).await.unwrap();
    let starts: Arc<Mutex<Vec<Start>>> = Arc::default();
    let limit = RateLimit::per_second(rate).unwrap().burst(burst);
    let began = Instant::now();
    let workers: Vec<Running> = (0..3)
        .map(|_| {
            let (s1, s2) = (starts.clone(), starts.clone());
            start(
                Worker::builder(&server.url())
                    .timings(fast_timings())
                    .concurrency(8)
                    .queue_with(&queue, QueueOptions::new().type_rate_limit("slow", limit))
                    .handle("slow", move |_: usize, job: JobContext| {
                        recorder(&s1, &job);
                        std::future::ready(JobResult::Ok(()))
                    })
                    .handle("fast", move |_: usize, job: JobContext| {
                        recorder(&s2, &job);
                        std::future::ready(JobResult::Ok(()))
                    }),
            )
        })
        .collect();
    tokio::time::sleep(run).await;
    let snapshot = starts.lock().unwrap().clone();
    let of = |t: &str| snapshot.iter().filter(|s| s.0 == t).collect::<Vec<_>>();
    let fast = of("fast");
    assert_eq!(fast.len(), 400, "seed {seed}: every fast job ran");
    let fast_done = fast.iter().map(|s| s.2).max().unwrap() - began;
    assert!(
        fast_done < Duration::from_secs(3),
        "seed {seed}: the unlimited type was slowed: its last job started after {fast_done:?}"
    );
    let slow = of("slow");
    let (n, span) = rate_of(&slow);
    let most = f64::from(burst) + f64::from(rate) * (span + 0.1) + 1.0;
    eprintln!(
        "seed {seed}: {n} slow starts in {span:.2} s at {rate}/s burst {burst}: {:.1}/s",
        n / span.max(0.001)
    );
    assert!(
        n <= most,
        "seed {seed}: {n} starts in {span:.2} s (at most {most:.0})"
    );
    assert!(
        n >= 0.8 * f64::from(rate) * (run.as_secs_f64() - 0.5),
        "seed {seed}: only {n} slow starts in {run:?} at {rate}/s with a backlog"
    );
    assert!(
        snapshot.iter().all(|s| s.3 == 1),
        "seed {seed}: a job held back must spend no attempt"
    );
    let s = stats(&server, &queue).await;
    assert_eq!((s.retried, s.dead_total), (0, 0), "seed {seed}: {s:?}");
    assert!(s.throttled > 0, "seed {seed}: {s:?}");
    for w in workers {
        w.stop().await;
    }
    // The books balance: every deferral was counted.
    let books = store(&server, &queue).books().await.unwrap();
    assert!(books.balances(), "seed {seed}: {books:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rate_key_gets_its_own_bucket() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rate: u32 = rng.random_range(8..=15);
    let burst: u32 = rng.random_range(1..=3);
    let run = Duration::from_secs(4);
    let server = RedisServer::start();
    let queue = unique_queue("key-rate");
    let producer = producer(&server).await;
    let mut jobs = Vec::new();
    for i in 0..(rate as usize * 8) {
        jobs.push(
            NewJob::new("call", &i)
                .unwrap()
                .rate_key("customer-a")
                .unwrap(),
        );
        jobs.push(
            NewJob::new("call", &i)
                .unwrap()
                .rate_key("customer-b")
                .unwrap(),
        );
    }
    // Jobs without a rate key are not limited by the per-key limit.
    jobs.extend((0..100).map(|i| NewJob::new("call", &i).unwrap()));
    producer.enqueue_many(&queue, jobs).await.unwrap();
    let starts: Arc<Mutex<Vec<Start>>> = Arc::default();
    let limit = RateLimit::per_second(rate).unwrap().burst(burst);
    let workers: Vec<Running> = (0..2)
        .map(|_| {
            let starts = starts.clone();
            start(
                Worker::builder(&server.url())
                    .timings(fast_timings())
                    .concurrency(8)
                    .queue_with(&queue, QueueOptions::new().key_rate_limit(limit))
                    .handle("call", move |_: usize, job: JobContext| {
                        recorder(&starts, &job);
                        std::future::ready(JobResult::Ok(()))
                    }),
            )
        })
        .collect();
    tokio::time::sleep(run).await;
    let snapshot = starts.lock().unwrap().clone();
    assert_eq!(
        snapshot.iter().filter(|s| s.1.is_none()).count(),
        100,
        "seed {seed}: jobs without a rate key all ran"
    );
    for key in ["customer-a", "customer-b"] {
        let mine: Vec<&Start> = snapshot
            .iter()
            .filter(|s| s.1.as_deref() == Some(key))
            .collect();
        let (n, span) = rate_of(&mine);
        let most = f64::from(burst) + f64::from(rate) * (span + 0.1) + 1.0;
        eprintln!("seed {seed}: {key}: {n} starts in {span:.2} s at {rate}/s burst {burst}");
        assert!(
            n <= most,
            "seed {seed}: {key}: {n} in {span:.2} s (at most {most:.0})"
        );
        // Each key near the limit on its own: one shared bucket would give
        // each about half of it.
        assert!(
            n >= 0.75 * f64::from(rate) * (run.as_secs_f64() - 0.5),
            "seed {seed}: {key}: only {n} starts in {run:?} at {rate}/s"
        );
    }
    assert!(snapshot.iter().all(|s| s.3 == 1), "seed {seed}");
    for w in workers {
        w.stop().await;
    }
    let s = stats(&server, &queue).await;
    assert_eq!((s.retried, s.dead_total), (0, 0), "seed {seed}: {s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_its_key_fleet_wide_and_loses_nothing() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let hold = Duration::from_secs(2);
    let server = RedisServer::start();
    let queue = unique_queue("hold");
    let producer = producer(&server).await;
    let (a_jobs, b_jobs) = (30usize, 150usize);
    // Interleaved, so key A has jobs waiting all along.
    let mut jobs = Vec::new();
    for i in 0..b_jobs {
        if i % 5 == 0 && i / 5 < a_jobs {
            jobs.push(NewJob::new("call", &i).unwrap().rate_key("api-a").unwrap());
        }
        jobs.push(NewJob::new("call", &i).unwrap().rate_key("api-b").unwrap());
    }
    let total = jobs.len();
    assert_eq!(total, a_jobs + b_jobs);
    let ids: Vec<String> = jobs.iter().map(|j| j.id().to_owned()).collect();
    producer.enqueue_many(&queue, jobs).await.unwrap();
    // Which run gets the 429: one of key A's, picked by the seed.
    let refuse_at: usize = rng.random_range(0..5);
    let starts: Arc<Mutex<Vec<Start>>> = Arc::default();
    let completed: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let refused_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let refused = Arc::new(AtomicBool::new(false));
    let a_seen = Arc::new(Mutex::new(0usize));
    let workers: Vec<Running> = (0..3)
        .map(|_| {
            let (starts, completed) = (starts.clone(), completed.clone());
            let (refused, refused_at, a_seen) =
                (refused.clone(), refused_at.clone(), a_seen.clone());
            start(
                Worker::builder(&server.url())
                    .timings(fast_timings())
                    .concurrency(2)
                    .queue(&queue)
                    .handle("call", move |_: usize, job: JobContext| {
                        recorder(&starts, &job);
                        let (completed, refused, refused_at, a_seen) = (
                            completed.clone(),
                            refused.clone(),
                            refused_at.clone(),
                            a_seen.clone(),
                        );
                        async move {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            if job.rate_key() == Some("api-a") {
                                let n = {
                                    let mut seen = a_seen.lock().unwrap();
                                    *seen += 1;
                                    *seen
                                };
                                if n > refuse_at && !refused.swap(true, Ordering::SeqCst) {
                                    *refused_at.lock().unwrap() = Some(Instant::now());
                                    return Err(JobError::rate_limited(hold));
                                }
                            }
                            *completed
                                .lock()
                                .unwrap()
                                .entry(job.id().to_owned())
                                .or_default() += 1;
                            Ok(())
                        }
                    }),
            )
        })
        .collect();
    wait_stats(&server, &queue, "every job processed", |s| {
        s.processed == total as u64
    })
    .await;
    let t0 = refused_at.lock().unwrap().expect("the 429 happened");
    let snapshot = starts.lock().unwrap().clone();
    // Other workers learn of the hold within a poll (250 ms) and a round
    // trip; jobs already running go on. From then to the hold's end, no
    // job of key A starts; key B's keep running.
    let (from, to) = (
        t0 + Duration::from_millis(500),
        t0 + hold - Duration::from_millis(100),
    );
    let during = |key: &str| {
        snapshot
            .iter()
            .filter(|s| s.1.as_deref() == Some(key) && s.2 > from && s.2 < to)
            .count()
    };
    eprintln!(
        "seed {seed}: during the hold: {} of A, {} of B",
        during("api-a"),
        during("api-b")
    );
    assert_eq!(during("api-a"), 0, "seed {seed}: key A started while held");
    assert!(during("api-b") > 10, "seed {seed}: key B must keep running");
    // After the hold, A's jobs run: the last of them started after it.
    let last_a = snapshot
        .iter()
        .filter(|s| s.1.as_deref() == Some("api-a"))
        .map(|s| s.2)
        .max()
        .unwrap();
    assert!(
        last_a >= t0 + hold - Duration::from_millis(300),
        "seed {seed}"
    );
    // No attempt spent, nothing lost, each job completed exactly once.
    assert!(
        snapshot.iter().all(|s| s.3 == 1),
        "seed {seed}: an attempt was spent"
    );
    let completed = completed.lock().unwrap().clone();
    assert_eq!(completed.len(), total, "seed {seed}");
    for id in &ids {
        assert_eq!(completed.get(id), Some(&1), "seed {seed}: job {id}");
    }
    for w in workers {
        w.stop().await;
    }
    let s = stats(&server, &queue).await;
    assert_eq!(
        (s.processed, s.retried, s.dead_total, s.held),
        (total as u64, 0, 0, 1),
        "seed {seed}: {s:?}"
    );
    assert!(
        s.throttled > 0,
        "seed {seed}: key A's waiting jobs were deferred: {s:?}"
    );
    let books = store(&server, &queue).books().await.unwrap();
    assert!(books.balances(), "seed {seed}: {books:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_rate_keys_are_dead_as_malformed_or_stay_in_the_queues_slot() {
    let server = RedisServer::start();
    let queue = unique_queue("hostile-key");
    let url = server.url();
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ready = format!("jobstream:{{{queue}}}:ready");
    let payload = rmp_serde::to_vec(&1u32).unwrap();
    let bad: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![b'k'; 257],
        vec![b'k'; 100_000],
        vec![0xff, 0xfe, b'}', b'{'],
    ];
    for key in &bad {
        let _: String = redis::cmd("XADD")
            .arg(&ready)
            .arg("*")
            .arg("type")
            .arg("call")
            .arg("payload")
            .arg(&payload)
            .arg("rate_key")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Valid, though hostile: braces, a newline, 256 bytes.
    let braces = "}{evil}:{x}\n".to_owned();
    let long = "é".repeat(128);
    let producer = producer(&server).await;
    for key in [&braces, &long] {
        producer
            .enqueue_job(
                &queue,
                NewJob::new("call", &2u32)
                    .unwrap()
                    .rate_key(key.as_str())
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let held_once = Arc::new(AtomicBool::new(false));
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let worker = {
        let (held_once, ran) = (held_once.clone(), ran.clone());
        start(
            Worker::builder(&url)
                .timings(fast_timings())
                .queue_with(
                    &queue,
                    QueueOptions::new().key_rate_limit(RateLimit::per_second(1000).unwrap()),
                )
                .handle("call", move |_: u32, job: JobContext| {
                    let first = !held_once.swap(true, Ordering::SeqCst);
                    let key = job.rate_key().map(str::to_owned);
                    ran.lock().unwrap().push(key.clone().unwrap_or_default());
                    std::future::ready(if first {
                        Err(JobError::rate_limited(Duration::from_millis(300)))
                    } else {
                        Ok(())
                    })
                }),
        )
    };
    let s = wait_stats(&server, &queue, "all settled", |s| {
        s.dead_total == bad.len() as u64 && s.processed == 2
    })
    .await;
    assert_eq!((s.held, s.retried), (1, 0), "{s:?}");
    worker.stop().await;
    // The dead letters say why, and the worker never panicked.
    type Entry = (String, Vec<(Vec<u8>, Vec<u8>)>);
    let dead: Vec<Entry> = redis::cmd("XRANGE")
        .arg(format!("jobstream:{{{queue}}}:dead"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(dead.len(), bad.len());
    for (_, fields) in &dead {
        let get = |n: &str| {
            fields
                .iter()
                .find(|(k, _)| k == n.as_bytes())
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("reason").as_deref(), Some("malformed"), "{fields:?}");
        let error = get("error").unwrap();
        assert!(error.contains("rate_key"), "{error}");
    }
    // Every key the hostile keys made carries the queue's hash tag first.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    for k in keys
        .iter()
        .filter(|k| k.contains("evil") || k.contains('é'))
    {
        assert!(k.starts_with(&format!("jobstream:{{{queue}}}:")), "{k:?}");
    }
    let holds: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("jobstream:{{{queue}}}:holds"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(holds.len() <= 1, "{holds:?}");
    let ran = ran.lock().unwrap().clone();
    assert_eq!(ran.len(), 3, "{ran:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_with_records_are_throttled_before_they_start_and_a_429_retries_them() {
    let server = RedisServer::start();
    let queue = unique_queue("tracked-rate");
    let producer = producer(&server).await;
    let keep = Duration::from_secs(60);
    let jobs: Vec<NewJob> = (0..6)
        .map(|i| {
            NewJob::new("call", &i)
                .unwrap()
                .rate_key("api")
                .unwrap()
                .keep_record(keep)
        })
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id().to_owned()).collect();
    producer.enqueue_many(&queue, jobs).await.unwrap();
    let refused = Arc::new(AtomicBool::new(false));
    let attempts: Arc<Mutex<Vec<u32>>> = Arc::default();
    let worker = {
        let (refused, attempts) = (refused.clone(), attempts.clone());
        start(
            Worker::builder(&server.url())
                .timings(fast_timings())
                .queue_with(
                    &queue,
                    QueueOptions::new().key_rate_limit(RateLimit::per_second(10).unwrap().burst(1)),
                )
                .handle("call", move |_: usize, job: JobContext| {
                    attempts.lock().unwrap().push(job.attempt());
                    let first = !refused.swap(true, Ordering::SeqCst);
                    std::future::ready(if first {
                        Err(JobError::rate_limited(Duration::from_millis(300)))
                    } else {
                        JobResult::Ok(())
                    })
                }),
        )
    };
    for id in &ids {
        let r = producer
            .wait_for(&queue, id, Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(r.state, jobstream_core::JobState::Completed, "{r:?}");
    }
    worker.stop().await;
    // A tracked job waits for its hold as a retry (its record stays
    // true): one attempt spent, by that job only.
    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(attempts.len(), 7, "{attempts:?}");
    assert_eq!(
        attempts.iter().filter(|a| **a == 2).count(),
        1,
        "{attempts:?}"
    );
    let s = stats(&server, &queue).await;
    assert_eq!((s.processed, s.retried, s.held), (6, 1, 0), "{s:?}");
    assert!(s.throttled > 0, "{s:?}");
    let books = store(&server, &queue).books().await.unwrap();
    assert!(books.balances(), "{books:?}");
}

/// `calls` of `command` in `INFO commandstats` (scripts' own calls count).
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server.cli(&["INFO", "commandstats"]).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_no_limit_or_hold_applies_to_cost_no_script_call() {
    let server = RedisServer::start();
    let queue = unique_queue("no-limit");
    let producer = producer(&server).await;
    // Rate keys, but no per-key limit and no hold; a type limit for
    // another type.
    let jobs: Vec<NewJob> = (0..300)
        .map(|i| {
            NewJob::new("call", &i)
                .unwrap()
                .rate_key(format!("k{}", i % 7))
                .unwrap()
        })
        .collect();
    producer.enqueue_many(&queue, jobs).await.unwrap();
    // `throttle-6` and `hold-4` read TIME: count it around the run.
    let before = calls(&server, "time");
    let worker = start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .queue_with(
                &queue,
                QueueOptions::new().type_rate_limit("other", RateLimit::per_second(1).unwrap()),
            )
            .handle("call", |_: usize, _: JobContext| {
                std::future::ready(JobResult::Ok(()))
            }),
    );
    wait_stats(&server, &queue, "all processed", |s| s.processed == 300).await;
    worker.stop().await;
    let time_calls = calls(&server, "time") - before;
    // The worker reads the server's clock at start (and once a minute).
    assert!(time_calls < 5, "{time_calls} TIME calls for 300 jobs");
    let s = stats(&server, &queue).await;
    assert_eq!(s.throttled, 0, "{s:?}");
}
