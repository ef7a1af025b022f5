//! `jobstream workers`: the workers that wrote a heartbeat, live or stale.

use jobstream_producer::inspect::{Inspector, STALE_AFTER_MS, WorkerInfo};

use crate::out::{CliResult, table_of};
use crate::time::{relative, rfc3339};

fn state(w: &WorkerInfo, now: u64) -> &'static str {
    if now.saturating_sub(w.seen_at_ms) > STALE_AFTER_MS {
        "stale"
    } else {
        "live"
    }
}

/// Columns of the table (keys of the JSON objects).
const COLUMNS: &[&str] = &[
    "name",
    "state",
    "host",
    "pid",
    "busy",
    "concurrency",
    "seen_at",
    "seen",
    "queues",
];

pub(crate) async fn run(inspector: Inspector, json: bool) -> CliResult<()> {
    // The server's clock: heartbeats are written with it.
    let (workers, now) = inspector.workers().await?;
    let rows: Vec<serde_json::Value> = workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "name": w.name,
                "host": w.host,
                "pid": w.pid,
                "queues": w.queues,
                "busy": w.busy,
                "concurrency": w.concurrency,
                "started_at": rfc3339(w.started_at_ms),
                "seen_at": rfc3339(w.seen_at_ms),
                "seen": relative(w.seen_at_ms, now),
                "seen_ago_s": now.saturating_sub(w.seen_at_ms) / 1000,
                "state": state(w, now),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::json!({ "workers": rows }));
        return Ok(());
    }
    if workers.is_empty() {
        println!("(no worker has written a heartbeat)");
        return Ok(());
    }
    println!("{}", table_of(COLUMNS, &rows));
    let stale = workers.iter().filter(|w| state(w, now) == "stale").count();
    if stale > 0 {
        println!(
            "WARN {stale} stale worker(s): no heartbeat for more than {} s (killed, stalled, or cut off from Redis); their jobs return after the visibility timeout",
            STALE_AFTER_MS / 1000
        );
    }
    Ok(())
}
