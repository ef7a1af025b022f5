//! The read endpoints: every one bounded (a page size, a scan cap).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use jobstream_producer::inspect::{
    DeadQuery, FoundJob, JobsFilter, Place, QueuedJob, STALE_AFTER_MS,
};
use jobstream_producer::{Error, JobRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use jobstream_core::workers::RateLimitInfo;

use crate::access::{Access, error};
use crate::payload::{scrub_dead, scrub_job};
use crate::state::{AppState, MISSING_FOR, Seen};

/// Jobs per page unless asked otherwise, and the most a page may ask.
const PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// Entries a list page reads at most per refresh (a filter that matches
/// little gives a short page and a `next` cursor): a fifth of the search
/// cap, at least 1,000.
fn list_cap(state: &AppState) -> usize {
    (state.options.scan_cap / 5).max(1000)
}

/// Running jobs listed per queue on the workers page.
const RUNNING_PER_QUEUE: usize = 200;

/// An error as the page shows it: a bad name or value is the caller's
/// (400), anything else is Redis's (503). Never a payload: errors carry
/// none.
pub(crate) fn failed(e: &Error) -> Response {
    let status = match e {
        Error::InvalidQueueName { .. } | Error::Config(_) | Error::InvalidJob(_) => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

fn ok(v: Value) -> Response {
    Json(v).into_response()
}

/// `GET api/config`: what the page may show and do.
pub(crate) async fn config(
    State(state): State<Arc<AppState>>,
    Extension(access): Extension<Access>,
) -> Response {
    let o = &state.options;
    // With authentication, the value every replica shares (replicas sit
    // behind load balancers); without (local-only), or before Redis ever
    // answered, this process's own, which it also accepts.
    let shared = if o.has_auth() {
        state.session_secret.get(&state.inspector).await
    } else {
        None
    };
    let csrf = shared.map_or_else(|| state.csrf.clone(), |s| crate::session::csrf_of(&s));
    let auth = match (&o.token, &o.basic) {
        (Some(_), _) => "token",
        (None, Some(_)) => "basic",
        (None, None) => "none",
    };
    let reason = if o.read_only {
        Some("this dashboard is read-only")
    } else if !access.can_act && o.has_auth() {
        Some("log in to act")
    } else if !access.can_act {
        Some("actions are off: no authentication and served beyond localhost")
    } else {
        None
    };
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "prefix": state.inspector.prefix(),
        "read_only": o.read_only,
        "can_act": access.can_act,
        "can_read": access.can_read,
        "read_only_reason": reason,
        "hide_payloads": o.hide_payloads,
        "refresh_ms": state.refresh_ms(),
        "csrf": csrf,
        "auth": auth,
        "authenticated": access.authenticated,
    }))
}

/// `GET api/queues/{q}`.
pub(crate) async fn queue(State(state): State<Arc<AppState>>, Path(q): Path<String>) -> Response {
    match crate::overview::queue_json(&state, &q).await {
        Ok(v) => ok(json!({ "queue": v })),
        Err(e) => failed(&e),
    }
}

/// Paging parameters shared by the lists.
#[derive(Debug, Deserialize)]
pub(crate) struct ListParams {
    state: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
    reason: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
}

impl ListParams {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(PAGE).clamp(1, MAX_PAGE)
    }
}

/// `ms-seq`, both decimal 64-bit numbers: a stream entry id (a cursor, a
/// dead id). Anything else would reach Redis as an error (a 503).
pub(crate) fn is_entry_id(id: &str) -> bool {
    let number = |s: &str| s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u64>().is_ok();
    id.split_once('-')
        .is_some_and(|(ms, seq)| number(ms) && number(seq))
}

/// Why job id `id` is refused (empty, or longer than any job id), if it is.
fn bad_id(id: &str) -> Option<Response> {
    if id.is_empty() {
        Some(error(StatusCode::BAD_REQUEST, "give a job id"))
    } else if id.len() > 1024 {
        Some(error(
            StatusCode::BAD_REQUEST,
            "no job id is that long (at most 1,024 bytes are looked for)",
        ))
    } else {
        None
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn place(s: &str) -> Option<Place> {
    Some(match s {
        "ready" => Place::Ready,
        "in-flight" | "in_flight" => Place::InFlight,
        "scheduled" => Place::Scheduled,
        "dead" => Place::Dead,
        _ => return None,
    })
}

/// `GET api/queues/{q}/jobs?state&type&cursor&limit`.
pub(crate) async fn jobs(
    State(state): State<Arc<AppState>>,
    Path(q): Path<String>,
    Query(p): Query<ListParams>,
) -> Response {
    let Some(place) = place(p.state.as_deref().unwrap_or("ready")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "state must be ready, in-flight, scheduled or dead",
        );
    };
    let mut filter = JobsFilter::default()
        .limit(p.limit())
        .scan_cap(list_cap(&state));
    if let Some(t) = non_empty(&p.job_type) {
        filter = filter.job_type(t);
    }
    if let Some(c) = non_empty(&p.cursor) {
        let fits = if place == Place::Scheduled {
            c.parse::<u32>().is_ok()
        } else {
            is_entry_id(c)
        };
        if !fits {
            return error(StatusCode::BAD_REQUEST, "not a cursor this list gave");
        }
        filter = filter.after(c);
    }
    match state.inspector.jobs(&q, place, &filter).await {
        Ok(mut page) => {
            let hide = state.options.hide_payloads;
            page.jobs.iter_mut().for_each(|j| scrub_job(j, hide));
            ok(serde_json::to_value(&page).unwrap_or_default())
        }
        Err(e) => failed(&e),
    }
}

/// The `id` query parameter.
#[derive(Debug, Deserialize)]
pub(crate) struct IdParam {
    id: String,
    /// Where the page saw it: `ready`, `in-flight`, `scheduled`, `dead`.
    state: Option<String>,
    /// Its entry id (ready, in flight, dead).
    entry: Option<String>,
    /// Its due time (scheduled), unix ms.
    due: Option<u64>,
}

/// `GET api/queues/{q}/find?id`: where job `id` is, and its record.
pub(crate) async fn find(
    State(state): State<Arc<AppState>>,
    Path(q): Path<String>,
    Query(p): Query<IdParam>,
) -> Response {
    let id = p.id.trim();
    if let Some(refused) = bad_id(id) {
        return refused;
    }
    let inspector = &state.inspector;
    let mut found = match locate(&state, &q, &p, false).await {
        Ok(f) => f,
        Err(e) => return failed(&e),
    };
    if let Some(j) = found.job.as_mut() {
        scrub_job(j, state.options.hide_payloads);
    }
    let record = match inspector.record(&q, id).await {
        Ok(r) => r,
        Err(e) => return failed(&e),
    };
    ok(json!({
        "job": found.job,
        "record": record.map(|r| record_json(&r, state.options.hide_payloads)),
        "scanned": found.scanned,
        "capped": found.capped,
    }))
}

fn record_json(r: &JobRecord, hide: bool) -> Value {
    let result = match (&r.result, hide) {
        (None, _) => Value::Null,
        (Some(_), true) => json!({ "hidden": true }),
        (Some(bytes), false) => {
            crate::payload::to_json(bytes).unwrap_or_else(|e| json!({ "undecodable": e }))
        }
    };
    json!({
        "id": r.id,
        "job_type": r.job_type,
        "state": r.state.as_str(),
        "attempt": r.attempt,
        "enqueued_at_ms": r.enqueued_at_ms,
        "run_at_ms": r.run_at_ms,
        "started_at_ms": r.started_at_ms,
        "finished_at_ms": r.finished_at_ms,
        "worker": r.worker,
        "last_error": r.last_error,
        "last_error_class": r.last_error_class,
        "progress": r.progress,
        "progress_message": r.progress_message,
        "result": result,
        "cancel_requested_at_ms": r.cancel_requested_at_ms,
    })
}

/// What the wire keeps of a job's failures: the last failed attempt's
/// error on a job waiting for its retry (or running it), and the final
/// error of a dead one. Earlier attempts' errors are not kept.
fn history(job: Option<&QueuedJob>, record: Option<&JobRecord>) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(j) = job {
        let field = |k: &str| {
            j.fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        if j.state == Some(Place::Dead) {
            out.push(json!({
                "attempt": j.attempt,
                "at_ms": j.failed_at_ms,
                "error_class": j.error_class,
                "error": j.error,
                "final": true,
            }));
        } else if let Some(err) = field("last_error") {
            out.push(json!({
                "attempt": j.attempt.saturating_sub(1).max(1),
                "at_ms": Value::Null,
                "error_class": field("last_error_class"),
                "error": err,
                "final": false,
            }));
        }
    } else if let Some(r) = record
        && let Some(err) = &r.last_error
    {
        out.push(json!({
            "attempt": r.attempt,
            "at_ms": r.finished_at_ms,
            "error_class": r.last_error_class,
            "error": err,
            "final": r.state.is_final(),
        }));
    }
    out
}

/// Finds job `id`: where the page says it saw it (a list's link carries
/// the entry id or due time), or where this server last saw it, with one
/// read; else by a search bounded by the scan cap, at most once per
/// [`MISSING_FOR`] for a job not found (a page left open on a finished
/// job).
async fn locate(
    state: &AppState,
    q: &str,
    p: &IdParam,
    refresh: bool,
) -> jobstream_producer::Result<FoundJob> {
    let id = p.id.trim();
    let mut hints = Vec::new();
    if let Some(place) = p.state.as_deref().and_then(place) {
        // A hint that is not an entry id is the caller's mistake: ignored.
        let entry = p.entry.as_deref().filter(|e| is_entry_id(e));
        hints.push(QueuedJob::seen_at(id, place, entry, p.due));
    }
    let seen = state.locations.get(q, id);
    if let Some(Seen::At(job)) = &seen {
        hints.push(job.as_ref().clone());
    }
    for hint in &hints {
        if let Some(job) = state.inspector.locate(q, hint).await? {
            state.locations.put(q, id, Some(&job));
            return Ok(FoundJob::from(job));
        }
    }
    // A search asked for searches; a page refreshing on a job that is
    // gone does not, for a while.
    if refresh
        && let Some(Seen::Missing(at)) = seen
        && at.elapsed() < MISSING_FOR
    {
        return Ok(FoundJob::default());
    }
    let found = state
        .inspector
        .find_job(q, id, state.options.scan_cap)
        .await?;
    state.locations.put(q, id, found.job.as_ref());
    Ok(found)
}

/// `GET api/queues/{q}/job?id`: the job page.
pub(crate) async fn job(
    State(state): State<Arc<AppState>>,
    Path(q): Path<String>,
    Query(p): Query<IdParam>,
    Extension(access): Extension<Access>,
) -> Response {
    let id = p.id.trim();
    if let Some(refused) = bad_id(id) {
        return refused;
    }
    let inspector = &state.inspector;
    let hide = state.options.hide_payloads;
    let (found, record) =
        match tokio::try_join!(locate(&state, &q, &p, true), inspector.record(&q, id)) {
            Ok(v) => v,
            Err(e) => return failed(&e),
        };
    let mut job = found.job;
    if let Some(j) = job.as_mut() {
        scrub_job(j, hide);
    }
    let (payload, payload_error) = match &job {
        Some(_) if hide => (Value::Null, None),
        Some(j) => match crate::payload::to_json(&j.payload) {
            Ok(v) => (v, None),
            Err(e) => (Value::Null, Some(e)),
        },
        None => (Value::Null, None),
    };
    let where_ = job.as_ref().and_then(|j| j.state);
    let live = record.as_ref().is_some_and(|r| !r.state.is_final());
    let act = access.can_act;
    ok(json!({
        "history": history(job.as_ref(), record.as_ref()),
        "record": record.as_ref().map(|r| record_json(r, hide)),
        "job": job,
        "payload": payload,
        "payload_hidden": hide,
        "payload_error": payload_error,
        "scanned": found.scanned,
        "capped": found.capped,
        "actions": {
            "run_now": act && matches!(where_, Some(Place::Scheduled)),
            "cancel": act && (matches!(where_, Some(Place::Ready | Place::Scheduled)) || live),
            "replay": act && matches!(where_, Some(Place::Dead)),
            "discard": act && matches!(where_, Some(Place::Dead)),
        },
    }))
}

/// The dead-letter filter of a request.
pub(crate) fn dead_query(p: &ListParams, scan_cap: usize) -> DeadQuery {
    let mut q = DeadQuery::default().page(p.limit(), scan_cap);
    if let Some(r) = non_empty(&p.reason) {
        q = q.reason(r);
    }
    if let Some(t) = non_empty(&p.job_type) {
        q = q.job_type(t);
    }
    if let Some(ms) = p.since_ms {
        q = q.since_ms(ms);
    }
    if let Some(ms) = p.until_ms {
        q = q.until_ms(ms);
    }
    if let Some(c) = non_empty(&p.cursor) {
        q = q.before(c);
    }
    q
}

/// The dead reasons the worker writes, for the filter's choices.
const REASONS: &[&str] = &[
    "exhausted",
    "permanent",
    "abandoned",
    "malformed",
    "unknown_type",
    "expired",
    "shed",
    "unsupported_version",
];

/// `GET api/queues/{q}/dead?reason&type&since_ms&until_ms&cursor&limit`.
pub(crate) async fn dead(
    State(state): State<Arc<AppState>>,
    Path(q): Path<String>,
    Query(p): Query<ListParams>,
) -> Response {
    if non_empty(&p.cursor).is_some_and(|c| !is_entry_id(c)) {
        return error(StatusCode::BAD_REQUEST, "not a cursor this list gave");
    }
    let query = dead_query(&p, list_cap(&state));
    match state.inspector.dead_page(&q, &query).await {
        Ok(mut page) => {
            let hide = state.options.hide_payloads;
            page.jobs.iter_mut().for_each(|j| scrub_dead(j, hide));
            let mut v = serde_json::to_value(&page).unwrap_or_default();
            v["reasons"] = json!(REASONS);
            ok(v)
        }
        Err(e) => failed(&e),
    }
}

/// `GET api/workers`: cached like the overview.
pub(crate) async fn workers(State(state): State<Arc<AppState>>) -> Response {
    let ttl = state.options.refresh;
    match state.workers.get_or(ttl, || workers_json(&state)).await {
        Ok(v) => ok(v.as_ref().clone()),
        Err(e) => failed(&e),
    }
}

async fn workers_json(state: &AppState) -> jobstream_producer::Result<Value> {
    let inspector = &state.inspector;
    let (workers, now) = inspector.workers().await?;
    let mut queues: Vec<&str> = workers
        .iter()
        .flat_map(|w| w.queues.iter().map(String::as_str))
        .collect();
    queues.sort_unstable();
    queues.dedup();
    let mut running = Vec::new();
    for q in queues {
        // A queue name only a hand-written heartbeat has: skip it.
        if let Ok(jobs) = inspector.running(q, RUNNING_PER_QUEUE).await {
            running.extend(jobs);
        }
    }
    let list: Vec<Value> = workers
        .iter()
        .map(|w| {
            let mut v = serde_json::to_value(w).unwrap_or_default();
            v["stale"] = json!(now.saturating_sub(w.seen_at_ms) > STALE_AFTER_MS);
            v["running"] = json!(
                running
                    .iter()
                    .filter(|r| r.consumer == w.name)
                    .collect::<Vec<_>>()
            );
            v
        })
        .collect();
    Ok(json!({ "now_ms": now, "stale_after_ms": STALE_AFTER_MS, "workers": list }))
}

/// `GET api/schedules`: cron schedules, and each queue's limits and holds.
pub(crate) async fn schedules(State(state): State<Arc<AppState>>) -> Response {
    match schedules_json(&state).await {
        Ok(v) => ok(v),
        Err(e) => failed(&e),
    }
}

async fn schedules_json(state: &AppState) -> jobstream_producer::Result<Value> {
    let inspector = &state.inspector;
    let (crons, now) = inspector.crons().await?;
    let crons: Vec<Value> = crons
        .iter()
        .map(|c| {
            let mut v = serde_json::to_value(&c.info).unwrap_or_default();
            v["last_fired_ms"] = json!(c.last_fired_ms);
            v["next_at_ms"] = json!(c.next_at_ms);
            v
        })
        .collect();
    // Rate limits live in the workers' code: their heartbeats say which
    // they enforce. Distinct ones per queue, with how many live workers
    // declare each (a rollout shows two).
    let (workers, _) = inspector.workers().await?;
    let mut rates: Vec<(RateLimitInfo, usize)> = Vec::new();
    for w in workers
        .iter()
        .filter(|w| now.saturating_sub(w.seen_at_ms) <= STALE_AFTER_MS)
    {
        for r in &w.rate_limits {
            match rates.iter_mut().find(|(seen, _)| seen == r) {
                Some((_, n)) => *n += 1,
                None => rates.push((r.clone(), 1)),
            }
        }
    }
    let mut limits = Vec::new();
    for q in inspector.queues().await? {
        let l = inspector.limits(&q).await.ok().flatten();
        let holds = inspector.holds(&q).await.unwrap_or_default();
        let rate: Vec<Value> = rates
            .iter()
            .filter(|(r, _)| r.queue == q)
            .map(|(r, n)| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                v["workers"] = json!(n);
                v
            })
            .collect();
        if l.is_some() || !holds.is_empty() || !rate.is_empty() {
            limits.push(json!({
                "queue": q,
                "limits": l,
                "rate_limits": rate,
                "holds": holds.iter().map(|(k, until)| json!({"key": k, "until_ms": until})).collect::<Vec<_>>(),
            }));
        }
    }
    Ok(json!({ "now_ms": now, "crons": crons, "limits": limits }))
}
