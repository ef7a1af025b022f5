//! `jobstream`: enqueue jobs, read queue stats, check that the books
//! balance, and inspect, replay or discard dead letters. Reads `REDIS_URL`.

mod check;
mod dlq;
mod job;
mod workers;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jobstream_producer::inspect::{Inspector, QueueStats};
use jobstream_producer::{NewJob, Producer, ProducerOptions};

#[derive(Parser)]
#[command(
    name = "jobstream",
    version,
    about = "jobstream: enqueue, stats, check, dead letters",
    after_help = "Exit status: 0 success, 1 error, 3 usage error. `check` has its own: \
                  0 OK, 1 mismatch, 2 warnings only, 3 could not check (see `jobstream check --help`)."
)]
struct Cli {
    /// Redis URL.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    /// Key prefix.
    #[arg(
        long,
        env = "JOBSTREAM_PREFIX",
        default_value = "jobstream",
        global = true
    )]
    prefix: String,
    /// Consumer group the workers use.
    #[arg(
        long,
        env = "JOBSTREAM_GROUP",
        default_value = "workers",
        global = true
    )]
    group: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enqueue one job with a JSON payload (sent as MessagePack).
    Enqueue {
        /// Queue name.
        #[arg(long)]
        queue: String,
        /// Job type (handler name).
        #[arg(long = "type")]
        job_type: String,
        /// Payload as JSON, e.g. '{"to":"a@b.c"}'.
        #[arg(long, default_value = "{}")]
        payload_json: String,
        /// Run after this delay, e.g. 30s, 5m, 500ms.
        #[arg(long, value_parser = humantime::parse_duration)]
        delay: Option<Duration>,
        /// Override the handler's maximum attempts.
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Idempotency key for the handler.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Keep a record of the job for this long after it ends (e.g. 1h),
        /// for `jobstream job show|wait|cancel`.
        #[arg(long, value_parser = humantime::parse_duration)]
        keep_record: Option<Duration>,
        /// Uniqueness key: while a job with it is queued or running, this
        /// one is not enqueued (the holder's id is printed).
        #[arg(long)]
        unique: Option<String>,
    },
    /// Queue depth, in-flight, scheduled, dead and counters.
    Stats {
        /// Only this queue (default: every known queue).
        #[arg(long)]
        queue: Option<String>,
        /// One JSON object: {"queues":[...]}.
        #[arg(long)]
        json: bool,
    },
    /// Do the books of every queue balance? And Redis settings that lose jobs.
    #[command(long_about = CHECK_ABOUT)]
    Check(check::CheckArgs),
    /// Dead-letter stream: list, show, replay, discard.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// One job by id, through its record: show, wait, cancel.
    Job {
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// The workers that wrote a heartbeat (every 5 s): live, or stale when
    /// silent for more than 15 s (killed, stalled, cut off).
    Workers {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Serve every known queue's gauges (backlog, in flight, scheduled,
    /// dead, oldest job's age) at /metrics, with /livez and /readyz, for
    /// fleets that scale workers to zero. Runs until SIGTERM or Ctrl-C.
    Exporter {
        /// Listen address.
        #[arg(long, default_value = "0.0.0.0:9465")]
        listen: std::net::SocketAddr,
    },
}

const CHECK_ABOUT: &str = "\
Do the books balance? For every known queue (or --queue), proves that every entry
ever added to ready is accounted for:

  entries added (XINFO STREAM entries-added) == in ready now + processed + discarded
      + expired + cancelled + retried + requeued + (dead - dead_scheduled)

read in one MULTI/EXEC, so it holds exactly even while workers run. A difference
means entries were deleted outside jobstream (XDEL, XTRIM, DEL by hand, eviction).
Then reads the server's maxmemory-policy, appendonly and appendfsync and warns about
settings that can lose jobs (a refused CONFIG gives a note, not a failure).

Exit status:
  0  every queue balances and there is no warning (a note alone is fine)
  1  MISMATCH: a queue's books do not balance
  2  the books balance, but a Redis setting can lose jobs (WARN lines)
  3  the check could not be done: Redis unreachable, a server without
     XINFO entries-added (Redis before 7.0), or a usage error";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            // Not clap's 2: `check` uses 2 for "warnings only".
            return ExitCode::from(check::CANNOT_CHECK);
        }
    };
    let failure = if matches!(cli.command, Command::Check(_)) {
        ExitCode::from(check::CANNOT_CHECK)
    } else {
        ExitCode::FAILURE
    };
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            failure
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Enqueue {
            queue,
            job_type,
            payload_json,
            delay,
            max_attempts,
            idempotency_key,
            keep_record,
            unique,
        } => {
            let payload: serde_json::Value = serde_json::from_str(&payload_json)
                .map_err(|e| format!("--payload-json is not valid JSON: {e}"))?;
            let mut job = NewJob::new(&job_type, &payload).map_err(|e| e.to_string())?;
            if let Some(d) = delay {
                job = job.delay(d);
            }
            if let Some(n) = max_attempts {
                job = job.max_attempts(n);
            }
            if let Some(k) = idempotency_key {
                job = job.idempotency_key(k);
            }
            if let Some(keep) = keep_record {
                job = job.keep_record(keep);
            }
            if let Some(key) = unique {
                job = job
                    .unique(key, jobstream_producer::Uniqueness::UntilDone)
                    .map_err(|e| e.to_string())?;
            }
            let options = ProducerOptions::default().prefix(cli.prefix.clone());
            let producer =
                Producer::with_options(&cli.redis_url, options).map_err(|e| e.to_string())?;
            let id = producer
                .enqueue_job(&queue, job)
                .await
                .map_err(|e| e.to_string())?;
            println!("{id}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats { queue, json } => {
            let inspector = Inspector::connect(&cli.redis_url, &cli.prefix)
                .await
                .map_err(|e| e.to_string())?
                .with_group(&cli.group);
            let names = match queue {
                Some(q) => vec![q],
                None => inspector.queues().await.map_err(|e| e.to_string())?,
            };
            let mut all = Vec::with_capacity(names.len());
            for name in &names {
                all.push(inspector.stats(name).await.map_err(|e| e.to_string())?);
            }
            if json {
                println!("{}", serde_json::json!({ "queues": all }));
            } else {
                print_stats(&all);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let inspector = Inspector::connect(&cli.redis_url, &cli.prefix)
                .await
                .map_err(|e| e.to_string())?
                .with_group(&cli.group);
            check::run(inspector, args).await
        }
        Command::Dlq { command } => {
            let inspector = Inspector::connect(&cli.redis_url, &cli.prefix)
                .await
                .map_err(|e| e.to_string())?
                .with_group(&cli.group);
            dlq::run(inspector, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Workers { json } => {
            let inspector = Inspector::connect(&cli.redis_url, &cli.prefix)
                .await
                .map_err(|e| e.to_string())?;
            workers::run(inspector, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exporter { listen } => {
            eprintln!("serving queue metrics on http://{listen}/metrics");
            let stop = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async {
                        match term.as_mut() {
                            Some(t) => { t.recv().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => {}
                }
            };
            jobstream_worker::serve_queue_metrics(
                &cli.redis_url,
                &cli.prefix,
                &cli.group,
                listen,
                stop,
            )
            .await
            .map_err(|e| e.to_string())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Job { command } => {
            let code = job::run(&cli.redis_url, &cli.prefix, command).await?;
            Ok(ExitCode::from(code))
        }
    }
}

fn print_stats(all: &[QueueStats]) {
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>7} {:>10} {:>12} {:>11} {:>8} {:>9} {:>12}",
        "queue",
        "ready",
        "in_flight",
        "scheduled",
        "dead",
        "dead_sched",
        "dead_trimmed",
        "processed",
        "retried",
        "consumers",
        "oldest_ms"
    );
    for s in all {
        println!(
            "{:<24} {:>9} {:>9} {:>9} {:>7} {:>10} {:>12} {:>11} {:>8} {:>9} {:>12}",
            s.name,
            s.ready,
            s.in_flight,
            s.scheduled,
            s.dead,
            s.dead_scheduled,
            s.dead_trimmed,
            s.processed,
            s.retried,
            s.consumers,
            s.oldest_ready_age_ms
        );
    }
    if all.is_empty() {
        println!("(no queues known yet)");
    }
    for s in all.iter().filter(|s| s.dead_trimmed > 0) {
        println!(
            "WARN {}: {} dead letters were dropped by the dead_max_len cap",
            s.name, s.dead_trimmed
        );
    }
}
