#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Groups against a real server: jobs of one group run one at a time (or
//! `group_concurrency` at a time), in enqueue order, across several
//! workers, retries included; groups take turns, so a small group is not
//! stuck behind a big one; jobs that skip the enqueue gate (delayed, hand
//! written) still wait their turn; bad group names are malformed.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobResult, QueueOptions, Worker};
use rand::{Rng, SeedableRng};

fn seed() -> u64 {
    std::env::var("JOBSTREAM_GROUPS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random)
}

/// One run of a handler: group, sequence number, attempt, start, end.
#[derive(Clone, Debug)]
struct Run {
    group: String,
    seq: u32,
    attempt: u32,
    start: Instant,
    end: Instant,
}

type Log = Arc<Mutex<Vec<Run>>>;

/// A worker whose handler records each run, sleeps `work`, and fails the
/// first attempt of every sequence number in `fail_first`.
fn worker(
    server: &RedisServer,
    queue: &str,
    log: &Log,
    options: QueueOptions,
    fail_first: Arc<Vec<u32>>,
    work: Duration,
) -> Running {
    let log = log.clone();
    start(
        Worker::builder(&server.url())
            .timings(fast_timings())
            .concurrency(8)
            .queue_with(queue, options)
            .handle("step", move |seq: u32, job: JobContext| {
                let log = log.clone();
                let fail_first = fail_first.clone();
                async move {
                    let start = Instant::now();
                    tokio::time::sleep(work).await;
                    log.lock().unwrap().push(Run {
                        group: job.group().unwrap_or("").to_owned(),
                        seq,
                        attempt: job.attempt(),
                        start,
                        end: Instant::now(),
                    });
                    if job.attempt() == 1 && fail_first.contains(&seq) {
                        return Err(JobError::retry_after(
                            Duration::from_millis(30),
                            "fails once",
                        ));
                    }
                    JobResult::Ok(())
                }
            }),
    )
}

/// A worker with the defaults: k = 1, no failures, no work time.
fn plain_worker(server: &RedisServer, queue: &str, log: &Log) -> Running {
    worker(
        server,
        queue,
        log,
        QueueOptions::new(),
        Arc::default(),
        Duration::ZERO,
    )
}

/// A plain connection, for what the tests write by hand.
async fn conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Waits until `n` successful runs are logged (or panics after `limit`).
async fn wait_runs(log: &Log, n: usize, fails: usize, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    loop {
        let len = log.lock().unwrap().len();
        if len >= n + fails {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: only {len} of {} runs after {limit:?}",
            n + fails
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Each group's runs: never two at once beyond `k`, and the successful
/// ones in sequence order (for k = 1).
fn check_groups(log: &[Run], k: usize, what: &str) -> usize {
    let mut by_group: HashMap<&str, Vec<&Run>> = HashMap::new();
    for r in log {
        by_group.entry(&r.group).or_default().push(r);
    }
    let mut most = 0;
    for (group, runs) in &by_group {
        // At every run's start, how many runs of the group were running.
        for r in runs {
            let running = runs
                .iter()
                .filter(|o| o.start <= r.start && o.end > r.start)
                .count();
            most = most.max(running);
            assert!(
                running <= k,
                "{what}: group {group} had {running} runs at once (limit {k})"
            );
        }
        if k == 1 {
            let mut sorted: Vec<&&Run> = runs.iter().collect();
            sorted.sort_by_key(|r| r.start);
            let seqs: Vec<(u32, u32)> = sorted.iter().map(|r| (r.seq, r.attempt)).collect();
            let mut expected = seqs.clone();
            expected.sort();
            assert_eq!(
                seqs, expected,
                "{what}: group {group} ran out of order (seq, attempt)"
            );
        }
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_group_runs_in_order_one_at_a_time_across_workers_retries_included() {
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let groups: u32 = rng.random_range(3..=6);
    let per_group: u32 = rng.random_range(15..=40);
    let fail_first: Vec<u32> = (0..per_group).filter(|_| rng.random_bool(0.15)).collect();
    let server = RedisServer::start();
    let queue = unique_queue("ordered");
    let producer = producer(&server).await;
    // Interleaved, as tenants' jobs arrive.
    let mut jobs = Vec::new();
    for seq in 0..per_group {
        for g in 0..groups {
            jobs.push(
                NewJob::new("step", &seq)
                    .unwrap()
                    .group(format!("tenant-{g}"))
                    .unwrap(),
            );
        }
    }
    producer.enqueue_many(&queue, jobs).await.unwrap();
    let log: Log = Arc::default();
    let fail_first = Arc::new(fail_first);
    let workers: Vec<Running> = (0..3)
        .map(|_| {
            worker(
                &server,
                &queue,
                &log,
                QueueOptions::new(),
                fail_first.clone(),
                Duration::from_millis(rng.random_range(1..=4)),
            )
        })
        .collect();
    let total = (groups * per_group) as usize;
    let fails = (groups as usize) * fail_first.len();
    wait_runs(
        &log,
        total,
        fails,
        Duration::from_secs(60),
        &format!("seed {seed}"),
    )
    .await;
    for w in workers {
        w.stop().await;
    }
    let log = log.lock().unwrap().clone();
    assert_eq!(log.len(), total + fails, "seed {seed}: every run once");
    check_groups(&log, 1, &format!("seed {seed}"));
    let s = stats(&server, &queue).await;
    assert_eq!(
        (
            s.processed,
            s.retried,
            s.groups,
            s.group_waiting,
            s.ready,
            s.in_flight
        ),
        (total as u64, fails as u64, 0, 0, 0, 0),
        "seed {seed}: {s:?}"
    );
    let books = producer.inspector().books(&queue).await.unwrap();
    assert!(books.balances(), "seed {seed}: {books:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_concurrency_caps_each_group_and_is_reached() {
    let server = RedisServer::start();
    let queue = unique_queue("capped");
    let log: Log = Arc::default();
    let options = QueueOptions::new().group_concurrency(3);
    let workers: Vec<Running> = (0..2)
        .map(|_| {
            worker(
                &server,
                &queue,
                &log,
                options.clone(),
                Arc::default(),
                Duration::from_millis(30),
            )
        })
        .collect();
    // Let a worker write the setting before the producer reads it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let producer = producer(&server).await;
    let jobs = (0..60u32)
        .map(|i| {
            NewJob::new("step", &i)
                .unwrap()
                .group(format!("g{}", i % 2))
                .unwrap()
        })
        .collect();
    producer.enqueue_many(&queue, jobs).await.unwrap();
    wait_runs(&log, 60, 0, Duration::from_secs(30), "capped").await;
    for w in workers {
        w.stop().await;
    }
    let most = check_groups(&log.lock().unwrap(), 3, "capped");
    assert_eq!(most, 3, "two workers with 16 slots reach the cap of 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_group_waits_behind_a_few_jobs_of_a_big_one_not_its_backlog() {
    let server = RedisServer::start();
    let queue = unique_queue("fair");
    let producer = producer(&server).await;
    // JOBSTREAM_FAIR_BACKLOG=100000 for the measurement.
    let backlog: u32 = std::env::var("JOBSTREAM_FAIR_BACKLOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let big = (0..backlog)
        .map(|i| NewJob::new("step", &i).unwrap().group("big").unwrap())
        .collect();
    producer.enqueue_many(&queue, big).await.unwrap();
    let s = stats(&server, &queue).await;
    assert_eq!(
        (s.ready, s.group_waiting, s.groups),
        (1, u64::from(backlog) - 1, 1),
        "the big group's backlog waits outside ready: {s:?}"
    );
    let log: Log = Arc::default();
    let options = QueueOptions::new().group_concurrency(2);
    let w = worker(
        &server,
        &queue,
        &log,
        options,
        Arc::default(),
        Duration::from_millis(5),
    );
    wait_runs(&log, 50, 0, Duration::from_secs(30), "fair warm-up").await;
    let sent = Instant::now();
    let before = log.lock().unwrap().len();
    producer
        .enqueue_job(
            &queue,
            NewJob::new("step", &u32::MAX)
                .unwrap()
                .group("small")
                .unwrap(),
        )
        .await
        .unwrap();
    let ran = loop {
        if let Some(r) = log.lock().unwrap().iter().find(|r| r.group == "small") {
            break r.start;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(20),
            "the small group's job never ran"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let big_between = log
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.group == "big" && r.start >= sent && r.start < ran)
        .count();
    let waited = ran - sent;
    eprintln!(
        "small group's job waited {waited:?}, behind {big_between} jobs of the big group ({} done before it was sent)",
        before
    );
    // Behind at most the big group's 2 admitted jobs (plus the ones that
    // were already being released as it arrived).
    assert!(
        big_between <= 4,
        "the small group's job waited behind {big_between} jobs of the big one"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_hand_written_jobs_of_a_group_wait_their_turn() {
    let server = RedisServer::start();
    let queue = unique_queue("gate");
    let producer = producer(&server).await;
    // Jobs that skip group-enqueue-6: delayed ones (they reach ready
    // through promotion) and plain XADDs from another language.
    let delayed = (0..20u32)
        .map(|i| {
            NewJob::new("step", &i)
                .unwrap()
                .group("acct")
                .unwrap()
                .delay(Duration::from_millis(200))
        })
        .collect();
    producer.enqueue_many(&queue, delayed).await.unwrap();
    let mut conn = conn(&server).await;
    for i in 20..40u32 {
        let payload = rmp_serde::to_vec(&i).unwrap();
        let _: String = redis::cmd("XADD")
            .arg(format!("jobstream:{{{queue}}}:ready"))
            .arg("*")
            .arg("type")
            .arg("step")
            .arg("payload")
            .arg(payload)
            .arg("group")
            .arg("acct")
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let log: Log = Arc::default();
    let workers: Vec<Running> = (0..2)
        .map(|_| {
            worker(
                &server,
                &queue,
                &log,
                QueueOptions::new(),
                Arc::default(),
                Duration::from_millis(10),
            )
        })
        .collect();
    wait_runs(&log, 40, 0, Duration::from_secs(30), "gate").await;
    for w in workers {
        w.stop().await;
    }
    let log = log.lock().unwrap().clone();
    // One at a time (their order is the order workers met them: these
    // jobs skipped the gate that keeps enqueue order).
    let most = check_groups(
        &log.iter()
            .cloned()
            .map(|mut r| {
                r.seq = 0;
                r
            })
            .collect::<Vec<_>>(),
        1,
        "gate",
    );
    assert_eq!(most, 1);
    let mut seqs: Vec<u32> = log.iter().map(|r| r.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (0..40).collect::<Vec<_>>(), "each job ran once");
    let s = stats(&server, &queue).await;
    assert_eq!(
        (s.processed, s.groups, s.group_waiting),
        (40, 0, 0),
        "{s:?}"
    );
    let books = producer.inspector().books(&queue).await.unwrap();
    assert!(books.balances(), "{books:?}");
    // Workers met jobs of a busy group and moved them behind it.
    assert!(books.group_parked > 0, "{books:?}");
}

#[tokio::test]
async fn a_group_name_out_of_bounds_is_refused_or_malformed() {
    assert!(NewJob::new("step", &1).unwrap().group("").is_err());
    assert!(
        NewJob::new("step", &1)
            .unwrap()
            .group("x".repeat(257))
            .is_err()
    );
    assert!(
        NewJob::new("step", &1)
            .unwrap()
            .group("x".repeat(256))
            .is_ok()
    );
    let server = RedisServer::start();
    let queue = unique_queue("badgroup");
    let mut conn = conn(&server).await;
    let long = "y".repeat(300);
    for group in ["", long.as_str()] {
        let _: String = redis::cmd("XADD")
            .arg(format!("jobstream:{{{queue}}}:ready"))
            .arg("*")
            .arg("type")
            .arg("step")
            .arg("payload")
            .arg(rmp_serde::to_vec(&1u32).unwrap())
            .arg("group")
            .arg(group)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let log: Log = Arc::default();
    let w = plain_worker(&server, &queue, &log);
    let s = wait_stats(&server, &queue, "two dead", |s| s.dead == 2).await;
    w.stop().await;
    assert_eq!((s.processed, s.groups), (0, 0), "{s:?}");
    assert!(log.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_partitioned_by_group_keeps_each_groups_order() {
    let server = RedisServer::start();
    let base = unique_queue("parts");
    let parts: Vec<String> = (0..4).map(|i| format!("{base}.{i}")).collect();
    let producer = producer(&server).await;
    for seq in 0..20u32 {
        for g in 0..6 {
            let group = format!("tenant-{g}");
            let part = jobstream_producer::partition_of(group.as_bytes(), 4) as usize;
            producer
                .enqueue_job(
                    &parts[part],
                    NewJob::new("step", &seq).unwrap().group(group).unwrap(),
                )
                .await
                .unwrap();
        }
    }
    let log: Log = Arc::default();
    let workers: Vec<Running> = (0..2)
        .map(|_| {
            let log = log.clone();
            let mut b = Worker::builder(&server.url())
                .timings(fast_timings())
                .concurrency(8);
            for p in &parts {
                b = b.queue(p);
            }
            start(b.handle("step", move |seq: u32, job: JobContext| {
                let log = log.clone();
                async move {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    log.lock().unwrap().push(Run {
                        group: job.group().unwrap_or("").to_owned(),
                        seq,
                        attempt: job.attempt(),
                        start,
                        end: Instant::now(),
                    });
                    JobResult::Ok(())
                }
            }))
        })
        .collect();
    wait_runs(&log, 120, 0, Duration::from_secs(30), "partitions").await;
    for w in workers {
        w.stop().await;
    }
    check_groups(&log.lock().unwrap(), 1, "partitions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_job_admitted_in_its_group_frees_its_place_when_it_dies() {
    // group-enqueue-6 admits without decoding: a job whose payload is not
    // MessagePack holds its group's place until it dies; its death must
    // let the next job of the group run.
    let server = RedisServer::start();
    let queue = unique_queue("badpayload");
    let mut conn = conn(&server).await;
    let good = rmp_serde::to_vec(&7u32).unwrap();
    let job = |id: &'static [u8], payload: &'static [u8]| -> RawJob<'static> {
        let fields = vec![
            (&b"type"[..], &b"step"[..]),
            (b"payload", payload),
            (b"id", id),
            (b"group", b"acct"),
        ];
        (id, fields)
    };
    let good: &'static [u8] = Box::leak(good.into_boxed_slice());
    let r = group_enqueue(
        &mut conn,
        &queue,
        b"acct",
        &[job(b"bad-1", b"\xc1"), job(b"good-2", good)],
    )
    .await
    .unwrap();
    assert_eq!(r, vec![1, 1], "one admitted, one waiting");
    let log: Log = Arc::default();
    let w = plain_worker(&server, &queue, &log);
    wait_runs(
        &log,
        1,
        0,
        Duration::from_secs(20),
        "the good job after the bad one",
    )
    .await;
    w.stop().await;
    let s = stats(&server, &queue).await;
    assert_eq!(
        (s.dead, s.processed, s.groups, s.group_waiting),
        (1, 1, 0, 0),
        "{s:?}"
    );
    assert_eq!(log.lock().unwrap()[0].seq, 7);
}

/// A job for `group_enqueue`: its id and its fields.
type RawJob<'a> = (&'a [u8], Vec<(&'a [u8], &'a [u8])>);

/// The group-enqueue-6 call of `jobs` (id, fields) for `group`, by hand.
async fn group_enqueue(
    conn: &mut redis::aio::MultiplexedConnection,
    queue: &str,
    group: &[u8],
    jobs: &[RawJob<'_>],
) -> redis::RedisResult<Vec<i64>> {
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scripts/group-enqueue-6.lua"
    ))
    .unwrap();
    let base = format!("jobstream:{{{queue}}}");
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(&script)
        .arg(6)
        .arg(format!("{base}:ready"))
        .arg(format!("{base}:groups"))
        .arg(format!("{base}:grouped"))
        .arg([format!("{base}:group:").as_bytes(), group].concat())
        .arg(format!("{base}:meta"))
        .arg(format!("{base}:stats"))
        .arg(group)
        .arg(jobs.len());
    for (id, fields) in jobs {
        cmd.arg(*id).arg(fields.len());
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
    }
    cmd.query_async(conn).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_id_reused_in_another_group_takes_neither_groups_place() {
    // Job ids should be unique in a queue, but a producer's bug must not
    // stop a group for good: the place is per group and id.
    let server = RedisServer::start();
    let queue = unique_queue("sameid");
    let mut conn = conn(&server).await;
    let p = [
        rmp_serde::to_vec(&1u32).unwrap(),
        rmp_serde::to_vec(&2u32).unwrap(),
        rmp_serde::to_vec(&3u32).unwrap(),
    ];
    let job = |id: &'static [u8], group: &'static [u8], payload: &'static [u8]| {
        vec![
            (&b"type"[..], &b"step"[..]),
            (b"payload", payload),
            (b"id", id),
            (b"group", group),
        ]
    };
    let p: &'static [Vec<u8>; 3] = Box::leak(Box::new(p));
    // A: x then a2 (waiting); B: x (admitted, same id as A's first job).
    let r = group_enqueue(
        &mut conn,
        &queue,
        b"A",
        &[
            (b"x", job(b"x", b"A", &p[0])),
            (b"a2", job(b"a2", b"A", &p[1])),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r, vec![1, 1]);
    let r = group_enqueue(&mut conn, &queue, b"B", &[(b"x", job(b"x", b"B", &p[2]))])
        .await
        .unwrap();
    assert_eq!(r, vec![1, 0], "B's x is admitted in B, not taken for A's");
    let log: Log = Arc::default();
    let w = plain_worker(&server, &queue, &log);
    wait_runs(
        &log,
        3,
        0,
        Duration::from_secs(20),
        "both x and A's next job",
    )
    .await;
    w.stop().await;
    let s = stats(&server, &queue).await;
    assert_eq!((s.processed, s.groups, s.group_waiting), (3, 0, 0), "{s:?}");
}

#[tokio::test]
async fn group_enqueue_refuses_what_a_worker_would_read_differently() {
    // A duplicate `group` or `id` field, or an id that is not UTF-8: the
    // gate would admit under one value and the worker settle under
    // another, holding the group's place for good. Refused, nothing written.
    let server = RedisServer::start();
    let queue = unique_queue("gatecheck");
    let mut conn = conn(&server).await;
    let pl = rmp_serde::to_vec(&1u32).unwrap();
    let base: Vec<(&[u8], &[u8])> = vec![(b"type", b"step"), (b"payload", &pl)];
    let with = |extra: &[(&'static [u8], &'static [u8])]| {
        let mut f = base.clone();
        f.extend_from_slice(extra);
        f
    };
    let cases: Vec<(&str, &[u8], RawJob<'_>)> = vec![
        (
            "two group fields",
            b"G",
            (
                b"j1",
                with(&[(b"id", b"j1"), (b"group", b"other"), (b"group", b"G")]),
            ),
        ),
        (
            "two id fields",
            b"G",
            (
                b"j1",
                with(&[(b"id", b"zz"), (b"id", b"j1"), (b"group", b"G")]),
            ),
        ),
        (
            "an id not UTF-8",
            b"G",
            (b"j\xff", with(&[(b"id", b"j\xff"), (b"group", b"G")])),
        ),
        (
            "a group not UTF-8",
            b"G\xff",
            (b"j1", with(&[(b"id", b"j1"), (b"group", b"G\xff")])),
        ),
    ];
    for (what, group, job) in cases {
        let err = group_enqueue(&mut conn, &queue, group, &[job])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("group-enqueue-6"), "{what}: {err}");
    }
    let ready: u64 = redis::cmd("XLEN")
        .arg(format!("jobstream:{{{queue}}}:ready"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let groups: u64 = redis::cmd("HLEN")
        .arg(format!("jobstream:{{{queue}}}:groups"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((ready, groups), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_concurrency_that_is_not_a_whole_number_counts_as_one_everywhere() {
    // "nan" once made every script compare against NaN: nothing admitted,
    // the group waited for good. Every reader now takes it as 1.
    let server = RedisServer::start();
    let queue = unique_queue("nanconc");
    let mut conn = conn(&server).await;
    let base = format!("jobstream:{{{queue}}}");
    for bad in ["nan", "1.5", "0x10", "+3", "-2", "inf"] {
        let _: () = redis::cmd("HSET")
            .arg(format!("{base}:meta"))
            .arg("group_concurrency")
            .arg(bad)
            .query_async(&mut conn)
            .await
            .unwrap();
        let pl = rmp_serde::to_vec(&1u32).unwrap();
        let id1 = format!("{bad}-1");
        let id2 = format!("{bad}-2");
        let f = |id: &str| -> Vec<(Vec<u8>, Vec<u8>)> {
            vec![
                (b"type".to_vec(), b"step".to_vec()),
                (b"payload".to_vec(), pl.clone()),
                (b"id".to_vec(), id.as_bytes().to_vec()),
                (b"group".to_vec(), b"G".to_vec()),
            ]
        };
        let (f1, f2) = (f(&id1), f(&id2));
        fn refs(f: &[(Vec<u8>, Vec<u8>)]) -> Vec<(&[u8], &[u8])> {
            f.iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect()
        }
        let r = group_enqueue(
            &mut conn,
            &queue,
            b"G",
            &[(id1.as_bytes(), refs(&f1)), (id2.as_bytes(), refs(&f2))],
        )
        .await
        .unwrap();
        assert_eq!(
            r,
            vec![1, 1],
            "{bad}: one admitted (as with 1), one waiting"
        );
        let log: Log = Arc::default();
        let w = worker(
            &server,
            &queue,
            &log,
            QueueOptions::new(),
            Arc::default(),
            Duration::ZERO,
        );
        wait_runs(&log, 2, 0, Duration::from_secs(20), bad).await;
        w.stop().await;
    }
    assert_eq!(jobstream_core::groups::parse_concurrency("nan"), 1);
    assert_eq!(jobstream_core::groups::parse_concurrency("+3"), 1);
    assert_eq!(jobstream_core::groups::parse_concurrency("3"), 3);
    assert_eq!(
        jobstream_core::groups::parse_concurrency("99999999999999999999999"),
        10_000
    );
}
