//! `jobstream workers`: the workers that wrote a heartbeat, live or stale.

use std::time::{Duration, UNIX_EPOCH};

use jobstream_producer::inspect::{Inspector, STALE_AFTER_MS, WorkerInfo};

/// A unix ms time as RFC 3339 (UTC, milliseconds).
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `now - ms` as "4 s ago", "3 min ago", "2 h ago", "5 d ago".
fn ago(ms: u64, now: u64) -> String {
    let s = now.saturating_sub(ms) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

fn state(w: &WorkerInfo, now: u64) -> &'static str {
    if now.saturating_sub(w.seen_at_ms) > STALE_AFTER_MS {
        "stale"
    } else {
        "live"
    }
}

pub(crate) async fn run(inspector: Inspector, json: bool) -> Result<(), String> {
    let (workers, now) = inspector.workers().await.map_err(|e| e.to_string())?;
    if json {
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
                    "seen_ago_s": now.saturating_sub(w.seen_at_ms) / 1000,
                    "state": state(w, now),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "workers": rows }));
        return Ok(());
    }
    if workers.is_empty() {
        println!("(no worker has written a heartbeat)");
        return Ok(());
    }
    println!(
        "{:<28} {:<6} {:>8} {:>9} {:<26} {:<12} queues",
        "worker", "state", "pid", "busy", "last seen", ""
    );
    for w in &workers {
        println!(
            "{:<28} {:<6} {:>8} {:>9} {:<26} {:<12} {}",
            w.name,
            state(w, now),
            w.pid,
            format!("{}/{}", w.busy, w.concurrency),
            rfc3339(w.seen_at_ms),
            ago(w.seen_at_ms, now),
            w.queues.join(",")
        );
    }
    let stale = workers.iter().filter(|w| state(w, now) == "stale").count();
    if stale > 0 {
        println!(
            "WARN {stale} stale worker(s): no heartbeat for more than {} s (killed, stalled, or cut off from Redis); their jobs return after the visibility timeout",
            STALE_AFTER_MS / 1000
        );
    }
    Ok(())
}
