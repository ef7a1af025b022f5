//! `producer`: runs a producer's driver over v1/producer.json, checks what
//! it wrote (where, which fields, which score), then runs a worker and
//! checks each job's outcome.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value as Json;

use crate::outcome::{QueueKeys, Tracked, pair_of, show_fields, wait_and_check};
use crate::redis_io::{self, Fields};
use crate::values::{Env, Expected};
use crate::{Run, read_cases};

/// What the driver printed for one case.
#[derive(Debug, Default)]
struct Printed {
    ids: Vec<String>,
    duplicate: bool,
    holder: Option<String>,
}

/// Runs the driver and checks every case. Returns the failures.
pub async fn check(run: &Run, file: &Path, driver: &[String]) -> Result<Vec<String>> {
    let cases = read_cases(file)?;
    let mut conn = redis_io::connect(&run.url).await?;
    let keys = QueueKeys::of(&run.queue);
    let before_ms = redis_io::server_ms(&mut conn).await?;
    let written_at = Instant::now();
    let printed = run_driver(run, file, driver).await?;
    let after_ms = redis_io::server_ms(&mut conn).await?;
    let after = Instant::now();

    let ready = redis_io::xrange(&mut conn, &keys.ready).await?;
    let scheduled = redis_io::zrange(&mut conn, &keys.scheduled).await?;
    let mut failures = Vec::new();
    let mut tracked = Vec::new();
    let mut claimed_entries = Vec::new();
    let mut claimed_members = Vec::new();
    for case in &cases {
        let name = case
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| anyhow!("a case has no name"))?;
        let Some(out) = printed.get(name) else {
            failures.push(format!("{name}: the driver printed nothing for it"));
            continue;
        };
        let jobs = case
            .get("enqueue")
            .and_then(Json::as_array)
            .ok_or_else(|| anyhow!("{name}: no enqueue list"))?;
        for (i, job) in jobs.iter().enumerate() {
            let label = if jobs.len() == 1 {
                name.to_owned()
            } else {
                format!("{name}#{i}")
            };
            let expect = match case.get("expect") {
                Some(Json::Array(list)) => list
                    .get(i)
                    .cloned()
                    .ok_or_else(|| anyhow!("{label}: no expect"))?,
                Some(e) => e.clone(),
                None => bail!("{label}: no expect"),
            };
            let env = Env {
                now_ms: after_ms,
                queue: run.queue.clone(),
                returned_id: out.ids.get(i).cloned(),
                ..Env::default()
            };
            let placed = Placed {
                ready: &ready,
                scheduled: &scheduled,
                before_ms,
                after_ms,
            };
            match place(job, &expect, out, &printed, &env, &placed) {
                Ok(Found::Nowhere) => {}
                Ok(Found::Ready(index, entry_id)) => {
                    claimed_entries.push(index);
                    let returned = env.returned_id.clone();
                    let keys = [Some(entry_id.clone()), returned.clone()]
                        .into_iter()
                        .flatten()
                        .map(String::into_bytes)
                        .collect();
                    let env = Env {
                        entry_id: Some(entry_id),
                        ..env
                    };
                    tracked.push(Tracked {
                        name: label,
                        keys,
                        handler_id: returned,
                        env,
                        written_at,
                        expect,
                    });
                }
                Ok(Found::Scheduled(index, score)) => {
                    claimed_members.push(index);
                    // When it was enqueued, by this process's clock: its
                    // score less its delay, so `never_runs_before_ms` is
                    // measured from its own enqueue, not the driver's start.
                    let delay = job
                        .pointer("/options/delay_ms")
                        .and_then(Json::as_i64)
                        .unwrap_or(0);
                    let enqueued_ms = score as i64 - delay;
                    let back = Duration::from_millis((after_ms - enqueued_ms).max(0) as u64);
                    let written_at = after.checked_sub(back).unwrap_or(written_at);
                    let returned = env.returned_id.clone();
                    let keys = returned.iter().map(|r| r.clone().into_bytes()).collect();
                    tracked.push(Tracked {
                        name: label,
                        keys,
                        handler_id: returned,
                        env,
                        written_at,
                        expect,
                    });
                }
                Err(why) => failures.push(format!("{label}: {why}")),
            }
        }
    }
    // A job already reported under its case is not reported again.
    let printed_ids: Vec<&[u8]> = printed
        .values()
        .flat_map(|p| p.ids.iter().map(|i| i.as_bytes()))
        .collect();
    let reported =
        |f: &Fields| redis_io::first(f, "id").is_some_and(|id| printed_ids.contains(&id));
    for (i, (id, fields)) in ready.iter().enumerate() {
        if !claimed_entries.contains(&i)
            && !reported(fields)
            && !printed_ids.contains(&id.as_bytes())
        {
            failures.push(format!(
                "ready entry {id} belongs to no case: {}",
                show_fields(fields)
            ));
        }
    }
    for (i, (member, _)) in scheduled.iter().enumerate() {
        let known = redis_io::member_fields(member).is_some_and(|f| reported(&f));
        if !claimed_members.contains(&i) && !known {
            failures.push(format!(
                "scheduled member {} belongs to no case",
                crate::values::show(member)
            ));
        }
    }
    if !failures.is_empty() {
        // What landed is wrong: the outcomes would only repeat it.
        return Ok(failures);
    }
    let outcome = run.with_worker(|seen| async move {
        wait_and_check(&mut conn, &keys, &tracked, &seen, Duration::from_secs(30)).await
    });
    failures.extend(outcome.await?);
    eprintln!("{} producer cases checked", cases.len());
    Ok(failures)
}

/// Runs the driver with the protocol's environment; its JSON lines by case.
async fn run_driver(run: &Run, file: &Path, driver: &[String]) -> Result<HashMap<String, Printed>> {
    let (program, args) = driver.split_first().context("no driver command")?;
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts");
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("REDIS_URL", &run.url)
        .env("JOBSTREAM_QUEUE", &run.queue)
        .env("JOBSTREAM_CASES", file)
        .env("JOBSTREAM_SCRIPTS", scripts)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the driver {program}"))?;
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .context("the driver ran for over 120 s")??;
    if !output.status.success() {
        // Its last lines on stdout name the case it failed on, if it says.
        let stdout = String::from_utf8_lossy(&output.stdout);
        let tail: Vec<&str> = stdout.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "the driver exited with {} before any case was checked; its last lines on stdout:\n{}",
            output.status,
            tail.join("\n")
        );
    }
    let mut printed = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let v: Json = serde_json::from_str(line)
            .with_context(|| format!("the driver printed {line:?}, not JSON"))?;
        let case = v
            .get("case")
            .and_then(Json::as_str)
            .with_context(|| format!("no \"case\" in {line}"))?;
        let ids = v
            .get("ids")
            .and_then(Json::as_array)
            .with_context(|| format!("no \"ids\" in {line}"))?
            .iter()
            .map(|id| {
                id.as_str()
                    .map(str::to_owned)
                    .with_context(|| format!("an id is not a string in {line}"))
            })
            .collect::<Result<_>>()?;
        let p = Printed {
            ids,
            duplicate: v.get("duplicate").and_then(Json::as_bool).unwrap_or(false),
            holder: v.get("holder").and_then(Json::as_str).map(str::to_owned),
        };
        if printed.insert(case.to_owned(), p).is_some() {
            bail!("the driver printed case {case:?} twice");
        }
    }
    Ok(printed)
}

/// What was in Redis when the driver ended.
struct Placed<'a> {
    ready: &'a [(String, Fields)],
    scheduled: &'a [(Vec<u8>, f64)],
    before_ms: i64,
    after_ms: i64,
}

enum Found {
    Nowhere,
    Ready(usize, String),
    Scheduled(usize, f64),
}

/// Where the job landed, checked against `expect`.
fn place(
    job: &Json,
    expect: &Json,
    out: &Printed,
    printed: &HashMap<String, Printed>,
    env: &Env,
    placed: &Placed<'_>,
) -> Result<Found, String> {
    let place = expect.get("in").and_then(Json::as_str).unwrap_or("ready");
    if place == "nowhere" {
        let of = expect.get("duplicate_of").and_then(Json::as_str);
        let holder = match (of, expect.get("holder").and_then(Json::as_str)) {
            (Some(of), _) => printed
                .get(of)
                .and_then(|p| p.ids.first())
                .ok_or_else(|| format!("case {of} printed no id"))?,
            (None, Some(id)) => id,
            (None, None) => return Err("\"nowhere\" needs duplicate_of or holder".into()),
        };
        if !out.duplicate || out.holder.as_deref() != Some(holder) {
            return Err(format!(
                "expected a refused duplicate held by {holder}, the driver printed duplicate={} holder={:?}",
                out.duplicate, out.holder
            ));
        }
        return Ok(Found::Nowhere);
    }
    if out.duplicate {
        return Err("the driver says it was refused as a duplicate".into());
    }
    let id = env
        .returned_id
        .as_deref()
        .ok_or("the driver printed no id for it")?;
    let by_id = |f: &Fields| redis_io::first(f, "id") == Some(id.as_bytes());
    match place {
        "ready" => {
            let (index, (entry_id, fields)) = placed
                .ready
                .iter()
                .enumerate()
                .find(|(_, (eid, f))| by_id(f) || (eid == id && redis_io::first(f, "id").is_none()))
                .ok_or_else(|| format!("no ready entry with id {id}"))?;
            check_fields(
                expect,
                fields,
                &Env {
                    entry_id: Some(entry_id.clone()),
                    ..env.clone()
                },
            )?;
            Ok(Found::Ready(index, entry_id.clone()))
        }
        "scheduled" => {
            let (index, fields, score) = placed
                .scheduled
                .iter()
                .enumerate()
                .find_map(|(i, (m, s))| {
                    redis_io::member_fields(m).filter(by_id).map(|f| (i, f, *s))
                })
                .ok_or_else(|| {
                    format!("no scheduled member (a map of str/bin scalars) with id {id}")
                })?;
            redis_io::strict_member(&placed.scheduled[index].0)?;
            check_fields(expect, &fields, env)?;
            let delay = job
                .pointer("/options/delay_ms")
                .and_then(Json::as_i64)
                .unwrap_or(0);
            let (low, high) = (
                placed.before_ms + delay - 1000,
                placed.after_ms + delay + 1000,
            );
            if !(score >= low as f64 && score <= high as f64) {
                return Err(format!(
                    "its score is {score}, expected the enqueue time + {delay} ms ({low}..{high})"
                ));
            }
            Ok(Found::Scheduled(index, score))
        }
        other => Err(format!("unknown \"in\": {other:?}")),
    }
}

/// Every expected field once, with its value; no field outside `fields`
/// and `may_have`.
fn check_fields(expect: &Json, fields: &Fields, env: &Env) -> Result<(), String> {
    // `fields` is a list of [name, value] or an object (no order implied
    // either way: a producer may write its fields in any order).
    let want: Vec<Json> = match expect.get("fields") {
        None => Vec::new(),
        Some(Json::Array(pairs)) => pairs.clone(),
        Some(Json::Object(map)) => map
            .iter()
            .map(|(k, v)| Json::Array(vec![Json::String(k.clone()), v.clone()]))
            .collect(),
        Some(other) => {
            return Err(format!(
                "\"fields\" is a list of [name, value] or an object, not {other}"
            ));
        }
    };
    let may: Vec<&str> = expect
        .get("may_have")
        .and_then(Json::as_array)
        .map(|a| a.iter().filter_map(Json::as_str).collect())
        .unwrap_or_default();
    let mut named = Vec::new();
    for pair in &want {
        let (name, value) = pair_of(pair).map_err(|e| format!("{e:#}"))?;
        named.push(name);
        let values: Vec<&[u8]> = fields
            .iter()
            .filter(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
            .collect();
        let [got] = values.as_slice() else {
            return Err(format!(
                "field {name} appears {} times, expected once: {}",
                values.len(),
                show_fields(fields)
            ));
        };
        let expected = Expected::parse(value, env).map_err(|e| format!("field {name}: {e:#}"))?;
        expected
            .check(got, env)
            .map_err(|e| format!("field {name}: {e}"))?;
    }
    for (k, _) in fields {
        let k = String::from_utf8_lossy(k);
        if !named.contains(&k.as_ref()) && !may.contains(&k.as_ref()) {
            return Err(format!(
                "it has field {k:?}, which the case neither expects nor allows: {}",
                show_fields(fields)
            ));
        }
    }
    Ok(())
}
