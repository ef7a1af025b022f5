//! jobstream-bench: jobstream against the raw Redis Streams cycle, in the
//! same run, with the same client library, on the same server.
//!
//! Scenarios: single enqueue (sequential awaits), bulk enqueue (pipelined),
//! drain of a pre-filled queue, pickup latency at a steady rate with an idle
//! worker, drain with 1 KiB payloads, drain of three queues weighted
//! 6/3/1 by one worker (against the raw drain of one stream of the same
//! size), drain with AOF `everysec`. Every
//! jobstream figure is also given as a ratio to the raw figure. Redis is the
//! fleet's shared bottleneck, so Redis CPU and commands per job are reported
//! for both sides too.
//!
//! The consuming side of each scenario runs in a child process (this binary,
//! `child` subcommand) so its RSS is its own.
// A benchmark harness: a broken setup should stop it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod child;
mod measure;
mod raw;

use std::process::Command;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use jobstream_producer::{NewJob, Producer};
use jobstream_testkit::RedisServer;
use measure::RedisCost;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(about = "Benchmark jobstream against the raw Redis Streams cycle")]
struct Args {
    /// Use this Redis instead of starting one (the AOF scenario is skipped).
    #[arg(long)]
    redis_url: Option<String>,
    /// Jobs per drain and enqueue scenario.
    #[arg(long, default_value_t = 100_000)]
    jobs: usize,
    /// Worker concurrency for the drain scenarios.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Jobs for the single-enqueue scenario (sequential round trips).
    #[arg(long, default_value_t = 20_000)]
    single_jobs: usize,
    /// Rate of the pickup-latency scenario, jobs/s.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Jobs sent in the pickup-latency scenario.
    #[arg(long, default_value_t = 10_000)]
    pickup_jobs: usize,
    /// A small, fast run (for CI: the harness must not rot).
    #[arg(long)]
    quick: bool,
    /// Only these scenarios (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// One JSON object per scenario instead of the table.
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    child: Option<ChildCmd>,
}

#[derive(Subcommand)]
enum ChildCmd {
    /// Internal: the consuming side of a scenario.
    #[command(hide = true)]
    Child {
        kind: String,
        what: String,
        url: String,
        queue: String,
        jobs: usize,
        concurrency: usize,
    },
}

/// The job payload: about 100 bytes as MessagePack (or padded to a size).
#[derive(Debug, Serialize, Deserialize, Clone)]
pub struct Payload {
    to: String,
    subject: String,
    sent_ns: u64,
    pad: String,
}

impl Payload {
    fn sized(bytes: usize) -> Self {
        let mut p = Payload {
            to: "user-000042@example.com".into(),
            subject: "Your invoice is ready".into(),
            sent_ns: now_ns(),
            pad: String::new(),
        };
        let base = p.bytes().len();
        p.pad = "x".repeat(bytes.saturating_sub(base));
        p
    }
    fn bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap()
    }
    fn stamped(&self) -> Self {
        Payload {
            sent_ns: now_ns(),
            ..self.clone()
        }
    }
}

/// Unix time in ns (the pickup stamp; producer and consumer share the clock).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One scenario's result, as printed with --json.
#[derive(Serialize, Default)]
struct Row {
    scenario: String,
    jobs: usize,
    jobs_per_s: f64,
    raw_jobs_per_s: f64,
    ratio: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    raw_p50_ms: Option<f64>,
    raw_p99_ms: Option<f64>,
    worker_rss_mb: Option<f64>,
    raw_rss_mb: Option<f64>,
    redis_cpu_us_per_job: f64,
    raw_redis_cpu_us_per_job: f64,
    redis_cmds_per_job: f64,
    raw_redis_cmds_per_job: f64,
}

struct Ctx {
    url: String,
    conn: redis::aio::MultiplexedConnection,
    producer: Producer,
    run: String,
    n: usize,
}

impl Ctx {
    fn queue(&mut self, name: &str) -> String {
        self.n += 1;
        format!("{name}-{}-{}", self.run, self.n)
    }
    async fn cost<F: std::future::Future<Output = T>, T>(&mut self, f: F) -> (T, RedisCost) {
        let before = measure::start(&mut self.conn).await;
        let out = f.await;
        (out, measure::finish(&mut self.conn, before).await)
    }
}

fn per_job(cost: RedisCost, jobs: usize) -> (f64, f64) {
    let j = jobs.max(1) as f64;
    (cost.cpu_s * 1e6 / j, cost.calls as f64 / j)
}

fn row(scenario: &str, jobs: usize, js: (Duration, RedisCost), raw: (Duration, RedisCost)) -> Row {
    let rate = |d: Duration| jobs as f64 / d.as_secs_f64().max(1e-9);
    let (cpu, cmds) = per_job(js.1, jobs);
    let (raw_cpu, raw_cmds) = per_job(raw.1, jobs);
    Row {
        scenario: scenario.into(),
        jobs,
        jobs_per_s: rate(js.0),
        raw_jobs_per_s: rate(raw.0),
        ratio: rate(js.0) / rate(raw.0),
        redis_cpu_us_per_job: cpu,
        raw_redis_cpu_us_per_job: raw_cpu,
        redis_cmds_per_job: cmds,
        raw_redis_cmds_per_job: raw_cmds,
        ..Default::default()
    }
}

fn spawn_child(
    kind: &str,
    what: &str,
    url: &str,
    queue: &str,
    jobs: usize,
    concurrency: usize,
) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child",
            kind,
            what,
            url,
            queue,
            &jobs.to_string(),
            &concurrency.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child")
}

fn child_report(c: std::process::Child) -> child::ChildReport {
    let out = c.wait_with_output().expect("child");
    assert!(out.status.success(), "child failed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("child report");
    child::ChildReport {
        elapsed_s: v["elapsed_s"].as_f64().unwrap_or(0.0),
        rss_mb: v["rss_mb"].as_f64().unwrap_or(0.0),
        latencies_ms: serde_json::from_value(v["latencies_ms"].clone()).unwrap_or_default(),
    }
}

/// Rounds each enqueue scenario is split into, alternating jobstream and
/// raw, so drift on a noisy machine (another process, CPU frequency) hits
/// both sides alike.
const ROUNDS: usize = 4;

fn add(a: (Duration, RedisCost), b: (Duration, RedisCost)) -> (Duration, RedisCost) {
    (
        a.0 + b.0,
        RedisCost {
            cpu_s: a.1.cpu_s + b.1.cpu_s,
            calls: a.1.calls + b.1.calls,
        },
    )
}

async fn single_enqueue(ctx: &mut Ctx, n: usize) -> Row {
    let payload = Payload::sized(100);
    let q = ctx.queue("single");
    let key = format!("raw:{{{}}}:ready", ctx.queue("single-raw"));
    let producer = ctx.producer.clone();
    producer.enqueue_named(&q, "bench", &payload).await.unwrap(); // registers the queue outside the timing
    let mut conn = ctx.conn.clone();
    let (mut js, mut raw) = (
        (Duration::ZERO, RedisCost::default()),
        (Duration::ZERO, RedisCost::default()),
    );
    let per_round = n / ROUNDS;
    for _ in 0..ROUNDS {
        let round = ctx
            .cost(async {
                let t = Instant::now();
                for _ in 0..per_round {
                    producer.enqueue_named(&q, "bench", &payload).await.unwrap();
                }
                t.elapsed()
            })
            .await;
        js = add(js, round);
        raw = add(
            raw,
            ctx.cost(raw::single_xadd(&mut conn, &key, per_round, &payload))
                .await,
        );
    }
    row("single_enqueue", per_round * ROUNDS, js, raw)
}

async fn bulk_enqueue(ctx: &mut Ctx, n: usize) -> Row {
    let producer = ctx.producer.clone();
    enqueue_rounds(ctx, "bulk_enqueue", &producer, n, 1000, None).await
}

/// Enqueue acknowledged by a replica (`Durability::replicas(1, …)`), in
/// calls of `batch` jobs (one name check, the pipeline, then `WAIT` and the
/// name check in one round trip) against raw pipelines + `WAIT`.
async fn durable_enqueue(ctx: &mut Ctx, scenario: &str, n: usize, batch: usize) -> Row {
    let producer = ctx
        .producer
        .durable(jobstream_producer::Durability::replicas(
            1,
            Duration::from_secs(5),
        ));
    enqueue_rounds(ctx, scenario, &producer, n, batch, Some(1)).await
}

/// `n` jobs enqueued with `producer` in calls of `batch`, in rounds
/// alternating with raw `XADD` pipelines of the same size (each ending
/// with `WAIT replicas` when given).
async fn enqueue_rounds(
    ctx: &mut Ctx,
    scenario: &str,
    producer: &Producer,
    n: usize,
    batch: usize,
    wait_replicas: Option<u32>,
) -> Row {
    let payload = Payload::sized(100);
    let q = ctx.queue(scenario);
    let key = format!("raw:{{{}}}:ready", ctx.queue(&format!("{scenario}-raw")));
    producer.enqueue_named(&q, "bench", &payload).await.unwrap(); // registers the queue outside the timing
    let mut conn = ctx.conn.clone();
    let (mut js, mut raw) = (
        (Duration::ZERO, RedisCost::default()),
        (Duration::ZERO, RedisCost::default()),
    );
    let per_round = n / ROUNDS;
    for _ in 0..ROUNDS {
        let round = ctx
            .cost(async {
                let t = Instant::now();
                let mut left = per_round;
                while left > 0 {
                    let k = left.min(batch);
                    let jobs: Vec<NewJob> = (0..k)
                        .map(|_| NewJob::new("bench", &payload).unwrap())
                        .collect();
                    producer.enqueue_many(&q, jobs).await.unwrap();
                    left -= k;
                }
                t.elapsed()
            })
            .await;
        js = add(js, round);
        let raw_round =
            raw::bulk_xadd_wait(&mut conn, &key, per_round, batch, wait_replicas, &payload);
        raw = add(raw, ctx.cost(raw_round).await);
    }
    row(scenario, per_round * ROUNDS, js, raw)
}

/// Weights of the three-queue drain, and the suffixes of its queues.
pub(crate) const THREE_QUEUES: [(&str, u32); 3] = [("critical", 6), ("default", 3), ("low", 1)];

/// Pre-fills both queues with the same entries, then drains each with its
/// consumer in a child process; in two alternating rounds (jobstream, raw,
/// jobstream, raw) so drift on a noisy machine hits both sides alike. With
/// `three_queues`, the jobstream side is three queues weighted 6/3/1 (filled
/// in that proportion, so all three have a backlog to the end) served by
/// one worker; the raw side stays one stream of the same total: the raw
/// limit of the machine.
async fn drain(ctx: &mut Ctx, scenario: &str, n: usize, size: usize, concurrency: usize) -> Row {
    drain_queues(ctx, scenario, n, size, concurrency, false).await
}

/// Jobs that keep a record (enqueued by the producer with `keep_record`,
/// so each has its record before the drain starts): what records cost a
/// worker and Redis (`start-3` and `settle-14` per job instead of a share of
/// a batched `ack-2`).
async fn drain_records(ctx: &mut Ctx, scenario: &str, n: usize, concurrency: usize) -> Row {
    RECORDS.store(true, std::sync::atomic::Ordering::Relaxed);
    let row = drain_queues(ctx, scenario, n, 100, concurrency, false).await;
    RECORDS.store(false, std::sync::atomic::Ordering::Relaxed);
    row
}

/// `drain` by a worker that serves `/metrics` (every job counted and
/// timed): against `drain` in the same run, the cost of metrics.
async fn drain_metrics(ctx: &mut Ctx, scenario: &str, n: usize, concurrency: usize) -> Row {
    METRICS.store(true, std::sync::atomic::Ordering::Relaxed);
    let row = drain_queues(ctx, scenario, n, 100, concurrency, false).await;
    METRICS.store(false, std::sync::atomic::Ordering::Relaxed);
    row
}

/// `drain` of jobs that carry a W3C `traceparent` (enqueued by the
/// producer): the worker checks it and records the trace id on the job
/// span (the `otel` feature, which also continues the trace, is off here).
async fn drain_traced(ctx: &mut Ctx, scenario: &str, n: usize, concurrency: usize) -> Row {
    TRACED.store(true, std::sync::atomic::Ordering::Relaxed);
    let row = drain_queues(ctx, scenario, n, 100, concurrency, false).await;
    TRACED.store(false, std::sync::atomic::Ordering::Relaxed);
    row
}

/// `drain` by a worker whose queue has a fleet-wide rate limit that never
/// binds: the cost of the limiter (one `rate-1` call per fetch).
async fn drain_rate(ctx: &mut Ctx, scenario: &str, n: usize, concurrency: usize) -> Row {
    RATE_LIMITED.store(true, std::sync::atomic::Ordering::Relaxed);
    let row = drain_queues(ctx, scenario, n, 100, concurrency, false).await;
    RATE_LIMITED.store(false, std::sync::atomic::Ordering::Relaxed);
    row
}

/// `drain` of jobs spread over `KEYED_GROUPS` groups (each job's `group`,
/// enqueued through `group-enqueue-6`) with the default group concurrency
/// of 1: every job is ordered within its group. What ordering by key
/// costs: each job is settled by `settle-14` (which lets the next job of
/// its group into `ready`) instead of a share of a batched `ack-2`, and
/// each group has one job in `ready` at a time.
async fn drain_keyed(ctx: &mut Ctx, scenario: &str, n: usize, concurrency: usize) -> Row {
    KEYED.store(true, std::sync::atomic::Ordering::Relaxed);
    let row = drain_queues(ctx, scenario, n, 100, concurrency, false).await;
    KEYED.store(false, std::sync::atomic::Ordering::Relaxed);
    row
}

/// Groups of `drain_keyed`.
const KEYED_GROUPS: usize = 1000;

/// Set while `drain_keyed` fills its queues.
static KEYED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `drain` by a worker whose job type has a fleet-wide rate limit that
/// never binds: the cost of a limit per type (one `throttle-6` call per
/// job, after the read).
async fn drain_type_rate(ctx: &mut Ctx, scenario: &str, n: usize, concurrency: usize) -> Row {
    TYPE_RATE_LIMITED.store(true, std::sync::atomic::Ordering::Relaxed);
    let row = drain_queues(ctx, scenario, n, 100, concurrency, false).await;
    TYPE_RATE_LIMITED.store(false, std::sync::atomic::Ordering::Relaxed);
    row
}

/// Set while `drain_type_rate` runs.
static TYPE_RATE_LIMITED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set while `drain_rate` runs.
static RATE_LIMITED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set while `drain_traced` fills its queues.
static TRACED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set while `drain_metrics` runs.
static METRICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set while `drain_records` fills its queues.
static RECORDS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn drain_queues(
    ctx: &mut Ctx,
    scenario: &str,
    n: usize,
    size: usize,
    concurrency: usize,
    three_queues: bool,
) -> Row {
    let payload = Payload::sized(size);
    let url = ctx.url.clone();
    let per_round = n / 2;
    let (mut js, mut raw) = (
        (Duration::ZERO, RedisCost::default()),
        (Duration::ZERO, RedisCost::default()),
    );
    let (mut js_rss, mut raw_rss) = (0.0f64, 0.0f64);
    for _ in 0..2 {
        let q = ctx.queue(scenario);
        let mut conn = ctx.conn.clone();
        if three_queues {
            let total: u32 = THREE_QUEUES.iter().map(|(_, w)| w).sum();
            let mut left = per_round;
            for (i, (suffix, w)) in THREE_QUEUES.iter().enumerate() {
                let k = if i == THREE_QUEUES.len() - 1 {
                    left
                } else {
                    per_round * *w as usize / total as usize
                };
                left -= k;
                let key = format!("jobstream:{{{q}-{suffix}}}:ready");
                raw::bulk_xadd(&mut conn, &key, k, 1000, &payload).await;
            }
        } else if RECORDS.load(std::sync::atomic::Ordering::Relaxed)
            || TRACED.load(std::sync::atomic::Ordering::Relaxed)
            || KEYED.load(std::sync::atomic::Ordering::Relaxed)
        {
            let records = RECORDS.load(std::sync::atomic::Ordering::Relaxed);
            let keyed = KEYED.load(std::sync::atomic::Ordering::Relaxed);
            let jobs: Vec<NewJob> = (0..per_round)
                .map(|i| {
                    let job = NewJob::new("bench", &payload).expect("payload");
                    if keyed {
                        job.group(format!("g{}", i % KEYED_GROUPS)).expect("group")
                    } else if records {
                        job.keep_record(Duration::from_secs(600))
                    } else {
                        job.traceparent(format!(
                            "00-4bf92f3577b34da6a3ce929d{i:08x}-00f067aa0ba902b7-01"
                        ))
                    }
                })
                .collect();
            ctx.producer.enqueue_many(&q, jobs).await.expect("fill");
        } else {
            raw::bulk_xadd(
                &mut conn,
                &format!("jobstream:{{{q}}}:ready"),
                per_round,
                1000,
                &payload,
            )
            .await;
        }
        raw::bulk_xadd(
            &mut conn,
            &format!("raw:{{{q}}}:ready"),
            per_round,
            1000,
            &payload,
        )
        .await;
        let kind = if three_queues {
            "jobstream3"
        } else if METRICS.load(std::sync::atomic::Ordering::Relaxed) {
            "jobstream_metrics"
        } else if RATE_LIMITED.load(std::sync::atomic::Ordering::Relaxed) {
            "jobstream_rate"
        } else if TYPE_RATE_LIMITED.load(std::sync::atomic::Ordering::Relaxed) {
            "jobstream_type_rate"
        } else {
            "jobstream"
        };
        let (j, j_cost) = drain_child(ctx, kind, &url, &q, per_round, concurrency).await;
        let (r, r_cost) = drain_child(ctx, "raw", &url, &q, per_round, concurrency).await;
        js = add(js, (Duration::from_secs_f64(j.elapsed_s), j_cost));
        raw = add(raw, (Duration::from_secs_f64(r.elapsed_s), r_cost));
        js_rss = js_rss.max(j.rss_mb);
        raw_rss = raw_rss.max(r.rss_mb);
    }
    let mut r = row(scenario, per_round * 2, js, raw);
    r.worker_rss_mb = Some(js_rss);
    r.raw_rss_mb = Some(raw_rss);
    r
}

/// One drain by `kind`'s consumer in a child process, with its Redis cost.
async fn drain_child(
    ctx: &mut Ctx,
    kind: &str,
    url: &str,
    queue: &str,
    jobs: usize,
    concurrency: usize,
) -> (child::ChildReport, RedisCost) {
    ctx.cost(async { child_report(spawn_child(kind, "drain", url, queue, jobs, concurrency)) })
        .await
}

/// An idle consumer waits; jobs arrive at `rate`; each records the time from
/// its enqueue to the handler start (jobstream) or to the entry being in
/// hand (raw).
async fn pickup(ctx: &mut Ctx, n: usize, rate: u64) -> Row {
    let payload = Payload::sized(100);
    let url = ctx.url.clone();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut results = Vec::new();
    for kind in ["jobstream", "raw"] {
        let q = ctx.queue("pickup");
        let child = spawn_child(kind, "pickup", &url, &q, n, 50);
        let mut conn = ctx.conn.clone();
        child::wait_ready(&mut conn, &q).await;
        let producer = ctx.producer.clone();
        let key = format!("raw:{{{q}}}:ready");
        let ((elapsed, report), cost) = ctx
            .cost(async {
                let start = tokio::time::Instant::now();
                for i in 0..n {
                    tokio::time::sleep_until(start + interval * i as u32).await;
                    let p = payload.stamped();
                    if kind == "jobstream" {
                        producer.enqueue_named(&q, "bench", &p).await.unwrap();
                    } else {
                        let _: String = redis::cmd("XADD")
                            .arg(&key)
                            .arg("*")
                            .arg("type")
                            .arg("bench")
                            .arg("payload")
                            .arg(p.bytes())
                            .query_async(&mut conn)
                            .await
                            .unwrap();
                    }
                }
                let elapsed = start.elapsed();
                (elapsed, child_report(child))
            })
            .await;
        let mut lat = report.latencies_ms;
        lat.sort_by(f64::total_cmp);
        results.push((elapsed, cost, lat, report.rss_mb));
    }
    let (raw, js) = (results.pop().unwrap(), results.pop().unwrap());
    let mut r = row("pickup_latency", n, (js.0, js.1), (raw.0, raw.1));
    r.p50_ms = Some(measure::percentile(&js.2, 50.0));
    r.p99_ms = Some(measure::percentile(&js.2, 99.0));
    r.max_ms = js.2.last().copied();
    r.raw_p50_ms = Some(measure::percentile(&raw.2, 50.0));
    r.raw_p99_ms = Some(measure::percentile(&raw.2, 99.0));
    r.worker_rss_mb = Some(js.3);
    r.raw_rss_mb = Some(raw.3);
    r
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<16} {:>8} {:>11} {:>11} {:>6} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "scenario",
        "jobs",
        "jobs/s",
        "raw jobs/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "rss MB",
        "cpu us/j",
        "raw us/j",
        "cmds/j",
        "raw c/j"
    );
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    for r in rows {
        println!(
            "{:<16} {:>8} {:>11.0} {:>11.0} {:>6.2} {:>8} {:>8} {:>8} {:>9.1} {:>9.1} {:>9.2} {:>9.2}",
            r.scenario,
            r.jobs,
            r.jobs_per_s,
            r.raw_jobs_per_s,
            r.ratio,
            opt(r.p50_ms),
            opt(r.p99_ms),
            opt(r.worker_rss_mb),
            r.redis_cpu_us_per_job,
            r.raw_redis_cpu_us_per_job,
            r.redis_cmds_per_job,
            r.raw_redis_cmds_per_job
        );
        if let (Some(p50), Some(p99)) = (r.raw_p50_ms, r.raw_p99_ms) {
            println!("{:<16} raw pickup p50 {p50:.2} ms, p99 {p99:.2} ms", "");
        }
    }
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if let Some(ChildCmd::Child {
        kind,
        what,
        url,
        queue,
        jobs,
        concurrency,
    }) = &args.child
    {
        let report = child::run(kind, what, url, queue, *jobs, *concurrency).await;
        println!("{}", serde_json::to_string(&report).unwrap());
        return;
    }
    if args.quick {
        args.jobs = args.jobs.min(5000);
        args.single_jobs = args.single_jobs.min(1000);
        args.pickup_jobs = args.pickup_jobs.min(500);
    }
    let want = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let server = args.redis_url.is_none().then(RedisServer::start);
    let url = args
        .redis_url
        .clone()
        .unwrap_or_else(|| server.as_ref().unwrap().url());
    let mut ctx = Ctx {
        conn: child::connect(&url).await,
        producer: Producer::connect(&url).await.expect("producer"),
        url: url.clone(),
        run: format!("{:x}", now_ns() % 0xffff_ffff),
        n: 0,
    };
    let mut rows = Vec::new();
    let emit = |r: Row, rows: &mut Vec<Row>| {
        if args.json {
            println!("{}", serde_json::to_string(&r).unwrap());
        }
        rows.push(r);
    };
    if want("single_enqueue") {
        emit(single_enqueue(&mut ctx, args.single_jobs).await, &mut rows);
    }
    if want("bulk_enqueue") {
        emit(bulk_enqueue(&mut ctx, args.jobs).await, &mut rows);
    }
    if want("drain") {
        emit(
            drain(&mut ctx, "drain", args.jobs, 100, args.concurrency).await,
            &mut rows,
        );
    }
    if want("pickup_latency") {
        emit(
            pickup(&mut ctx, args.pickup_jobs, args.rate).await,
            &mut rows,
        );
    }
    if want("drain_3q") {
        emit(
            drain_queues(&mut ctx, "drain_3q", args.jobs, 100, args.concurrency, true).await,
            &mut rows,
        );
    }
    if want("drain_metrics") {
        emit(
            drain_metrics(&mut ctx, "drain_metrics", args.jobs, args.concurrency).await,
            &mut rows,
        );
    }
    if want("drain_records") {
        emit(
            drain_records(&mut ctx, "drain_records", args.jobs, args.concurrency).await,
            &mut rows,
        );
    }
    if want("drain_rate") {
        emit(
            drain_rate(&mut ctx, "drain_rate", args.jobs, args.concurrency).await,
            &mut rows,
        );
    }
    if want("drain_type_rate") {
        emit(
            drain_type_rate(&mut ctx, "drain_type_rate", args.jobs, args.concurrency).await,
            &mut rows,
        );
    }
    if want("drain_keyed") {
        emit(
            drain_keyed(&mut ctx, "drain_keyed", args.jobs, args.concurrency).await,
            &mut rows,
        );
    }
    if want("drain_traced") {
        emit(
            drain_traced(&mut ctx, "drain_traced", args.jobs, args.concurrency).await,
            &mut rows,
        );
    }
    if want("drain_1k") {
        emit(
            drain(&mut ctx, "drain_1k", args.jobs, 1024, args.concurrency).await,
            &mut rows,
        );
    }
    if want("drain_aof") {
        if args.redis_url.is_some() {
            eprintln!("drain_aof skipped: it needs a server of its own (no --redis-url)");
        } else {
            let aof = RedisServer::start_with(&[
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ]);
            let mut actx = Ctx {
                conn: child::connect(&aof.url()).await,
                producer: Producer::connect(&aof.url()).await.expect("producer"),
                url: aof.url(),
                run: ctx.run.clone(),
                n: 0,
            };
            emit(
                drain(&mut actx, "drain_aof", args.jobs, 100, args.concurrency).await,
                &mut rows,
            );
        }
    }
    if want("durable_enqueue") || want("durable_single") {
        if args.redis_url.is_some() {
            eprintln!(
                "durable_* skipped: they need a master and a replica of their own (no --redis-url)"
            );
        } else {
            let master = RedisServer::start_with(&["--save", "", "--appendonly", "no"]);
            let replica = RedisServer::start_with(&[
                "--save",
                "",
                "--replicaof",
                "127.0.0.1",
                &master.port().to_string(),
            ]);
            while !replica
                .cli(&["INFO", "replication"])
                .is_some_and(|i| i.contains("master_link_status:up"))
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut dctx = Ctx {
                conn: child::connect(&master.url()).await,
                producer: Producer::connect(&master.url()).await.expect("producer"),
                url: master.url(),
                run: ctx.run.clone(),
                n: 0,
            };
            if want("durable_enqueue") {
                emit(
                    durable_enqueue(&mut dctx, "durable_enqueue", args.jobs, 1000).await,
                    &mut rows,
                );
            }
            if want("durable_single") {
                emit(
                    durable_enqueue(&mut dctx, "durable_single", args.single_jobs, 1).await,
                    &mut rows,
                );
            }
            drop(replica);
        }
    }
    if !args.json {
        print_table(&rows);
    }
}
