//! A worker process for the chains-and-batches and the groups kill tests:
//! runs chain steps, batch members and batch completion jobs, recording in
//! Redis the entry each delivery came from, so the test can tell a
//! redelivery (same entry, after a kill) from a step or completion job
//! enqueued twice (a new entry); and jobs of groups (`ordered`), recording
//! each start and success in the group's list, in the server's order.

use std::time::Duration;

use clap::Parser;
use jobstream_worker::{JobContext, JobError, JobOptions, RetryPolicy, Timings, Worker};
use redis::AsyncCommands;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    #[arg(long)]
    queue: String,
    #[arg(long)]
    run: String,
    #[arg(long, default_value_t = 1000)]
    visibility_ms: u64,
}

/// Records `member` in set `key` (the entries a job was delivered from).
async fn record(
    conn: &mut redis::aio::ConnectionManager,
    key: String,
    member: &str,
) -> Result<(), JobError> {
    conn.sadd::<_, _, ()>(key, member)
        .await
        .map_err(|e| JobError::retry(format!("recording: {e}")))
}

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
    let visibility = Duration::from_millis(args.visibility_ms);
    let timings = Timings::default()
        .visibility_timeout(visibility)
        .lease_refresh(visibility / 4)
        .reclaim_interval(visibility / 4)
        .block(Duration::from_millis(500))
        .promote_interval(Duration::from_millis(50))
        .shutdown_grace(Duration::from_secs(2));
    let options = JobOptions::default().retry(RetryPolicy::exponential(
        20,
        Duration::from_millis(20),
        Duration::from_millis(200),
    ));
    let run = args.run.clone();
    let (r1, r2, r3, r4) = (
        recorder.clone(),
        recorder.clone(),
        recorder.clone(),
        recorder,
    );
    let (run1, run2, run3, run4) = (run.clone(), run.clone(), run.clone(), run);
    let worker = Worker::builder(&args.redis_url)
        .queue(&args.queue)
        .concurrency(8)
        .timings(timings)
        // A chain step adds its number to the previous step's sum; a step
        // that is handed a wrong sum fails for good (the test wants none).
        .handle_with("step", options.clone(), move |n: u64, ctx: JobContext| {
            let (mut conn, run) = (r1.clone(), run1.clone());
            async move {
                let prev: Option<u64> = ctx.previous_result()?;
                let want: u64 = (1..n).sum();
                if prev.unwrap_or(0) != want {
                    return Err(JobError::permanent(format!(
                        "step {n} got {prev:?}, wants {want}"
                    )));
                }
                record(
                    &mut conn,
                    format!("flow:{run}:step:{}", ctx.id()),
                    ctx.entry_id(),
                )
                .await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(want + n)
            }
        })
        .handle_with("member", options.clone(), move |n: u64, ctx: JobContext| {
            let (mut conn, run) = (r2.clone(), run2.clone());
            async move {
                record(
                    &mut conn,
                    format!("flow:{run}:member:{}", ctx.id()),
                    ctx.entry_id(),
                )
                .await?;
                tokio::time::sleep(Duration::from_millis(n % 5 * 10)).await;
                if n % 10 == 9 {
                    return Err(JobError::permanent("members ending in 9 fail"));
                }
                Ok(())
            }
        })
        // A job of a group: `start:N` and, on success, `ok:N` pushed to the
        // group's list; every seventh fails its first attempt (its retry
        // must hold the group).
        .handle_with(
            "ordered",
            options.clone(),
            move |n: u64, ctx: JobContext| {
                let (mut conn, run) = (r4.clone(), run4.clone());
                async move {
                    let key = format!("flow:{run}:order:{}", ctx.group().unwrap_or(""));
                    conn.rpush::<_, _, ()>(&key, format!("start:{n}"))
                        .await
                        .map_err(|e| JobError::retry(e.to_string()))?;
                    tokio::time::sleep(Duration::from_millis(10 + n % 4 * 10)).await;
                    if n % 7 == 3 && ctx.attempt() == 1 {
                        return Err(JobError::retry("fails its first attempt"));
                    }
                    conn.rpush::<_, _, ()>(&key, format!("ok:{n}"))
                        .await
                        .map_err(|e| JobError::retry(e.to_string()))?;
                    Ok(())
                }
            },
        )
        .handle_with("done", options, move |_: (), ctx: JobContext| {
            let (mut conn, run) = (r3.clone(), run3.clone());
            async move {
                let b = ctx
                    .batch()
                    .await?
                    .ok_or_else(|| JobError::permanent("no batch summary"))?;
                record(
                    &mut conn,
                    format!("flow:{run}:done:{}", b.id),
                    ctx.entry_id(),
                )
                .await?;
                let summary = format!("{}/{}/{}/{}", b.total, b.succeeded, b.failed, b.pending);
                conn.hset::<_, _, _, ()>(format!("flow:{run}:summary"), &b.id, summary)
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
                tokio::time::sleep(Duration::from_millis(30)).await;
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
