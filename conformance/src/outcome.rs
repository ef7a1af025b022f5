//! Waiting for every case's outcome and checking it (conformance/README.md,
//! `expect.outcome`): processed, dead with its exact fields, or dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use redis::aio::MultiplexedConnection;
use serde_json::Value as Json;

use crate::handlers::Seen;
use crate::redis_io::{self, Fields};
use crate::values::{Env, Expected, show};

/// One job whose outcome the runner waits for.
#[derive(Debug)]
pub struct Tracked {
    /// The case's name (`name#i` for the i-th job of a case).
    pub name: String,
    /// Values of `id` that identify it in `dead` (its entry id, its own id).
    pub keys: Vec<Vec<u8>>,
    /// The id its handler sees, when known.
    pub handler_id: Option<String>,
    /// What the case's matchers refer to.
    pub env: Env,
    /// When it was written.
    pub written_at: Instant,
    /// The case's `expect` object.
    pub expect: Json,
}

/// The queue's keys the runner reads.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    /// `jobstream:{Q}:ready`.
    pub ready: String,
    /// `jobstream:{Q}:scheduled`.
    pub scheduled: String,
    /// `jobstream:{Q}:dead`.
    pub dead: String,
    /// `jobstream:{Q}:stats`.
    pub stats: String,
}

impl QueueKeys {
    /// The keys of `queue` under the default prefix.
    pub fn of(queue: &str) -> Self {
        let base = format!("jobstream:{{{queue}}}");
        Self {
            ready: format!("{base}:ready"),
            scheduled: format!("{base}:scheduled"),
            dead: format!("{base}:dead"),
            stats: format!("{base}:stats"),
        }
    }
}

fn outcome(t: &Tracked) -> &str {
    t.expect
        .get("outcome")
        .and_then(Json::as_str)
        .unwrap_or("processed")
}

/// The dead entry of `t`, if there is one.
fn dead_of<'a>(t: &Tracked, dead: &'a [(String, Fields)]) -> Vec<&'a Fields> {
    dead.iter()
        .map(|(_, f)| f)
        .filter(|f| {
            f.iter().any(|(k, v)| k == b"id" && t.keys.contains(v))
                || t.env
                    .member
                    .as_deref()
                    .is_some_and(|m| redis_io::first(f, "raw") == Some(m))
        })
        .collect()
}

fn succeeded(t: &Tracked, seen: &Seen) -> bool {
    t.handler_id
        .as_deref()
        .is_some_and(|id| seen.of(id).iter().any(|a| a.succeeded))
}

/// Waits until every tracked job reached an end and the queue is empty,
/// or `timeout` passes; then checks each. Returns one line per failure.
pub async fn wait_and_check(
    conn: &mut MultiplexedConnection,
    keys: &QueueKeys,
    tracked: &[Tracked],
    seen: &Seen,
    timeout: Duration,
) -> Result<Vec<String>> {
    let start = Instant::now();
    let mut failures = Vec::new();
    for t in tracked {
        if let Err(why) = known_keys(&t.expect) {
            failures.push(format!("{}: {why}", t.name));
        }
    }
    let dead = loop {
        let dead = redis_io::xrange(conn, &keys.dead).await?;
        let (ready, scheduled) = redis_io::backlog(conn, &keys.ready, &keys.scheduled).await?;
        let pending: Vec<&str> = tracked
            .iter()
            // At an end, the expected one or not: the checks below say
            // which, by name.
            .filter(|t| {
                outcome(t) != "dropped" && !succeeded(t, seen) && dead_of(t, &dead).is_empty()
            })
            .map(|t| t.name.as_str())
            .collect();
        if pending.is_empty() && ready == 0 && scheduled == 0 {
            break dead;
        }
        if start.elapsed() > timeout {
            // Every case is still checked below, so each says what it lacks.
            failures.push(format!(
                "timed out after {timeout:?}: {ready} jobs left in ready, {scheduled} in scheduled; \
                 cases not at their outcome: {pending:?}"
            ));
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut dropped: HashMap<String, i64> = HashMap::new();
    for t in tracked {
        let result = match outcome(t) {
            "processed" => check_processed(t, seen, &dead),
            "dead" => check_dead(t, seen, &dead),
            "dropped" => {
                let counter = t
                    .expect
                    .get("counter")
                    .and_then(Json::as_str)
                    .unwrap_or("expired");
                *dropped.entry(counter.to_owned()).or_default() += 1;
                check_dropped(t, seen, &dead)
            }
            other => Err(format!("unknown outcome {other:?}")),
        };
        if let Err(why) = result {
            failures.push(format!("{}: {why}", t.name));
        }
    }
    for (counter, want) in dropped {
        let got = redis_io::counter(conn, &keys.stats, &counter).await?;
        if got != want {
            failures.push(format!(
                "stats counter {counter:?} is {got}, expected {want} (the dropped cases)"
            ));
        }
    }
    let unmatched = dead
        .iter()
        .filter(|(_, f)| !tracked.iter().any(|t| dead_of(t, &dead).contains(&f)));
    for (entry, fields) in unmatched {
        failures.push(format!(
            "dead entry {entry} matches no case: {}",
            show_fields(fields)
        ));
    }
    Ok(failures)
}

fn check_processed(t: &Tracked, seen: &Seen, dead: &[(String, Fields)]) -> Result<(), String> {
    let id = t
        .handler_id
        .as_deref()
        .ok_or("no id to follow the job by")?;
    let attempts = seen.of(id);
    let wins: Vec<_> = attempts.iter().filter(|a| a.succeeded).collect();
    if wins.len() != 1 {
        return Err(format!("succeeded {} times", wins.len()));
    }
    if !dead_of(t, dead).is_empty() {
        return Err("succeeded and is also in dead".into());
    }
    let win = wins[0];
    let want_attempt = t.expect.get("attempts").and_then(Json::as_u64).unwrap_or(1);
    if u64::from(win.attempt) != want_attempt {
        return Err(format!(
            "succeeded on attempt {}, expected {want_attempt}",
            win.attempt
        ));
    }
    if let Some(min) = t.expect.get("never_runs_before_ms").and_then(Json::as_u64) {
        let first = attempts
            .iter()
            .map(|a| a.started)
            .min()
            .ok_or("no attempt")?;
        let after = first.saturating_duration_since(t.written_at);
        if after < Duration::from_millis(min) {
            return Err(format!(
                "started {after:?} after it was written, expected at least {min} ms"
            ));
        }
    }
    let Some(want) = t.expect.get("seen") else {
        return Ok(());
    };
    let check = |name: &str, want: &Json, got: Option<&[u8]>| -> Result<(), String> {
        let want = Expected::parse(want, &t.env).map_err(|e| format!("seen.{name}: {e:#}"))?;
        let got = got.ok_or_else(|| format!("the handler saw no {name}"))?;
        want.check(got, &t.env)
            .map_err(|e| format!("seen.{name}: {e}"))
    };
    if let Some(v) = want.get("id") {
        check("id", v, Some(id.as_bytes()))?;
    }
    if let Some(v) = want.get("attempt") {
        // A number or its decimal text.
        let v = v
            .as_u64()
            .map_or_else(|| v.clone(), |n| Json::String(n.to_string()));
        check("attempt", &v, Some(win.attempt.to_string().as_bytes()))?;
    }
    if let Some(v) = want.get("payload") {
        check("payload", v, Some(&win.payload))?;
    }
    if let Some(v) = want.get("type") {
        check("type", v, Some(win.job_type.as_bytes()))?;
    }
    if let Some(v) = want.get("idempotency_key") {
        check(
            "idempotency_key",
            v,
            win.idempotency_key.as_deref().map(str::as_bytes),
        )?;
    }
    if let Some(fields) = want.get("fields").and_then(Json::as_object) {
        for (name, v) in fields {
            check(name, v, win.fields.get(name).map(Vec::as_slice))?;
        }
    }
    Ok(())
}

fn check_dead(t: &Tracked, seen: &Seen, dead: &[(String, Fields)]) -> Result<(), String> {
    if succeeded(t, seen) {
        return Err("a handler succeeded, expected dead".into());
    }
    let entries = dead_of(t, dead);
    let [fields] = entries.as_slice() else {
        return Err(format!("{} dead entries, expected 1", entries.len()));
    };
    let text =
        |name: &str| redis_io::last(fields, name).map(|v| String::from_utf8_lossy(v).into_owned());
    for name in ["reason", "error_class"] {
        if let Some(want) = t.expect.get(name).and_then(Json::as_str) {
            let got = text(name);
            if got.as_deref() != Some(want) {
                return Err(format!(
                    "{name} is {got:?}, expected {want:?}; dead entry: {}",
                    show_fields(fields)
                ));
            }
        }
    }
    if let Some(want) = t.expect.get("error_contains").and_then(Json::as_str) {
        let got = text("error").unwrap_or_default();
        if !got.contains(want) {
            return Err(format!("error {got:?} does not contain {want:?}"));
        }
    }
    // `dead_fields`, or a list `fields` (consumer vectors); a producer
    // case's `fields` object says what it wrote, not what dead holds.
    match t
        .expect
        .get("dead_fields")
        .or_else(|| t.expect.get("fields"))
    {
        None | Some(Json::Object(_)) => Ok(()),
        Some(Json::Array(want)) => check_exact_fields(want, fields, &t.env),
        Some(other) => Err(format!(
            "a dead case's fields are a list of [name, value] in order, not {other}"
        )),
    }
}

fn check_dropped(t: &Tracked, seen: &Seen, dead: &[(String, Fields)]) -> Result<(), String> {
    if let Some(id) = &t.handler_id
        && !seen.of(id).is_empty()
    {
        return Err("a handler ran it, expected it dropped unrun".into());
    }
    if !dead_of(t, dead).is_empty() {
        return Err("it is in dead, expected it dropped".into());
    }
    Ok(())
}

/// The names a case's `expect` and `seen` may use: a typo must fail the
/// case, not skip a check.
fn known_keys(expect: &Json) -> Result<(), String> {
    const EXPECT: &[&str] = &[
        "outcome",
        "attempts",
        "seen",
        "reason",
        "error_class",
        "error_contains",
        "fields",
        "dead_fields",
        "counter",
        "never_runs_before_ms",
        "in",
        "may_have",
        "duplicate_of",
        "holder",
        "duplicate",
        "doc",
    ];
    const SEEN: &[&str] = &[
        "id",
        "attempt",
        "payload",
        "type",
        "idempotency_key",
        "fields",
    ];
    let obj = expect.as_object().ok_or("expect is not an object")?;
    if let Some(k) = obj.keys().find(|k| !EXPECT.contains(&k.as_str())) {
        return Err(format!("unknown key {k:?} in expect (known: {EXPECT:?})"));
    }
    if let Some(seen) = obj.get("seen") {
        let seen = seen.as_object().ok_or("seen is not an object")?;
        if let Some(k) = seen.keys().find(|k| !SEEN.contains(&k.as_str())) {
            return Err(format!("unknown key {k:?} in seen (known: {SEEN:?})"));
        }
    }
    Ok(())
}

/// `fields` are exactly `want`, in order.
pub fn check_exact_fields(want: &[Json], fields: &Fields, env: &Env) -> Result<(), String> {
    let mismatch = |why: String| format!("{why}\n    got:  {}", show_fields(fields));
    if want.len() != fields.len() {
        let names: Vec<String> = want
            .iter()
            .map(|p| p.get(0).map(Json::to_string).unwrap_or_default())
            .collect();
        return Err(mismatch(format!(
            "{} fields, expected {}: {}",
            fields.len(),
            want.len(),
            names.join(" ")
        )));
    }
    for (i, (pair, (k, v))) in want.iter().zip(fields).enumerate() {
        let (name, value) = pair_of(pair).map_err(|e| format!("expected field {i}: {e:#}"))?;
        if name.as_bytes() != k.as_slice() {
            return Err(mismatch(format!(
                "field {i} is {}, expected {name:?}",
                show(k)
            )));
        }
        let expected = Expected::parse(value, env).map_err(|e| format!("field {name}: {e:#}"))?;
        expected
            .check(v, env)
            .map_err(|e| mismatch(format!("field {name}: {e}")))?;
    }
    Ok(())
}

/// `[name, value]`.
pub fn pair_of(pair: &Json) -> Result<(&str, &Json)> {
    match pair.as_array().map(Vec::as_slice) {
        Some([Json::String(name), value]) => Ok((name, value)),
        _ => Err(anyhow!("a field is [name, value], got {pair}")),
    }
}

/// Fields for a message.
pub fn show_fields(fields: &Fields) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", show(k), show(v)))
        .collect::<Vec<_>>()
        .join(" ")
}
