//! `jobstream dlq list|show|replay|discard`.

use clap::{Args, Subcommand, ValueEnum};
use jobstream_producer::inspect::{DeadFilter, DeadJob, Inspector};

use crate::out::{CliResult, confirm, require_queue, table_of};
use crate::time::{now_ms, relative, rfc3339};

/// Why a job is dead: the values the worker writes in `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Reason {
    /// Every attempt failed.
    Exhausted,
    /// The handler returned a permanent error.
    Permanent,
    /// Delivered too many times without an outcome (a poison message).
    Abandoned,
    /// The job could not be decoded.
    Malformed,
    /// No handler for its type.
    #[value(name = "unknown_type")]
    UnknownType,
    /// Not started by its start deadline.
    Expired,
    /// Shed from `ready` by the queue's backpressure limits.
    Shed,
    /// Written in a wire-format version this worker does not know: replay
    /// it once workers that know it run.
    #[value(name = "unsupported_version")]
    UnsupportedVersion,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::Exhausted => "exhausted",
            Reason::Permanent => "permanent",
            Reason::Abandoned => "abandoned",
            Reason::Malformed => "malformed",
            Reason::UnknownType => "unknown_type",
            Reason::Expired => "expired",
            Reason::Shed => "shed",
            Reason::UnsupportedVersion => "unsupported_version",
        }
    }
}

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
    /// With `discard --all`: do not ask for confirmation (needed when
    /// stdin is not a terminal).
    #[arg(long)]
    yes: bool,
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
    /// Only this reason.
    #[arg(long, value_enum)]
    reason: Option<Reason>,
}

impl Select {
    fn filter(&self, limit: usize) -> DeadFilter {
        let mut filter = DeadFilter::default().ids(self.ids.clone()).limit(limit);
        filter.job_type.clone_from(&self.job_type);
        filter.reason = self.reason.map(|r| r.as_str().to_owned());
        filter
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.job_type.is_none() && self.reason.is_none()
    }
}

fn require_selection(select: &Select, all: bool, verb: &str) -> CliResult<()> {
    if select.is_empty() && !all {
        return Err(
            format!("say which dead jobs to {verb}: --id, --type, --reason, or --all").into(),
        );
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

fn select_of(command: &DlqCommand) -> &Select {
    match command {
        DlqCommand::List { select, .. } | DlqCommand::Show { select, .. } => select,
        DlqCommand::Replay(b) | DlqCommand::Discard(b) => &b.select,
    }
}

/// Columns of `dlq list` (keys of its JSON objects).
const LIST_COLUMNS: &[&str] = &[
    "dead_id",
    "job_id",
    "job_type",
    "reason",
    "attempt",
    "failed_at_rfc3339",
    "failed",
    "error_class",
    "error",
];

pub(crate) async fn run(inspector: Inspector, command: DlqCommand) -> CliResult<()> {
    require_queue(&inspector, &select_of(&command).queue).await?;
    match command {
        DlqCommand::List {
            select,
            limit,
            json,
        } => {
            let limit = limit.unwrap_or(if json { 0 } else { 50 });
            let jobs = inspector
                .dead_list(&select.queue, &select.filter(limit))
                .await?;
            let now = now_ms();
            let rows: Vec<serde_json::Value> = jobs
                .iter()
                .map(|j| {
                    let mut v = serde_json::to_value(j).unwrap_or_default();
                    if j.failed_at > 0 {
                        // `failed_at` stays unix ms, as it always was.
                        v["failed_at_rfc3339"] = rfc3339(j.failed_at).into();
                        v["failed"] = relative(j.failed_at, now).into();
                    }
                    v
                })
                .collect();
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "queue": select.queue, "jobs": rows })
                );
            } else {
                if !rows.is_empty() {
                    println!("{}", table_of(LIST_COLUMNS, &rows));
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
                .await?;
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
        DlqCommand::Replay(Bulk {
            select, all, json, ..
        }) => {
            require_selection(&select, all, "replay")?;
            let n = inspector
                .dead_replay(&select.queue, &select.filter(0))
                .await?;
            report(json, "replayed", n, &select.queue);
        }
        DlqCommand::Discard(Bulk {
            select,
            all,
            yes,
            json,
        }) => {
            require_selection(&select, all, "discard")?;
            if all && select.is_empty() {
                confirm(
                    &format!("delete every dead job of queue {:?} for good", select.queue),
                    &select.queue,
                    yes,
                )?;
            }
            let n = inspector
                .dead_discard(&select.queue, &select.filter(0))
                .await?;
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
