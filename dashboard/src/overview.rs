//! The overview: every queue's stats, rates and an hour of history, and the
//! workers' count. Computed at most once per refresh interval, whoever
//! asks (see [`Cached`](crate::state::Cached)).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use jobstream_core::history::rates;
use jobstream_producer::inspect::{QueueStats, STALE_AFTER_MS};
use serde_json::{Value, json};

use crate::reads::failed;
use crate::state::AppState;

/// `GET api/overview`.
pub(crate) async fn overview(State(state): State<Arc<AppState>>) -> Response {
    let ttl = state.options.refresh;
    match state.overview.get_or(ttl, || compute(&state)).await {
        Ok(v) => Json(v.as_ref().clone()).into_response(),
        Err(e) => failed(&e),
    }
}

async fn compute(state: &AppState) -> jobstream_producer::Result<Value> {
    let inspector = &state.inspector;
    let (workers, now) = inspector.workers().await?;
    let stale = workers
        .iter()
        .filter(|w| now.saturating_sub(w.seen_at_ms) > STALE_AFTER_MS)
        .count();
    let mut queues = Vec::new();
    for name in inspector.queues().await? {
        // One broken queue (a key of the wrong type) must not hide the
        // others: it shows with its error.
        match queue_json(state, &name).await {
            Ok(q) => queues.push(q),
            Err(e) => queues.push(json!({ "name": name, "error": e.to_string() })),
        }
    }
    Ok(json!({
        "now_ms": now,
        "generated_at_ms": jobstream_core::now_ms(),
        "interval_ms": state.refresh_ms(),
        "workers": { "live": workers.len() - stale, "stale": stale },
        "queues": queues,
    }))
}

/// One queue: its `stats --json` fields, its rates now and its history.
pub(crate) async fn queue_json(state: &AppState, name: &str) -> jobstream_producer::Result<Value> {
    let stats: QueueStats = state.inspector.stats(name).await?;
    let step = state.options.history_step.as_millis() as u64;
    // A missing history (a user without read rights on it) shows as none.
    let samples = state.inspector.samples(name).await.unwrap_or_default();
    // Two and a half steps: one late sample is not a gap.
    let points = rates(&samples, step * 5 / 2);
    let mut v = serde_json::to_value(&stats).unwrap_or_else(|_| json!({ "name": name }));
    let last = points.last();
    v["processed_per_s"] = last.map_or(Value::Null, |p| round(p.1));
    v["failed_per_s"] = last.map_or(Value::Null, |p| round(p.2));
    v["history"] = json!({
        "step_ms": step,
        "points": points.iter().map(|(t, p, f)| json!([t, round(*p), round(*f)])).collect::<Vec<_>>(),
    });
    Ok(v)
}

fn round(x: f64) -> Value {
    json!((x * 100.0).round() / 100.0)
}
