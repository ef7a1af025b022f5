//! A worker process for the chaos test: runs `chaos` jobs, recording every
//! run in Redis (so the harness can count duplicates), failing as the
//! payload says.

#[path = "../job.rs"]
mod job;

use std::time::Duration;

use clap::Parser;
use job::{ChaosJob, done_key, exec_key};
use jobstream_worker::{JobContext, JobError, JobOptions, Limits, RetryPolicy, Timings, Worker};
use redis::AsyncCommands;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    #[arg(long)]
    queue: String,
    #[arg(long)]
    run: String,
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value_t = 2000)]
    visibility_ms: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let client = match redis::Client::open(args.redis_url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bad url: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let recorder = match redis::aio::ConnectionManager::new_lazy_with_config(
        client,
        redis::aio::ConnectionManagerConfig::new().set_number_of_retries(1),
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("recorder: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let visibility = Duration::from_millis(args.visibility_ms);
    let timings = Timings::default()
        .visibility_timeout(visibility)
        .lease_refresh(visibility / 4)
        .reclaim_interval(visibility / 4)
        .block(Duration::from_millis(1000))
        .promote_interval(Duration::from_millis(100))
        .shutdown_grace(Duration::from_secs(5))
        .response_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_millis(500))
        .reconnect_min(Duration::from_millis(50))
        .reconnect_max(Duration::from_millis(500));
    let options = JobOptions::default()
        .timeout(Duration::from_secs(10))
        // Generous: a Redis restart can fail a few attempts on top of the
        // planned transient failures, and none of those may exhaust a job.
        .retry(RetryPolicy::exponential(
            25,
            Duration::from_millis(50),
            Duration::from_millis(500),
        ));
    let run = args.run.clone();
    let worker = Worker::builder(&args.redis_url)
        .queue(&args.queue)
        .concurrency(args.concurrency)
        .timings(timings)
        .limits(Limits::default().max_deliveries(10))
        .handle_with("chaos", options, move |job: ChaosJob, ctx: JobContext| {
            let mut rec = recorder.clone();
            let run = run.clone();
            async move {
                let attempt_key = format!("{}:{}", job.chaos_id, ctx.attempt());
                let _: i64 = rec
                    .hincr(exec_key(&run), attempt_key, 1)
                    .await
                    .map_err(|e| JobError::retry(format!("recording the run failed: {e}")))?;
                tokio::time::sleep(Duration::from_millis(job.work_ms)).await;
                if job.permanent {
                    return Err(JobError::permanent("planned permanent failure"));
                }
                if ctx.attempt() <= job.fail_attempts {
                    return Err(JobError::retry("planned transient failure"));
                }
                let _: i64 = rec
                    .hset(done_key(&run), job.chaos_id, 1)
                    .await
                    .map_err(|e| JobError::retry(format!("recording success failed: {e}")))?;
                Ok(())
            }
        })
        .build();
    match worker {
        Ok(w) => match w.run().await {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("worker: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
