//! The jobstream quickstart: `worker` serves `send_email` jobs, `produce`
//! enqueues them. Some jobs can be made to fail on purpose, so retries and
//! the dead-letter stream can be watched at work (`jobstream stats`,
//! `jobstream dlq list`).

use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use jobstream_producer::{NewJob, Producer};
use jobstream_worker::{JobContext, JobError, JobOptions, RetryPolicy, Timings, Worker};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

#[derive(Parser)]
#[command(about = "jobstream quickstart: a send_email worker and a producer")]
struct Cli {
    /// Redis URL.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve `send_email` jobs until SIGTERM or Ctrl-C.
    Worker {
        /// Queue to serve.
        #[arg(long, default_value = "emails")]
        queue: String,
        /// Jobs run at once.
        #[arg(long, default_value_t = 20)]
        concurrency: usize,
        /// Attempts per job before it goes to dead.
        #[arg(long, default_value_t = 5)]
        max_attempts: u32,
        /// First retry wait in ms (doubles per attempt, equal jitter).
        #[arg(long, default_value_t = 500)]
        backoff_ms: u64,
        /// Longest retry wait in ms.
        #[arg(long, default_value_t = 30_000)]
        backoff_max_ms: u64,
        /// Visibility timeout in ms: jobs of a dead worker are taken over
        /// after this long. The lease is refreshed every third of it.
        #[arg(long, default_value_t = 30_000)]
        visibility_timeout_ms: u64,
        /// How long running jobs may finish after SIGTERM, ms.
        #[arg(long, default_value_t = 30_000)]
        shutdown_grace_ms: u64,
        /// Serve /metrics, /livez and /readyz here (e.g. 0.0.0.0:9464);
        /// off when unset.
        #[arg(long, env = "JOBSTREAM_HTTP_ADDR")]
        http_addr: Option<std::net::SocketAddr>,
    },
    /// Enqueue `send_email` jobs.
    Produce {
        /// Queue to enqueue to.
        #[arg(long, default_value = "emails")]
        queue: String,
        /// Number of jobs.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// Enqueue delay in ms: jobs run this long after enqueue (0 = now).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Simulated SMTP time per job in ms (the payload's `delay_ms`).
        #[arg(long)]
        work_ms: Option<u64>,
        /// Share of jobs (0..1) that fail transiently on their first 2 attempts.
        #[arg(long, default_value_t = 0.0)]
        fail_ratio: f64,
        /// Share of jobs (0..1) that fail permanently (straight to dead).
        #[arg(long, default_value_t = 0.0)]
        permanent_ratio: f64,
    },
}

/// The payload of a `send_email` job.
#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
    /// Simulated SMTP time, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
    /// Fail transiently on the first k attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fail_attempts: Option<u32>,
    /// Fail permanently with this message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    permanent_error: Option<String>,
}

async fn send_email(email: Email, job: JobContext) -> Result<(), JobError> {
    let work = Duration::from_millis(email.delay_ms.unwrap_or(3));
    tokio::time::sleep(work).await;
    if let Some(message) = email.permanent_error {
        return Err(JobError::permanent(message).with_class("smtp_rejected"));
    }
    if job.attempt() <= email.fail_attempts.unwrap_or(0) {
        return Err(JobError::retry("simulated SMTP 451: try again later").with_class("smtp_busy"));
    }
    tracing::debug!(job_id = job.id(), attempt = job.attempt(), "email sent");
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // RUST_LOG for the level, JOBSTREAM_LOG_FORMAT=json for JSON lines;
    // with OTEL_EXPORTER_OTLP_ENDPOINT set, spans go there too (the guard
    // flushes them when main returns).
    #[allow(clippy::let_unit_value)] // `()` without the `otel` feature
    let _otel = init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Worker {
            queue,
            concurrency,
            max_attempts,
            backoff_ms,
            backoff_max_ms,
            visibility_timeout_ms,
            shutdown_grace_ms,
            http_addr,
        } => {
            let visibility = Duration::from_millis(visibility_timeout_ms);
            let timings = Timings::default()
                .visibility_timeout(visibility)
                .lease_refresh(visibility / 3)
                .reclaim_interval((visibility / 6).max(Duration::from_millis(100)))
                .shutdown_grace(Duration::from_millis(shutdown_grace_ms));
            let options = JobOptions::default().retry(RetryPolicy::exponential(
                max_attempts,
                Duration::from_millis(backoff_ms),
                Duration::from_millis(backoff_max_ms),
            ));
            let mut builder = Worker::builder(&cli.redis_url)
                .queue(&queue)
                .concurrency(concurrency)
                .timings(timings)
                .handle_with("send_email", options, send_email);
            if let Some(addr) = http_addr {
                builder = builder.serve_http(addr);
            }
            match builder.build() {
                Ok(worker) => worker.run().await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        Command::Produce {
            queue,
            count,
            delay_ms,
            work_ms,
            fail_ratio,
            permanent_ratio,
        } => {
            produce(
                &cli.redis_url,
                &queue,
                count,
                delay_ms,
                work_ms,
                fail_ratio,
                permanent_ratio,
            )
            .await
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The usual log lines; spans over OTLP too when an endpoint is set.
#[cfg(feature = "otel")]
fn init_tracing() -> Option<jobstream_worker::otel::OtelGuard> {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        jobstream_worker::init_logging();
        return None;
    }
    match jobstream_worker::otel::init("example-quickstart") {
        Ok(guard) => guard,
        Err(e) => {
            jobstream_worker::init_logging();
            tracing::warn!(error = %e, "no OTLP export");
            None
        }
    }
}

/// The usual log lines.
#[cfg(not(feature = "otel"))]
fn init_tracing() {
    jobstream_worker::init_logging();
}

async fn produce(
    url: &str,
    queue: &str,
    count: usize,
    delay_ms: u64,
    work_ms: Option<u64>,
    fail_ratio: f64,
    permanent_ratio: f64,
) -> Result<(), String> {
    let producer = Producer::connect(url).await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let (mut failing, mut permanent) = (0, 0);
    let mut enqueued = 0;
    while enqueued < count {
        let n = (count - enqueued).min(1000);
        let mut jobs = Vec::with_capacity(n);
        for i in enqueued..enqueued + n {
            let roll: f64 = rand::random();
            let email = Email {
                to: format!("user{i}@example.com"),
                subject: "hello from jobstream".into(),
                delay_ms: work_ms,
                permanent_error: (roll < permanent_ratio)
                    .then(|| "simulated SMTP 550: mailbox does not exist".into()),
                fail_attempts: (roll >= permanent_ratio && roll < permanent_ratio + fail_ratio)
                    .then_some(2),
            };
            permanent += usize::from(email.permanent_error.is_some());
            failing += usize::from(email.fail_attempts.is_some());
            let job = NewJob::new("send_email", &email).map_err(|e| e.to_string())?;
            jobs.push(job.delay(Duration::from_millis(delay_ms)));
        }
        // One span per batch: with `otel`, its jobs carry its trace
        // context, and each handler's span continues that trace.
        let span = tracing::info_span!("enqueue_batch", queue, jobs = n);
        producer
            .enqueue_many(queue, jobs)
            .instrument(span)
            .await
            .map_err(|e| e.to_string())?;
        enqueued += n;
    }
    println!(
        "enqueued {count} send_email jobs to {queue:?} in {} ms ({failing} fail twice then succeed, {permanent} fail permanently{})",
        started.elapsed().as_millis(),
        if delay_ms > 0 {
            format!(", delayed {delay_ms} ms")
        } else {
            String::new()
        },
    );
    Ok(())
}
