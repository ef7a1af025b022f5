//! `entries`: plays the consumer vectors (v1/entries.json) against a real
//! worker.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value as Json;

use crate::outcome::{QueueKeys, Tracked, pair_of, wait_and_check};
use crate::redis_io::{self, Fields};
use crate::values::{self, Env};
use crate::{Run, read_cases};

/// Writes every case, runs a worker, checks every outcome. Returns the
/// failures, one line each.
pub async fn play(run: &Run, file: &std::path::Path, only: Option<&str>) -> Result<Vec<String>> {
    let cases = read_cases(file)?;
    let mut conn = redis_io::connect(&run.url).await?;
    let keys = QueueKeys::of(&run.queue);
    let mut tracked = Vec::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .get("name")
            .and_then(Json::as_str)
            .ok_or_else(|| anyhow!("a case has no name"))?;
        if only.is_some_and(|o| !name.contains(o)) {
            continue;
        }
        match write(&mut conn, &keys, &run.queue, case).await {
            Ok(t) => tracked.push(Tracked {
                name: name.to_owned(),
                ..t
            }),
            Err(e) => failures.push(format!("{name}: cannot write the case: {e:#}")),
        }
    }
    let ids: Vec<_> = tracked.iter().flat_map(|t| t.keys.iter()).collect();
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            bail!(
                "two cases share the id {}: give each case an id of its own",
                values::show(id)
            );
        }
    }
    let outcome = run.with_worker(|seen| async move {
        let timeout = Duration::from_secs(30);
        wait_and_check(&mut conn, &keys, &tracked, &seen, timeout).await
    });
    failures.extend(outcome.await?);
    eprintln!("{} cases played", cases.len());
    Ok(failures)
}

/// Writes one case: its `XADD` or `ZADD`.
async fn write(
    conn: &mut redis::aio::MultiplexedConnection,
    keys: &QueueKeys,
    queue: &str,
    case: &Json,
) -> Result<Tracked> {
    let write = case.get("write").context("no write")?;
    let expect = case.get("expect").context("no expect")?.clone();
    // Before TIME: a member's score is that time + its delay, so its due
    // moment is no earlier than this instant + the delay.
    let before_time = Instant::now();
    let now_ms = redis_io::server_ms(conn).await?;
    let mut env = Env {
        now_ms,
        queue: queue.to_owned(),
        ..Env::default()
    };
    if let Some(pairs) = write.get("xadd").and_then(Json::as_array) {
        let fields: Fields = pairs
            .iter()
            .map(|p| {
                let (name, value) = pair_of(p)?;
                Ok((name.as_bytes().to_vec(), values::field_value(value, &env)?))
            })
            .collect::<Result<_>>()?;
        let written_at = Instant::now();
        let entry_id = redis_io::xadd(conn, &keys.ready, &fields).await?;
        // The job's id: its own `id` field (the first), else the entry id.
        let own = redis_io::first(&fields, "id").map(<[u8]>::to_vec);
        let handler_id = match &own {
            Some(id) => String::from_utf8(id.clone()).ok(),
            None => Some(entry_id.clone()),
        };
        let mut keys = vec![entry_id.clone().into_bytes()];
        keys.extend(own);
        env.entry_id = Some(entry_id);
        env.written = fields;
        return Ok(Tracked {
            name: String::new(),
            keys,
            handler_id,
            env,
            written_at,
            expect,
        });
    }
    if let Some(zadd) = write.get("zadd") {
        let due_in = zadd.get("due_in_ms").and_then(Json::as_i64).unwrap_or(0);
        let member = values::member(zadd.get("member").context("zadd without member")?, &env)?;
        let written_at = before_time;
        let _: i64 = redis::cmd("ZADD")
            .arg(&keys.scheduled)
            .arg(now_ms + due_in)
            .arg(member.as_slice())
            .query_async(conn)
            .await?;
        let own = redis_io::member_fields(&member)
            .and_then(|f| redis_io::first(&f, "id").map(<[u8]>::to_vec));
        let handler_id = own
            .as_ref()
            .and_then(|id| String::from_utf8(id.clone()).ok());
        env.member = Some(member);
        return Ok(Tracked {
            name: String::new(),
            keys: own.into_iter().collect(),
            handler_id,
            env,
            written_at,
            expect,
        });
    }
    bail!("write is {{\"xadd\": ...}} or {{\"zadd\": ...}}")
}
