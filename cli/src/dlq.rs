//! `jobstream dlq list|show|replay|discard`.

use clap::{Args, Subcommand};
use jobstream_producer::inspect::{DeadFilter, DeadJob, Inspector};

#[derive(Subcommand)]
pub(crate) enum DlqCommand {
    /// List dead jobs (oldest first).
    List {
        #[command(flatten)]
        select: Select,
        /// At most this many (0 = all). Default: all with --json, 50 otherwise.
        #[arg(long)]
        limit: Option<usize>,
        /// One JSON object: {"queue":..,"jobs":[...]}.
        #[arg(long)]
        json: bool,
    },
    /// Show dead jobs in full, payload included (decoded to JSON).
    Show {
        #[command(flatten)]
        select: Select,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Move dead jobs back to the queue (same job id, attempts reset).
    Replay(Bulk),
    /// Delete dead jobs.
    Discard(Bulk),
}

/// What `replay` and `discard` act on.
#[derive(Args)]
pub(crate) struct Bulk {
    #[command(flatten)]
    select: Select,
    /// Every dead job of the queue.
    #[arg(long)]
    all: bool,
    /// JSON output.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct Select {
    /// Queue name.
    #[arg(long)]
    queue: String,
    /// Dead entry id or job id (repeatable).
    #[arg(long = "id")]
    ids: Vec<String>,
    /// Only this job type.
    #[arg(long = "type")]
    job_type: Option<String>,
    /// Only this reason (exhausted, permanent, abandoned, malformed, unknown_type).
    #[arg(long)]
    reason: Option<String>,
}

impl Select {
    fn filter(&self, limit: usize) -> DeadFilter {
        let mut filter = DeadFilter::default().ids(self.ids.clone()).limit(limit);
        filter.job_type.clone_from(&self.job_type);
        filter.reason.clone_from(&self.reason);
        filter
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.job_type.is_none() && self.reason.is_none()
    }
}

fn require_selection(select: &Select, all: bool, verb: &str) -> Result<(), String> {
    if select.is_empty() && !all {
        return Err(format!(
            "say which dead jobs to {verb}: --id, --type, --reason, or --all"
        ));
    }
    Ok(())
}

fn payload_json(job: &DeadJob) -> serde_json::Value {
    rmp_serde::from_slice::<serde_json::Value>(&job.payload).unwrap_or_else(|_| {
        serde_json::Value::String(format!(
            "<{} bytes, not JSON-representable>",
            job.payload.len()
        ))
    })
}

pub(crate) async fn run(inspector: Inspector, command: DlqCommand) -> Result<(), String> {
    match command {
        DlqCommand::List {
            select,
            limit,
            json,
        } => {
            let limit = limit.unwrap_or(if json { 0 } else { 50 });
            let jobs = inspector
                .dead_list(&select.queue, &select.filter(limit))
                .await
                .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "queue": select.queue, "jobs": jobs })
                );
            } else {
                println!(
                    "{:<20} {:<24} {:<16} {:<12} {:>7}  error",
                    "dead_id", "job_id", "type", "reason", "attempt"
                );
                for j in &jobs {
                    println!(
                        "{:<20} {:<24} {:<16} {:<12} {:>7}  {}: {}",
                        j.dead_id,
                        j.job_id,
                        j.job_type,
                        j.reason,
                        j.attempt,
                        j.error_class,
                        j.error
                    );
                }
                if limit > 0 && jobs.len() == limit {
                    println!("(first {limit} shown; --limit 0 for all)");
                } else {
                    println!("({} dead jobs)", jobs.len());
                }
            }
        }
        DlqCommand::Show { select, json } => {
            let jobs = inspector
                .dead_list(&select.queue, &select.filter(0))
                .await
                .map_err(|e| e.to_string())?;
            let shown: Vec<serde_json::Value> = jobs
                .iter()
                .map(|j| {
                    let mut v = serde_json::to_value(j).unwrap_or_default();
                    v["payload"] = payload_json(j);
                    v
                })
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "queue": select.queue, "jobs": shown })
                );
            } else {
                for v in &shown {
                    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
                }
            }
        }
        DlqCommand::Replay(Bulk { select, all, json }) => {
            require_selection(&select, all, "replay")?;
            let n = inspector
                .dead_replay(&select.queue, &select.filter(0))
                .await
                .map_err(|e| e.to_string())?;
            report(json, "replayed", n, &select.queue);
        }
        DlqCommand::Discard(Bulk { select, all, json }) => {
            require_selection(&select, all, "discard")?;
            let n = inspector
                .dead_discard(&select.queue, &select.filter(0))
                .await
                .map_err(|e| e.to_string())?;
            report(json, "discarded", n, &select.queue);
        }
    }
    Ok(())
}

fn report(json: bool, verb: &str, n: u64, queue: &str) {
    if json {
        println!("{}", serde_json::json!({ "queue": queue, verb: n }));
    } else {
        println!("{verb} {n} dead jobs of {queue:?}");
    }
}
