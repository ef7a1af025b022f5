//! The chaos harness. Starts its own redis-server (AOF, `appendfsync always`)
//! unless given one, runs several `chaos-worker` processes, enqueues jobs in
//! waves (some delayed, some failing transiently, some permanently), kills
//! random workers with SIGKILL and restarts Redis along the way, then waits
//! until every job is settled and counts:
//!
//! - lost: enqueued jobs that neither succeeded nor are in dead (must be 0);
//! - pending: jobs still in flight or waiting at the end (must be 0);
//! - dead: must be exactly the permanently failing jobs;
//! - duplicates: attempts that ran more than once (allowed: at-least-once).
//!
//! Exit code 0 only when all of these hold.

mod job;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use job::{ChaosJob, done_key, exec_key};
use jobstream_producer::inspect::{DeadFilter, Inspector};
use jobstream_producer::{NewJob, Producer};
use jobstream_testkit::RedisServer;
use rand::{Rng, SeedableRng};
use serde::Serialize;

#[derive(Parser, Clone)]
#[command(about = "jobstream chaos test: SIGKILLed workers, Redis restarts, failing handlers")]
struct Args {
    /// Worker processes running at once.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Jobs to enqueue in all.
    #[arg(long, default_value_t = 3000)]
    jobs: usize,
    /// Enqueue waves (jobs are spread over them, with pauses between).
    #[arg(long, default_value_t = 10)]
    waves: usize,
    /// Workers killed with SIGKILL (each replaced by a new one).
    #[arg(long, default_value_t = 6)]
    kills: usize,
    /// Redis restarts (SIGKILL, then start again from the AOF).
    #[arg(long, default_value_t = 1)]
    redis_restarts: usize,
    /// Share of jobs that fail transiently on their first two attempts.
    #[arg(long, default_value_t = 0.2)]
    fail_ratio: f64,
    /// Share of jobs that fail permanently.
    #[arg(long, default_value_t = 0.05)]
    permanent_ratio: f64,
    /// Share of jobs enqueued with a delay (up to 1 s).
    #[arg(long, default_value_t = 0.1)]
    delayed_ratio: f64,
    /// Visibility timeout of the workers, ms.
    #[arg(long, default_value_t = 2000)]
    visibility_ms: u64,
    /// Give up waiting for the queue to settle after this many seconds.
    #[arg(long, default_value_t = 180)]
    timeout_s: u64,
    /// Random seed (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    seed: u64,
    enqueued: usize,
    succeeded: usize,
    processed: u64,
    retried: u64,
    dead: usize,
    expected_dead: usize,
    dead_exact: bool,
    duplicate_executions: u64,
    lost: usize,
    pending_at_end: u64,
    worker_kills: usize,
    redis_restarts: usize,
    settled: bool,
    seconds: f64,
}

struct Fleet {
    bin: PathBuf,
    url: String,
    queue: String,
    run: String,
    visibility_ms: u64,
    children: Vec<Child>,
}

impl Fleet {
    fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--queue", &self.queue, "--run", &self.run])
            .args(["--visibility-ms", &self.visibility_ms.to_string()])
            .env("REDIS_URL", &self.url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(c) => self.children.push(c),
            Err(e) => eprintln!("cannot start {}: {e}", self.bin.display()),
        }
    }

    fn kill_one(&mut self, rng: &mut impl Rng) {
        if self.children.is_empty() {
            return;
        }
        let i = rng.random_range(0..self.children.len());
        let mut c = self.children.swap_remove(i);
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
        self.spawn();
    }

    fn stop_all(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for mut c in self.children.drain(..) {
            let _ = c.wait();
        }
    }
}

fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .map(|d| d.join(name))
        .unwrap_or_else(|| PathBuf::from(name))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(report)
            if report.lost == 0
                && report.pending_at_end == 0
                && report.dead_exact
                && report.settled =>
        {
            std::process::ExitCode::SUCCESS
        }
        Ok(_) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chaos: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> Result<Report, String> {
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut server = RedisServer::start_durable();
    let url = server.url();
    let run_id = format!("{seed:x}");
    let queue = format!("chaos-{run_id}");
    let mut fleet = Fleet {
        bin: sibling_binary("chaos-worker"),
        url: url.clone(),
        queue: queue.clone(),
        run: run_id.clone(),
        visibility_ms: args.visibility_ms,
        children: Vec::new(),
    };
    for _ in 0..args.workers {
        fleet.spawn();
    }
    let producer = Producer::connect(&url).await.map_err(|e| e.to_string())?;

    // Plan: which jobs fail how, and at which waves the kills and restarts fall.
    let waves = args.waves.max(1);
    let mut kill_waves: Vec<usize> = (0..args.kills)
        .map(|_| rng.random_range(0..waves))
        .collect();
    kill_waves.sort_unstable();
    let restart_waves: HashSet<usize> = (0..args.redis_restarts)
        .map(|i| 1 + (i * waves) / args.redis_restarts.max(1))
        .collect();
    let mut permanent_ids = HashSet::new();
    let mut next_id = 0u64;
    let (mut kills, mut restarts) = (0, 0);
    for wave in 0..waves {
        let n = args.jobs / waves + usize::from(wave < args.jobs % waves);
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            let roll: f64 = rng.random();
            let job = ChaosJob {
                chaos_id: next_id,
                permanent: roll < args.permanent_ratio,
                fail_attempts: if roll >= args.permanent_ratio
                    && roll < args.permanent_ratio + args.fail_ratio
                {
                    2
                } else {
                    0
                },
                work_ms: rng.random_range(1..15),
            };
            if job.permanent {
                permanent_ids.insert(next_id);
            }
            let mut j = NewJob::new("chaos", &job)
                .map_err(|e| e.to_string())?
                .field("chaos_id", next_id.to_string())
                .map_err(|e| e.to_string())?;
            if rng.random::<f64>() < args.delayed_ratio {
                j = j.delay(Duration::from_millis(rng.random_range(1..1000)));
            }
            batch.push(j);
            next_id += 1;
        }
        // Enqueue is retried only when the whole pipeline failed before
        // Redis saw it (a restart happens between waves, never during one).
        producer
            .enqueue_many(&queue, batch)
            .await
            .map_err(|e| format!("enqueue: {e}"))?;
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
        while kill_waves.first() == Some(&wave) {
            kill_waves.remove(0);
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
            fleet.kill_one(&mut rng);
            kills += 1;
        }
        if restart_waves.contains(&wave) {
            server.restart();
            restarts += 1;
        }
    }

    let inspector = producer.inspector();
    let enqueued = next_id as usize;
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let mut settled = false;
    while Instant::now() < deadline {
        if let Ok(s) = inspector.stats(&queue).await
            && s.ready == 0
            && s.in_flight == 0
            && s.scheduled == 0
            && (s.processed + s.dead_total) as usize >= enqueued
        {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    fleet.stop_all();
    let report = count(
        &args,
        &inspector,
        &url,
        &queue,
        &run_id,
        enqueued,
        &permanent_ids,
        seed,
        kills,
        restarts,
        settled,
        started,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!(
            "chaos seed={} enqueued={} succeeded={} processed={} retried={} dead={} (expected {}, exact={}) duplicate_executions={} lost={} pending_at_end={} kills={} redis_restarts={} settled={} in {:.1}s",
            report.seed,
            report.enqueued,
            report.succeeded,
            report.processed,
            report.retried,
            report.dead,
            report.expected_dead,
            report.dead_exact,
            report.duplicate_executions,
            report.lost,
            report.pending_at_end,
            report.worker_kills,
            report.redis_restarts,
            report.settled,
            report.seconds
        );
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn count(
    args: &Args,
    inspector: &Inspector,
    url: &str,
    queue: &str,
    run_id: &str,
    enqueued: usize,
    permanent_ids: &HashSet<u64>,
    seed: u64,
    kills: usize,
    restarts: usize,
    settled: bool,
    started: Instant,
) -> Result<Report, String> {
    let _ = args;
    let stats = inspector.stats(queue).await.map_err(|e| e.to_string())?;
    let dead = inspector
        .dead_list(queue, &DeadFilter::default())
        .await
        .map_err(|e| e.to_string())?;
    let dead_ids: HashSet<u64> = dead
        .iter()
        .filter_map(|d| {
            d.fields
                .iter()
                .find(|(k, _)| k == "chaos_id")
                .and_then(|(_, v)| v.parse().ok())
        })
        .collect();
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let exec: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(exec_key(run_id))
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let done: HashMap<u64, u64> = redis::cmd("HGETALL")
        .arg(done_key(run_id))
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    let duplicate_executions = exec.values().map(|n| n.saturating_sub(1)).sum();
    let lost = (0..enqueued as u64)
        .filter(|id| !done.contains_key(id) && !dead_ids.contains(id))
        .count();
    Ok(Report {
        seed,
        enqueued,
        succeeded: done.len(),
        processed: stats.processed,
        retried: stats.retried,
        dead: dead.len(),
        expected_dead: permanent_ids.len(),
        dead_exact: dead_ids == *permanent_ids && dead.len() == permanent_ids.len(),
        duplicate_executions,
        lost,
        pending_at_end: stats.in_flight + stats.ready + stats.scheduled,
        worker_kills: kills,
        redis_restarts: restarts,
        settled,
        seconds: started.elapsed().as_secs_f64(),
    })
}
