//! `jobstream`: enqueue jobs, read queue stats, and inspect, replay or
//! discard dead letters. Reads `REDIS_URL`.

mod dlq;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use jobstream_producer::inspect::{Inspector, QueueStats};
use jobstream_producer::{Job, Producer, ProducerOptions};

#[derive(Parser)]
#[command(
    name = "jobstream",
    version,
    about = "jobstream: enqueue, stats, dead letters"
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
    /// Dead-letter stream: list, show, replay, discard.
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Enqueue {
            queue,
            job_type,
            payload_json,
            delay,
            max_attempts,
            idempotency_key,
        } => {
            let payload: serde_json::Value = serde_json::from_str(&payload_json)
                .map_err(|e| format!("--payload-json is not valid JSON: {e}"))?;
            let mut job = Job::new(&job_type, &payload).map_err(|e| e.to_string())?;
            if let Some(d) = delay {
                job = job.delay(d);
            }
            if let Some(n) = max_attempts {
                job = job.max_attempts(n);
            }
            if let Some(k) = idempotency_key {
                job = job.idempotency_key(k);
            }
            let options = ProducerOptions {
                prefix: cli.prefix.clone(),
                ..ProducerOptions::default()
            };
            let producer =
                Producer::with_options(&cli.redis_url, options).map_err(|e| e.to_string())?;
            let id = producer
                .enqueue_job(&queue, job)
                .await
                .map_err(|e| e.to_string())?;
            println!("{id}");
            Ok(())
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
            Ok(())
        }
        Command::Dlq { command } => {
            let inspector = Inspector::connect(&cli.redis_url, &cli.prefix)
                .await
                .map_err(|e| e.to_string())?
                .with_group(&cli.group);
            dlq::run(inspector, command).await
        }
    }
}

fn print_stats(all: &[QueueStats]) {
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>7} {:>11} {:>8} {:>9} {:>12}",
        "queue",
        "ready",
        "in_flight",
        "scheduled",
        "dead",
        "processed",
        "retried",
        "consumers",
        "oldest_ms"
    );
    for s in all {
        println!(
            "{:<24} {:>9} {:>9} {:>9} {:>7} {:>11} {:>8} {:>9} {:>12}",
            s.name,
            s.ready,
            s.in_flight,
            s.scheduled,
            s.dead,
            s.processed,
            s.retried,
            s.consumers,
            s.oldest_ready_age_ms
        );
    }
    if all.is_empty() {
        println!("(no queues known yet)");
    }
}
