//! `jobstream`: enqueue jobs, read queue stats, check that the books
//! balance, find, list, cancel and purge jobs, and inspect, replay or
//! discard dead letters. Reads `REDIS_URL`.

mod check;
mod cron;
mod dashboard;
mod dlq;
mod job;
mod jobs;
mod out;
mod queue;
mod queues;
mod time;
mod workers;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jobstream_producer::inspect::Inspector;
use jobstream_producer::{NewJob, Producer, ProducerOptions};

use crate::out::CliResult;

#[derive(Parser)]
#[command(
    name = "jobstream",
    version,
    about = "jobstream: enqueue, stats, check, find and cancel jobs, purge, dead letters",
    after_help = "Every command takes --json. Times are shown as RFC 3339 (UTC) and relative \
                  (\"3 min ago\").\n\
                  Exit status: 0 success, 1 error (an unknown queue, a refused action, Redis \
                  unreachable), 3 usage error (an unknown option or value). `check` has its own: \
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
        /// The job's group (a tenant, a customer; the wire field `group`,
        /// not the consumer group of --group): the group's jobs run in
        /// order, the queue's group concurrency at a time.
        #[arg(long)]
        job_group: Option<String>,
        /// JSON output: {"queue":..,"id":..}.
        #[arg(long)]
        json: bool,
    },
    /// Every known queue with its stats, one row each.
    Queues {
        /// One JSON object: {"queues":[...]}.
        #[arg(long)]
        json: bool,
    },
    /// Queue depth, in-flight, scheduled, dead and counters; live with
    /// --watch (rates per second).
    Stats {
        /// Only this queue (default: every known queue).
        #[arg(long)]
        queue: Option<String>,
        /// One JSON object: {"queues":[...]} (with --watch: one per line
        /// per sample, rates included).
        #[arg(long)]
        json: bool,
        /// Redraw every --interval, with enqueued/s, processed/s,
        /// retried/s and dead/s, until Ctrl-C.
        #[arg(long)]
        watch: bool,
        /// Time between samples with --watch (e.g. 2s, 500ms; at least 100ms).
        #[arg(long, default_value = "2s", value_parser = watch_interval, requires = "watch")]
        interval: Duration,
    },
    /// The jobs of a queue in one state.
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
    /// Queue-wide actions: pause, resume, purge.
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// Do the books of every queue balance? And Redis settings that lose jobs.
    #[command(long_about = CHECK_ABOUT)]
    Check(check::CheckArgs),
    /// Dead-letter stream: list, show, replay, discard.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// One job by id: show (wherever it is), wait, cancel.
    Job {
        #[command(subcommand)]
        command: job::JobCommand,
    },
    /// The workers that wrote a heartbeat (every 5 s): host, last seen,
    /// jobs held (busy), live or stale when silent for more than 15 s
    /// (killed, stalled, cut off).
    Workers {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Periodic jobs (cron schedules) the workers declared: list, forget.
    Cron {
        #[command(subcommand)]
        command: cron::CronCommand,
    },
    /// Serve every known queue's gauges (backlog, in flight, scheduled,
    /// dead, oldest job's age) at /metrics, with /livez and /readyz, for
    /// fleets that scale workers to zero. Runs until SIGTERM or Ctrl-C.
    Exporter {
        /// Listen address.
        #[arg(long, default_value = "0.0.0.0:9465")]
        listen: std::net::SocketAddr,
    },
    /// Move due jobs (delayed, or waiting for a retry) from scheduled to
    /// ready, as workers do, for fleets that scale workers to zero: a due
    /// job then raises the stream's lag, which starts a worker (KEDA's
    /// redis-streams trigger). Safe beside workers and other promoters.
    /// Runs until SIGTERM or Ctrl-C.
    Promote {
        /// A queue to promote (repeat for several).
        #[arg(long = "queue", required = true)]
        queues: Vec<String>,
    },
    /// The web dashboard: queues, jobs, dead letters, workers, schedules,
    /// with actions (pause, run now, cancel, replay, discard). Localhost
    /// only by default; see docs/dashboard.md. Runs until SIGTERM or
    /// Ctrl-C.
    Dashboard(dashboard::DashboardArgs),
}

const CHECK_ABOUT: &str = "\
Do the books balance? For every known queue (or --queue), proves that every entry
ever added to ready is accounted for:

  entries added (XINFO STREAM entries-added) == in ready now + processed + discarded
      + expired + cancelled + retried + requeued + throttled + held
      + (dead - dead_scheduled)

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

// Several threads: the dashboard serves many requests at once, and one
// slow read must not hold up every other page.
#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    // `jobstream jobs list … | head`: a reader that stops early is not an
    // error. Rust ignores SIGPIPE, so println! panics on the closed pipe;
    // end quietly instead.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
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
    let server = jobstream_core::connection::redact_url(&cli.redis_url);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", e.render(&server));
            failure
        }
    }
}

/// Where to connect: the global options.
struct Conn {
    redis_url: String,
    prefix: String,
    group: String,
}

async fn inspector(cli: &Conn) -> CliResult<Inspector> {
    Ok(Inspector::connect(&cli.redis_url, &cli.prefix)
        .await?
        .with_group(&cli.group))
}

async fn run(cli: Cli) -> CliResult<ExitCode> {
    let Cli {
        redis_url,
        prefix,
        group,
        command,
    } = cli;
    let cli = Conn {
        redis_url,
        prefix,
        group,
    };
    match command {
        Command::Enqueue {
            queue,
            job_type,
            payload_json,
            delay,
            max_attempts,
            idempotency_key,
            keep_record,
            unique,
            job_group,
            json,
        } => {
            let payload: serde_json::Value = serde_json::from_str(&payload_json)
                .map_err(|e| format!("--payload-json is not valid JSON: {e}"))?;
            let mut job = NewJob::new(&job_type, &payload)?;
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
                job = job.unique(key, jobstream_producer::Uniqueness::UntilDone)?;
            }
            if let Some(g) = job_group {
                job = job.group(g)?;
            }
            let options = ProducerOptions::default().prefix(cli.prefix.clone());
            let producer = Producer::with_options(&cli.redis_url, options)?;
            let id = producer.enqueue_job(&queue, job).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "queue": queue, "id": id.to_string() })
                );
            } else {
                println!("{id}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Queues { json } => {
            queues::queues(&inspector(&cli).await?, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stats {
            queue,
            json,
            watch,
            interval,
        } => {
            let inspector = inspector(&cli).await?;
            if watch {
                queues::watch(&inspector, queue.as_deref(), json, interval).await?;
            } else {
                queues::stats(&inspector, queue.as_deref(), json).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Jobs { command } => {
            let inspector = inspector(&cli).await?;
            jobs::run(&inspector, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Queue { command } => {
            let inspector = inspector(&cli).await?;
            queue::run(&inspector, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            let inspector = inspector(&cli).await?;
            check::run(inspector, args).await
        }
        Command::Dlq { command } => {
            let inspector = inspector(&cli).await?;
            dlq::run(inspector, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Workers { json } => {
            let inspector = inspector(&cli).await?;
            workers::run(inspector, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cron { command } => {
            let inspector = inspector(&cli).await?;
            cron::run(&inspector, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Promote { queues } => {
            eprintln!("promoting due jobs of {}", queues.join(", "));
            jobstream_worker::run_promoter(
                &cli.redis_url,
                &cli.prefix,
                &cli.group,
                &queues,
                stop_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dashboard(args) => {
            dashboard::run(
                &cli.redis_url,
                &cli.prefix,
                &cli.group,
                &args,
                stop_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exporter { listen } => {
            eprintln!("serving queue metrics on http://{listen}/metrics");
            jobstream_worker::serve_queue_metrics(
                &cli.redis_url,
                &cli.prefix,
                &cli.group,
                listen,
                stop_signal(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Job { command } => {
            let inspector = inspector(&cli).await?;
            let options = ProducerOptions::default().prefix(cli.prefix.clone());
            let producer = Producer::with_options(&cli.redis_url, options)?;
            let code = job::run(&producer, &inspector, command).await?;
            Ok(ExitCode::from(code))
        }
    }
}

/// `--interval`: a duration of at least 100 ms (a shorter one would only
/// load Redis).
fn watch_interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) {
        return Err("must be at least 100ms".into());
    }
    Ok(d)
}

/// Resolves on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}
