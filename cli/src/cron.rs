//! `jobstream cron list|forget`: the periodic jobs the workers declared,
//! with their last and next tick.

use clap::Subcommand;
use jobstream_producer::inspect::{CronListing, Inspector};

use crate::out::{CliResult, table_of};
use crate::time::{relative, rfc3339};

#[derive(Subcommand)]
pub(crate) enum CronCommand {
    /// Every cron schedule workers declared (when they started): its
    /// queue, job type, expression and time zone, missed-fire policy, the
    /// last tick fired (fleet-wide, once per tick) and the next one.
    List {
        /// One JSON object: {"crons":[...]}.
        #[arg(long)]
        json: bool,
    },
    /// Remove a schedule no worker declares any more from the list (a
    /// worker that still declares it puts it back when it starts).
    Forget {
        /// Schedule name.
        name: String,
        /// JSON output: {"name":..,"removed":bool}.
        #[arg(long)]
        json: bool,
    },
}

/// Columns of the table (keys of the JSON objects).
const COLUMNS: &[&str] = &[
    "name",
    "queue",
    "job_type",
    "cron",
    "time_zone",
    "missed",
    "last_fired",
    "next",
    "next_at",
];

fn missed(c: &CronListing) -> String {
    match c.info.missed.as_str() {
        "run_each" => format!("run_each(max {})", c.info.missed_max),
        other => other.to_owned(),
    }
}

fn row(c: &CronListing, now: u64) -> serde_json::Value {
    serde_json::json!({
        "name": c.info.name,
        "queue": c.info.queue,
        "job_type": c.info.job_type,
        "cron": c.info.cron,
        "time_zone": c.info.time_zone,
        "missed": missed(c),
        "missed_policy": c.info.missed,
        "missed_max": c.info.missed_max,
        "last_fired_at": c.last_fired_ms.map(rfc3339),
        "last_fired_ms": c.last_fired_ms,
        "last_fired": c.last_fired_ms.map_or_else(|| "never".to_owned(), |ms| relative(ms, now)),
        "next_at": c.next_at_ms.map(rfc3339),
        "next_at_ms": c.next_at_ms,
        "next": c.next_at_ms.map(|ms| relative(ms, now)),
        "declared_by": c.info.worker,
        "declared_at": rfc3339(c.info.declared_at_ms),
    })
}

pub(crate) async fn run(inspector: &Inspector, command: CronCommand) -> CliResult<()> {
    match command {
        CronCommand::List { json } => {
            let (crons, now) = inspector.crons().await?;
            let rows: Vec<serde_json::Value> = crons.iter().map(|c| row(c, now)).collect();
            if json {
                println!("{}", serde_json::json!({ "crons": rows }));
            } else if crons.is_empty() {
                println!("(no cron schedule declared: workers declare theirs when they start)");
            } else {
                println!("{}", table_of(COLUMNS, &rows));
            }
        }
        CronCommand::Forget { name, json } => {
            let removed = inspector.cron_forget(&name).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "name": name, "removed": removed })
                );
            } else if removed {
                println!("forgot schedule {name:?}");
            } else {
                println!("no schedule {name:?} was declared");
            }
        }
    }
    Ok(())
}
