//! `jobstream queues` and `jobstream stats [--watch]`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use jobstream_producer::inspect::{Inspector, QueueStats};

use crate::out::{CliResult, require_queue, table_of};
use crate::time::{now_ms, relative, rfc3339, span};

/// Columns of `jobstream queues` (keys of its JSON objects).
const QUEUES_COLUMNS: &[&str] = &[
    "name",
    "paused",
    "ready",
    "in_flight",
    "scheduled",
    "dead",
    "oldest_ready_age",
    "processed",
    "retried",
    "consumers",
    "limits",
    "paused_since",
];

/// Columns of `jobstream stats`.
const STATS_COLUMNS: &[&str] = &[
    "name",
    "paused",
    "ready",
    "in_flight",
    "scheduled",
    "dead",
    "dead_scheduled",
    "dead_trimmed",
    "processed",
    "retried",
    "rejected",
    "shed",
    "group_waiting",
    "consumers",
    "oldest_ready_age",
];

/// Columns of `jobstream stats --watch`: counts and rates per second.
const WATCH_COLUMNS: &[&str] = &[
    "name",
    "paused",
    "ready",
    "in_flight",
    "scheduled",
    "dead",
    "oldest_ready_age",
    "enqueued_per_s",
    "processed_per_s",
    "retried_per_s",
    "dead_per_s",
];

/// One queue as JSON: the `QueueStats` fields unchanged (the names
/// `/metrics` is compared with), plus `oldest_ready_age` and `paused_since`
/// for people.
fn queue_json(s: &QueueStats) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["oldest_ready_age"] = if s.ready > 0 {
        span(s.oldest_ready_age_ms).into()
    } else {
        serde_json::Value::Null
    };
    v["paused_since"] = s.paused_at_ms.map_or(serde_json::Value::Null, |at| {
        format!("{} ({})", rfc3339(at), relative(at, now_ms())).into()
    });
    v
}

async fn names(inspector: &Inspector, queue: Option<&str>) -> CliResult<Vec<String>> {
    match queue {
        Some(q) => {
            require_queue(inspector, q).await?;
            Ok(vec![q.to_owned()])
        }
        None => Ok(inspector.queues().await?),
    }
}

/// `jobstream queues`: every known queue with its stats.
pub(crate) async fn queues(inspector: &Inspector, json: bool) -> CliResult<()> {
    let mut all = Vec::new();
    for name in inspector.queues().await? {
        all.push(inspector.stats(&name).await?);
    }
    let mut rows: Vec<serde_json::Value> = all.iter().map(queue_json).collect();
    if json {
        println!("{}", serde_json::json!({ "queues": rows }));
    } else if rows.is_empty() {
        println!("(no queues known yet)");
    } else {
        // People read the limits as one line; JSON keeps the object.
        for (row, s) in rows.iter_mut().zip(&all) {
            row["limits"] = s.limits.as_ref().map_or(serde_json::Value::Null, |l| {
                crate::queue::describe_limits(Some(l)).into()
            });
        }
        println!("{}", table_of(QUEUES_COLUMNS, &rows));
    }
    Ok(())
}

/// `jobstream stats` once.
pub(crate) async fn stats(inspector: &Inspector, queue: Option<&str>, json: bool) -> CliResult<()> {
    let mut all = Vec::new();
    for name in names(inspector, queue).await? {
        all.push(inspector.stats(&name).await?);
    }
    if json {
        // The QueueStats names, unchanged (/metrics is compared with them),
        // plus the table's `oldest_ready_age` and `paused_since`.
        let rows: Vec<serde_json::Value> = all.iter().map(queue_json).collect();
        println!("{}", serde_json::json!({ "queues": rows }));
        return Ok(());
    }
    if all.is_empty() {
        println!("(no queues known yet)");
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = all.iter().map(queue_json).collect();
    println!("{}", table_of(STATS_COLUMNS, &rows));
    for s in all.iter().filter(|s| s.dead_trimmed > 0) {
        println!(
            "WARN {}: {} dead letters were dropped by the dead_max_len cap",
            s.name, s.dead_trimmed
        );
    }
    Ok(())
}

/// One sample of one queue: its stats and the lifetime count of entries
/// added to `ready` (for enqueued/s).
struct Sample {
    stats: QueueStats,
    added: Option<i64>,
}

fn rate(now: u64, before: u64, secs: f64) -> serde_json::Value {
    let per_s = now.saturating_sub(before) as f64 / secs;
    serde_json::json!((per_s * 100.0).round() / 100.0)
}

/// `jobstream stats --watch`: a sample every `interval`, with rates per
/// second from the counters' change since the previous sample, until
/// Ctrl-C. On a terminal the screen is redrawn; otherwise blocks are
/// appended (or one JSON line per sample).
pub(crate) async fn watch(
    inspector: &Inspector,
    queue: Option<&str>,
    json: bool,
    interval: Duration,
) -> CliResult<()> {
    if interval.is_zero() {
        return Err("--interval must be more than 0".into());
    }
    if let Some(q) = queue {
        require_queue(inspector, q).await?;
    }
    let tty = std::io::stdout().is_terminal() && !json;
    let mut previous: HashMap<String, Sample> = HashMap::new();
    let mut last_at: Option<Instant> = None;
    loop {
        let at = Instant::now();
        let mut rows = Vec::new();
        let mut current = HashMap::new();
        for name in names(inspector, queue).await? {
            let stats = inspector.stats(&name).await?;
            let added = inspector.books(&name).await?.entries_added;
            let mut row = queue_json(&stats);
            let secs = last_at.map(|t| at.duration_since(t).as_secs_f64());
            let null = serde_json::Value::Null;
            let (enq, done, retried, dead) = match (previous.get(&name), secs) {
                (Some(p), Some(secs)) if secs > 0.0 => (
                    match (added, p.added) {
                        (Some(a), Some(b)) => rate(a.max(0) as u64, b.max(0) as u64, secs),
                        _ => null.clone(),
                    },
                    rate(stats.processed, p.stats.processed, secs),
                    rate(stats.retried, p.stats.retried, secs),
                    rate(stats.dead_total, p.stats.dead_total, secs),
                ),
                _ => (null.clone(), null.clone(), null.clone(), null),
            };
            row["enqueued_per_s"] = enq;
            row["processed_per_s"] = done;
            row["retried_per_s"] = retried;
            row["dead_per_s"] = dead;
            rows.push(row);
            current.insert(name, Sample { stats, added });
        }
        let stamp = rfc3339(now_ms());
        if json {
            println!("{}", serde_json::json!({ "at": stamp, "queues": rows }));
        } else {
            if tty {
                // Clear the screen, cursor home.
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "{stamp}  every {}  (rates per second; Ctrl-C to stop)",
                humantime::format_duration(interval)
            );
            if rows.is_empty() {
                println!("(no queues known yet)");
            } else {
                println!("{}", table_of(WATCH_COLUMNS, &rows));
            }
            if !tty {
                println!();
            }
        }
        previous = current;
        last_at = Some(at);
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
