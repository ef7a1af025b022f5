//! The actions: log in and out, pause and resume a queue, run a scheduled
//! job now, cancel a job, replay or discard dead letters. The access
//! guard has checked authentication and CSRF before any of these runs.
//! Each is logged with the queue and ids, never a payload.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jobstream_producer::CancelOutcome;
use jobstream_producer::inspect::{Cancelled, DeadQuery, PlainCancel, RunNow};
use serde::Deserialize;
use serde_json::json;

use crate::access::{COOKIE, checked, error, same};
use crate::reads::{failed, is_entry_id};
use crate::session;
use crate::state::AppState;
use crate::throttle::{Kind, Peer};

/// Most dead ids one request may name.
const MAX_IDS: usize = 10_000;

fn done(message: impl Into<String>, count: u64) -> Response {
    Json(json!({ "ok": true, "message": message.into(), "count": count })).into_response()
}

/// The login form's body.
#[derive(Debug, Deserialize)]
pub(crate) struct Login {
    token: String,
}

/// The path the dashboard is served under (`/` or `/admin/jobs/`), from
/// the full URI of one of its API calls.
fn base_path(uri: &axum::http::Uri, api: &str) -> String {
    let path = uri.path();
    let base = path.strip_suffix(api).unwrap_or("/");
    if base.is_empty() {
        "/".to_owned()
    } else {
        base.to_owned()
    }
}

fn cookie_header(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    api: &str,
    value: &str,
    max_age: i64,
) -> Option<HeaderValue> {
    // Secure when the browser reached a TLS proxy in front of us.
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{COOKIE}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        base_path(uri, api),
        if https { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&cookie).ok()
}

/// `POST api/login {"token"}`: sets the login cookie (HttpOnly,
/// SameSite=Strict, the dashboard's path only, 12 hours).
pub(crate) async fn login(
    State(state): State<Arc<AppState>>,
    Extension(peer): Extension<Peer>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    Json(body): Json<Login>,
) -> Response {
    let Some(token) = &state.options.token else {
        return error(
            StatusCode::BAD_REQUEST,
            "this dashboard has no token to log in with",
        );
    };
    let given = body.token.trim();
    let right = same(given.as_bytes(), token.as_bytes());
    // A spent budget answers 429 whether or not this guess was right.
    match checked(&state, peer, Kind::Token, given.as_bytes(), right) {
        Err(refused) => return *refused,
        Ok(true) => {}
        Ok(false) => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            tracing::warn!("dashboard: a login with a wrong token was refused");
            return error(StatusCode::UNAUTHORIZED, "wrong token");
        }
    }
    let Some(secret) = state.session_secret.get(&state.inspector).await else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot log in: the login secret could not be read from Redis (the dashboard's log says why)",
        );
    };
    let session = session::issue(&secret, token, session::now_s());
    let mut resp = done("logged in", 0);
    let max_age = session::SESSION_SECS as i64;
    if let Some(c) = cookie_header(&headers, &uri, "api/login", &session, max_age) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

/// `POST api/logout`: clears the cookie.
pub(crate) async fn logout(OriginalUri(uri): OriginalUri, headers: HeaderMap) -> Response {
    let mut resp = done("logged out", 0);
    if let Some(c) = cookie_header(&headers, &uri, "api/logout", "", 0) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

/// `POST api/queues/{q}/pause`.
pub(crate) async fn pause(State(state): State<Arc<AppState>>, Path(q): Path<String>) -> Response {
    tracing::info!(queue = ?q, "dashboard: pause");
    let r = state.inspector.pause(&q).await;
    state.overview.clear().await;
    match r {
        Ok(true) => done(
            format!("{q} paused: workers take none of its jobs until it is resumed"),
            1,
        ),
        Ok(false) => done(format!("{q} was paused already"), 0),
        Err(e) => failed(&e),
    }
}

/// `POST api/queues/{q}/resume`.
pub(crate) async fn resume(State(state): State<Arc<AppState>>, Path(q): Path<String>) -> Response {
    tracing::info!(queue = ?q, "dashboard: resume");
    let r = state.inspector.resume(&q).await;
    state.overview.clear().await;
    match r {
        Ok(true) => done(format!("{q} resumed"), 1),
        Ok(false) => done(format!("{q} was not paused"), 0),
        Err(e) => failed(&e),
    }
}

/// A body naming one job.
#[derive(Debug, Deserialize)]
pub(crate) struct OneJob {
    id: String,
}

/// `POST api/queues/{q}/job/run-now {"id"}`.
pub(crate) async fn run_now(
    State(state): State<Arc<AppState>>,
    Path(q): Path<String>,
    Json(body): Json<OneJob>,
) -> Response {
    tracing::info!(queue = ?q, id = ?body.id, "dashboard: run now");
    let r = state
        .inspector
        .run_now(&q, &body.id, state.options.scan_cap)
        .await;
    state.overview.clear().await;
    match r {
        Ok(RunNow::Due) => done("due now: the promoter moves it to ready within a second", 1),
        Ok(RunNow::Replayed) => done("replayed to ready", 1),
        Ok(RunNow::AlreadyReady) => done("it is ready or running already", 0),
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            "no such scheduled or dead job (it may have moved)",
        ),
        Err(e) => failed(&e),
    }
}

/// `POST api/queues/{q}/job/cancel {"id"}`.
pub(crate) async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(q): Path<String>,
    Json(body): Json<OneJob>,
) -> Response {
    tracing::info!(queue = ?q, id = ?body.id, "dashboard: cancel");
    let r = state
        .inspector
        .cancel_job(&q, &body.id, state.options.scan_cap)
        .await;
    state.overview.clear().await;
    let conflict = |m: &str| error(StatusCode::CONFLICT, m);
    match r {
        Ok(Cancelled::Tracked(CancelOutcome::Cancelled)) => done("cancelled: it will not run", 1),
        Ok(Cancelled::Tracked(CancelOutcome::Requested)) => done(
            "cancellation requested: its handler is told within a second",
            1,
        ),
        Ok(Cancelled::Tracked(CancelOutcome::AlreadyFinal)) => conflict("it has finished already"),
        Ok(Cancelled::Plain(PlainCancel::Ready)) => done("cancelled: taken out of ready", 1),
        Ok(Cancelled::Plain(PlainCancel::Scheduled)) => {
            done("cancelled: taken out of scheduled", 1)
        }
        Ok(Cancelled::Plain(PlainCancel::InFlight)) => {
            conflict("a worker is running it, and it keeps no record to signal: not cancelled")
        }
        Ok(Cancelled::Plain(PlainCancel::Grouped)) => conflict(
            "it belongs to a group and keeps no record: not cancelled (its group's place would be held)",
        ),
        Ok(Cancelled::Plain(PlainCancel::Dead)) => {
            conflict("it is dead already: discard it instead")
        }
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            "no such job here (it may have finished)",
        ),
        Err(e) => failed(&e),
    }
}

/// Which dead letters an action takes: ids, or a filter's whole result.
#[derive(Debug, Deserialize)]
pub(crate) struct DeadTarget {
    ids: Option<Vec<String>>,
    filter: Option<DeadFilterBody>,
}

/// A filter as the page sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct DeadFilterBody {
    reason: Option<String>,
    #[serde(rename = "type")]
    job_type: Option<String>,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    /// The newest dead entry the page showed when the person confirmed
    /// (the dead page's `newest`): letters that arrived since are left
    /// alone. `"0-0"` when the page showed none.
    upto: Option<String>,
}

/// The most dead letters one action on a filter takes: a bigger result is
/// done in several (the answer says more are left).
const MAX_FILTER_IDS: usize = 100_000;

/// The dead entry ids an action takes, and whether more matched.
type Targets = (Vec<String>, bool);

async fn dead_ids(state: &AppState, q: &str, target: DeadTarget) -> Result<Targets, Box<Response>> {
    match (target.ids, target.filter) {
        (Some(ids), None) if ids.len() <= MAX_IDS => match ids.iter().find(|id| !is_entry_id(id)) {
            None => Ok((ids, false)),
            Some(bad) => Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                format!("{bad:?} is not a dead entry id (like 1735689600000-0)"),
            ))),
        },
        (Some(_), None) => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_IDS} ids at once: use a filter"),
        ))),
        (None, Some(f)) => {
            let mut query = DeadQuery::default();
            let pick = |s: Option<String>| s.filter(|s| !s.trim().is_empty());
            if let Some(r) = pick(f.reason) {
                query = query.reason(r);
            }
            if let Some(t) = pick(f.job_type) {
                query = query.job_type(t);
            }
            if let Some(ms) = f.since_ms {
                query = query.since_ms(ms);
            }
            if let Some(ms) = f.until_ms {
                query = query.until_ms(ms);
            }
            let upto = pick(f.upto);
            if let Some(bad) = upto.as_ref().filter(|u| !is_entry_id(u)) {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    format!("upto {bad:?} is not a dead entry id (like 1735689600000-0)"),
                )));
            }
            state
                .inspector
                .dead_ids_matching(q, &query, upto.as_deref(), MAX_FILTER_IDS)
                .await
                .map_err(|e| Box::new(failed(&e)))
        }
        _ => Err(Box::new(error(
            StatusCode::BAD_REQUEST,
            "give either \"ids\" or \"filter\"",
        ))),
    }
}

/// `POST api/queues/{q}/dead/replay {"ids"} | {"filter"}`.
pub(crate) async fn dead_replay(
    State(state): State<Arc<AppState>>,
    Path(q): Path<String>,
    Json(target): Json<DeadTarget>,
) -> Response {
    on_dead(&state, &q, target, true).await
}

/// `POST api/queues/{q}/dead/discard {"ids"} | {"filter"}`.
pub(crate) async fn dead_discard(
    State(state): State<Arc<AppState>>,
    Path(q): Path<String>,
    Json(target): Json<DeadTarget>,
) -> Response {
    on_dead(&state, &q, target, false).await
}

/// Replays (`replay`) or discards the dead letters `target` names.
async fn on_dead(state: &AppState, q: &str, target: DeadTarget, replay: bool) -> Response {
    let (ids, more) = match dead_ids(state, q, target).await {
        Ok(found) => found,
        Err(r) => return *r,
    };
    let left = if more {
        format!(" (the newest {MAX_FILTER_IDS}; more match: do it again for the rest)")
    } else {
        String::new()
    };
    let verb = if replay { "replay" } else { "discard" };
    tracing::info!(queue = ?q, count = ids.len(), "dashboard: {verb} dead letters");
    let r = if replay {
        state.inspector.dead_replay_entries(q, &ids).await
    } else {
        state.inspector.dead_discard_entries(q, &ids).await
    };
    state.overview.clear().await;
    match r {
        Ok(n) if replay => done(format!("{n} replayed to ready{left}"), n),
        Ok(n) => done(format!("{n} discarded{left}"), n),
        Err(e) => failed(&e),
    }
}
