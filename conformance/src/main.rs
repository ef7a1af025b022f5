//! `jobstream-conformance`: plays the wire-format conformance vectors
//! (conformance/v1/entries.json) against a real jobstream worker, and checks
//! a producer in any language against conformance/v1/producer.json by
//! running its driver. See conformance/README.md.

mod entries;
mod handlers;
mod outcome;
mod producer;
mod redis_io;
mod values;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::Value as Json;

use crate::handlers::Seen;

#[derive(Parser, Debug)]
#[command(
    name = "jobstream-conformance",
    about = "Checks the jobstream wire format against a real worker"
)]
struct Cli {
    /// The Redis server to play against (never flushed: each run uses a queue of its own).
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write every consumer vector, run a worker, check every outcome.
    Entries {
        /// The vectors.
        #[arg(long, default_value_os_t = default_file("entries.json"))]
        file: PathBuf,
        /// Only the cases whose name contains this.
        #[arg(long)]
        only: Option<String>,
    },
    /// Run a producer's driver (the command after `--`), check what it
    /// wrote, then run a worker and check every outcome.
    Producer {
        /// The producer cases.
        #[arg(long, default_value_os_t = default_file("producer.json"))]
        file: PathBuf,
        /// The driver command and its arguments.
        #[arg(last = true, required = true)]
        driver: Vec<String>,
    },
}

/// `conformance/v1/NAME` of this checkout.
fn default_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("v1").join(name)
}

/// One run: the server and the queue of its own.
#[derive(Debug, Clone)]
pub struct Run {
    /// The Redis URL.
    pub url: String,
    /// `conformance-<random>`.
    pub queue: String,
}

impl Run {
    /// Runs `body` while a worker with the conformance handlers serves the
    /// run's queue; stops the worker after.
    pub async fn with_worker<F, Fut, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(Seen) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let seen = Seen::default();
        let worker = handlers::worker(&self.url, &self.queue, &seen)?;
        let handle = worker.shutdown_handle();
        let running = tokio::spawn(worker.run_until_stopped());
        let result = body(seen).await;
        handle.shutdown();
        running
            .await
            .context("the worker task")?
            .context("the worker")?;
        result
    }
}

/// The `cases` array of a conformance file.
pub fn read_cases(file: &Path) -> Result<Vec<Json>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let doc: Json =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    if doc.get("format").and_then(Json::as_str) != Some("jobstream-conformance/1") {
        bail!(
            "{}: \"format\" is not \"jobstream-conformance/1\"",
            file.display()
        );
    }
    match doc.get("cases") {
        Some(Json::Array(cases)) => Ok(cases.clone()),
        _ => bail!("{}: no \"cases\" array", file.display()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let run = Run {
        url: cli.url.clone(),
        queue: format!("conformance-{:016x}", rand::random::<u64>()),
    };
    eprintln!("queue {}", run.queue);
    let result = match &cli.command {
        Command::Entries { file, only } => entries::play(&run, file, only.as_deref()).await,
        Command::Producer { file, driver } => producer::check(&run, file, driver).await,
    };
    match result {
        Ok(failures) if failures.is_empty() => {
            eprintln!("conformance: every case holds");
            ExitCode::SUCCESS
        }
        Ok(failures) => {
            for f in &failures {
                eprintln!("FAIL {f}");
            }
            eprintln!("conformance: {} failures", failures.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("conformance: cannot run: {e:#}");
            ExitCode::from(2)
        }
    }
}
