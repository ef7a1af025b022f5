//! A worker process for the fleet rate-limit accuracy test: serves one
//! queue with a fleet-wide rate limit given on the command line (per
//! queue, per job type, or per rate key) and records each job's start as
//! the Redis server's time (unix ms, `RPUSH rate:<run>:starts`), so the
//! test measures every process on one clock.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use jobstream_worker::{JobContext, JobError, QueueOptions, RateLimit, Timings, Worker};

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// `QueueOptions::rate_limit` (rate-1, before each fetch).
    Queue,
    /// `QueueOptions::type_rate_limit` for job type `work` (throttle-6).
    Type,
    /// `QueueOptions::key_rate_limit` (throttle-6; jobs carry a rate key).
    Key,
}

#[derive(Parser)]
struct Args {
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    #[arg(long)]
    queue: String,
    /// Names the list the starts go to: `rate:<run>:starts`.
    #[arg(long)]
    run: String,
    /// Jobs per second, fleet-wide.
    #[arg(long)]
    rate: u32,
    #[arg(long, default_value_t = 5)]
    burst: u32,
    #[arg(long, value_enum, default_value = "queue")]
    kind: Kind,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

/// Appends the server's time (unix ms) to the list: one atomic call.
const RECORD: &str = "local t = redis.call('TIME') \
    return redis.call('RPUSH', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000))";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .init();
    let args = Args::parse();
    let recorder = match redis::Client::open(args.redis_url.as_str())
        .and_then(|c| redis::aio::ConnectionManager::new_lazy_with_config(c, Default::default()))
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("recorder: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let limit = match RateLimit::per_second(args.rate) {
        Ok(l) => l.burst(args.burst),
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let options = match args.kind {
        Kind::Queue => QueueOptions::new().rate_limit(limit),
        Kind::Type => QueueOptions::new().type_rate_limit("work", limit),
        Kind::Key => QueueOptions::new().key_rate_limit(limit),
    };
    let timings = Timings::default()
        .block(Duration::from_millis(500))
        .promote_interval(Duration::from_millis(50))
        .shutdown_grace(Duration::from_secs(2));
    let list = format!("rate:{}:starts", args.run);
    let script = redis::Script::new(RECORD);
    let worker = Worker::builder(&args.redis_url)
        .queue_with(&args.queue, options)
        .concurrency(args.concurrency)
        .timings(timings)
        .handle("work", move |_: u64, _ctx: JobContext| {
            let (mut conn, list, script) = (recorder.clone(), list.clone(), script.clone());
            async move {
                script
                    .key(&list)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(|e| JobError::retry(format!("recording: {e}")))?;
                Ok(())
            }
        })
        .build();
    let worker = match worker {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match worker.run_until_stopped().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
