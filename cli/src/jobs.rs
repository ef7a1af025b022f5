//! `jobstream jobs list`: the jobs of one queue in one state, without
//! payloads; and the JSON form of one job that `job show` shares.

use clap::ValueEnum;
use jobstream_producer::inspect::{DEFAULT_SCAN_CAP, Inspector, JobsFilter, Place, QueuedJob};

use crate::out::{CliResult, require_queue, table_of};
use crate::time::{now_ms, relative, rfc3339, span};

/// Where a job is: the `--state` of `jobs list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum State {
    /// In `ready`, not yet delivered to a worker.
    Ready,
    /// Delivered to a worker, not yet settled (the pending list).
    InFlight,
    /// Waiting for its due time (delayed, or waiting for a retry).
    Scheduled,
    /// In the dead-letter stream.
    Dead,
}

impl State {
    fn place(self) -> Place {
        match self {
            State::Ready => Place::Ready,
            State::InFlight => Place::InFlight,
            State::Scheduled => Place::Scheduled,
            State::Dead => Place::Dead,
        }
    }
}

/// The arguments of `jobs list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Queue name.
    #[arg(long)]
    queue: String,
    /// Which jobs.
    #[arg(long, value_enum)]
    state: State,
    /// Only this job type.
    #[arg(long = "type")]
    job_type: Option<String>,
    /// At most this many (0 = all).
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// One JSON object: {"queue":..,"state":..,"jobs":[...]}.
    #[arg(long)]
    json: bool,
}

/// `jobs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum JobsCommand {
    /// List the jobs of a queue in one state (never their payloads).
    List(ListArgs),
}

fn columns(state: Place) -> &'static [&'static str] {
    match state {
        Place::Ready => &[
            "id",
            "entry_id",
            "type",
            "attempt",
            "enqueued_at",
            "enqueued",
        ],
        Place::InFlight => &[
            "id",
            "entry_id",
            "type",
            "attempt",
            "consumer",
            "idle",
            "deliveries",
            "enqueued_at",
            "enqueued",
        ],
        Place::Scheduled => &[
            "id",
            "type",
            "attempt",
            "due_at",
            "due",
            "enqueued_at",
            "enqueued",
            "error",
        ],
        _ => &[
            "id",
            "entry_id",
            "type",
            "attempt",
            "reason",
            "failed_at",
            "failed",
            "error",
        ],
    }
}

/// One job as JSON, with times as RFC 3339 and relative to `now`; the
/// fields other than the payload when `with_fields`.
pub(crate) fn job_json(
    queue: &str,
    j: &QueuedJob,
    now: u64,
    with_fields: bool,
) -> serde_json::Value {
    let at = |ms: u64| (ms > 0).then(|| rfc3339(ms));
    let rel = |ms: u64| (ms > 0).then(|| relative(ms, now));
    let mut v = serde_json::json!({
        "queue": queue,
        "state": j.state.map(Place::as_str),
        "id": j.id,
        "entry_id": j.entry_id,
        "type": j.job_type,
        "attempt": j.attempt,
        "enqueued_at": at(j.enqueued_at_ms),
        "enqueued": rel(j.enqueued_at_ms),
        "enqueued_at_ms": j.enqueued_at_ms,
        "payload_bytes": j.payload_bytes,
    });
    if let Some(due) = j.due_at_ms {
        v["due_at"] = rfc3339(due).into();
        v["due"] = relative(due, now).into();
        v["due_at_ms"] = due.into();
    }
    if let Some(c) = &j.consumer {
        v["consumer"] = c.clone().into();
    }
    if let Some(idle) = j.idle_ms {
        v["idle"] = span(idle).into();
        v["idle_ms"] = idle.into();
    }
    if let Some(n) = j.deliveries {
        v["deliveries"] = n.into();
    }
    if let Some(r) = &j.reason {
        v["reason"] = r.clone().into();
    }
    if let Some(c) = &j.error_class {
        v["error_class"] = c.clone().into();
    }
    if let Some(e) = &j.error {
        v["error"] = e.clone().into();
    }
    if let Some(f) = j.failed_at_ms {
        v["failed_at"] = at(f).into();
        v["failed"] = rel(f).into();
        v["failed_at_ms"] = f.into();
    }
    if with_fields {
        let fields: serde_json::Map<String, serde_json::Value> = j
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        v["fields"] = fields.into();
    }
    v
}

pub(crate) async fn run(inspector: &Inspector, command: JobsCommand) -> CliResult<()> {
    let JobsCommand::List(args) = command;
    require_queue(inspector, &args.queue).await?;
    let place = args.state.place();
    let mut filter = JobsFilter::default()
        .limit(args.limit)
        .scan_cap(DEFAULT_SCAN_CAP);
    if let Some(t) = &args.job_type {
        filter = filter.job_type(t);
    }
    let page = inspector.jobs(&args.queue, place, &filter).await?;
    let now = now_ms();
    let rows: Vec<serde_json::Value> = page
        .jobs
        .iter()
        .map(|j| job_json(&args.queue, j, now, false))
        .collect();
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "queue": args.queue,
                "state": place.as_str(),
                "jobs": rows,
                "scanned": page.scanned,
                "capped": page.capped,
            })
        );
        return Ok(());
    }
    if !rows.is_empty() {
        println!("{}", table_of(columns(place), &rows));
    }
    if page.capped {
        println!(
            "(stopped after reading {} entries, the most one listing reads; narrow with --type or --limit)",
            page.scanned
        );
    } else if args.limit > 0 && rows.len() == args.limit {
        println!("(first {} shown; --limit 0 for all)", args.limit);
    } else {
        println!(
            "({} {} jobs in {:?})",
            rows.len(),
            place.as_str(),
            args.queue
        );
    }
    Ok(())
}
