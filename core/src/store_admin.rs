//! Reads and repairs away from the hot path: queue stats, the dead-letter
//! stream, replay and discard.

use redis::Value;
use serde::Serialize;

use crate::envelope::entry_id_ms;
use crate::error::{Error, Result};
use crate::reply::{self, StreamEntry};
use crate::scripts;
use crate::store::QueueStore;

/// A snapshot of one queue, as `jobstream stats --json` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// Queue name.
    pub name: String,
    /// Jobs in `ready` not yet delivered to any worker (the group's lag).
    pub ready: u64,
    /// Jobs delivered and not yet acknowledged (the group's pending count).
    pub in_flight: u64,
    /// Jobs waiting in `scheduled` (delayed or waiting for a retry).
    pub scheduled: u64,
    /// Entries in the dead-letter stream.
    pub dead: u64,
    /// Jobs acknowledged as done, in total.
    pub processed: u64,
    /// Failed attempts that were scheduled for a retry, in total.
    pub retried: u64,
    /// Jobs a handler discarded, and undelivered `ready` jobs purged
    /// (`jobstream queue purge`), in total.
    pub discarded: u64,
    /// Jobs not started by their deadline and discarded, in total (those
    /// sent to dead count in `dead_total`, reason `expired`).
    pub expired: u64,
    /// Jobs cancelled (before they ran, from `ready` or `scheduled`, or
    /// stopped by their handler), in total.
    pub cancelled: u64,
    /// Enqueues refused because their uniqueness key was held, in total.
    pub duplicates: u64,
    /// Jobs moved to dead, in total (the stream may have been trimmed since).
    pub dead_total: u64,
    /// Of `dead_total`, scheduled members dead-lettered by the promoter
    /// (never in `ready`), in total.
    pub dead_scheduled: u64,
    /// Dead letters dropped by the `dead_max_len` cap, in total.
    pub dead_trimmed: u64,
    /// Dead jobs replayed to `ready`, in total.
    pub replayed: u64,
    /// Fetched jobs given back to `ready` unstarted (shutdown, pause), in
    /// total.
    pub requeued: u64,
    /// Jobs deferred before they ran by a rate limit of their type or key,
    /// or by their key's hold (`throttle-6`), in total; no attempt spent.
    pub throttled: u64,
    /// Jobs deferred after their handler met an upstream 429
    /// (`JobError::rate_limited`, `hold-4`), in total; no attempt spent.
    pub held: u64,
    /// Jobs removed by `jobstream queue purge` (ready, scheduled and dead),
    /// in total.
    pub purged: u64,
    /// Jobs refused by the queue's limits (policy `reject`, or `wait` after
    /// waiting), in total.
    pub rejected: u64,
    /// Jobs shed by the queue's limits (policy `shed`), in total: dropped
    /// (also in `discarded`) or kept in dead (also in `dead_total`).
    pub shed: u64,
    /// The queue's backpressure limits (`PREFIX:{Q}:limits`); `None` when
    /// it has none.
    pub limits: Option<crate::backpressure::QueueLimits>,
    /// Groups with jobs admitted (ready, running or waiting for a retry):
    /// `HLEN PREFIX:{Q}:groups`.
    pub groups: u64,
    /// Jobs waiting behind their group for their turn (not in `ready`).
    pub group_waiting: u64,
    /// Consumers in the group.
    pub consumers: u64,
    /// Age of the oldest undelivered job in `ready`, ms (0 when none).
    pub oldest_ready_age_ms: u64,
    /// Paused (`jobstream queue pause`): no worker fetches its jobs.
    pub paused: bool,
    /// When it was paused, unix ms (server clock); None when not paused.
    pub paused_at_ms: Option<u64>,
}

pub(crate) struct GroupInfo {
    consumers: u64,
    pending: u64,
    lag: Option<u64>,
    pub(crate) last_delivered: String,
}

impl QueueStore {
    pub(crate) async fn group_info(&self) -> Result<Option<GroupInfo>> {
        const OP: &str = "XINFO GROUPS";
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("GROUPS").arg(self.keys().ready());
        let groups = match self.query::<Value>(OP, &cmd).await {
            Ok(v) => reply::array(OP, v)?,
            Err(Error::Redis { message, .. }) if message.contains("no such key") => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        for g in groups {
            let info = reply::info_map(OP, g)?;
            let get = |k: &str| info.iter().find(|(name, _)| name == k).map(|(_, v)| v);
            let name = match get("name") {
                Some(v) => reply::string(OP, v.clone())?,
                None => continue,
            };
            if name != self.group() {
                continue;
            }
            let num = |k: &str| {
                get(k)
                    .and_then(|v| reply::int(OP, v).ok())
                    .map(|n| n.max(0) as u64)
            };
            return Ok(Some(GroupInfo {
                consumers: num("consumers").unwrap_or(0),
                pending: num("pending").unwrap_or(0),
                lag: num("lag"),
                last_delivered: get("last-delivered-id")
                    .and_then(|v| reply::string(OP, v.clone()).ok())
                    .unwrap_or_else(|| "0-0".into()),
            }));
        }
        Ok(None)
    }

    /// Whether the queue's consumer group exists (`XINFO GROUPS`; a
    /// missing stream has none).
    pub async fn group_exists(&self) -> Result<bool> {
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("GROUPS").arg(self.keys().ready());
        let mut conn = self.redis().shared();
        let v: redis::Value = match cmd.query_async(&mut conn).await {
            Ok(v) => v,
            // "ERR no such key": no stream, so no group.
            Err(e) if e.to_string().contains("no such key") => return Ok(false),
            Err(e) => return Err(self.redis().error("XINFO GROUPS", e)),
        };
        for group in reply::array("XINFO GROUPS", v)? {
            let fields = reply::info_map("XINFO GROUPS", group)?;
            let named = fields.iter().any(|(k, v)| {
                k == "name" && matches!(v, redis::Value::BulkString(b) if b.as_slice() == self.group().as_bytes())
            });
            if named {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Counts and ages of the queue, read from Redis now.
    pub async fn stats(&self, now_ms: u64) -> Result<QueueStats> {
        let k = self.keys();
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(k.ready());
        pipe.cmd("ZCARD").arg(k.scheduled());
        pipe.cmd("XLEN").arg(k.dead());
        pipe.cmd("HGETALL").arg(k.stats());
        let mut conn = self.redis().shared();
        let (len, scheduled, dead, counters): (u64, u64, u64, Vec<(String, i64)>) = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis().error("stats", e))?;
        let counter = |name: &str| {
            counters
                .iter()
                .find(|(k, _)| k == name)
                .map_or(0, |(_, v)| (*v).max(0) as u64)
        };
        // Its own command, not in the pipeline: a fleet-wide key broken by
        // hand (another type) must not take every queue's stats with it.
        let paused = match self.paused_since().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the paused queues");
                None
            }
        };
        // Its own command: a limits key broken by hand (another type) must
        // not take the queue's stats with it.
        let mut hgetall = redis::cmd("HGETALL");
        hgetall.arg(k.limits());
        let limits: Vec<(String, String)> = match self.query("HGETALL", &hgetall).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the queue's limits");
                Vec::new()
            }
        };
        // Its own command too: most queues have no groups.
        let mut hlen = redis::cmd("HLEN");
        hlen.arg(k.groups());
        let groups = self.query::<u64>("HLEN", &hlen).await.unwrap_or(0);
        let group = self.group_info().await?;
        let (ready, in_flight, consumers, after) = match &group {
            // Acked entries are deleted, so XLEN - pending is the undelivered
            // count when the server reports no lag.
            // The lag is an upper bound: after entries are deleted (a purge,
            // a cancel) Redis 7.0 can report a lag above what is left.
            Some(g) => (
                g.lag.unwrap_or(u64::MAX).min(len.saturating_sub(g.pending)),
                g.pending,
                g.consumers,
                format!("({}", g.last_delivered),
            ),
            None => (len, 0, 0, "-".to_owned()),
        };
        let mut oldest = 0;
        if ready > 0 {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(k.ready()).arg(&after).arg("+").arg("COUNT").arg(1);
            let first: Value = self.query("XRANGE", &cmd).await?;
            if let Some(e) = reply::entries("XRANGE", first)?.first() {
                oldest = entry_id_ms(&e.id).map_or(0, |ms| now_ms.saturating_sub(ms));
            }
        }
        Ok(QueueStats {
            name: k.name().to_string(),
            ready,
            in_flight,
            scheduled,
            dead,
            processed: counter("processed"),
            retried: counter("retried"),
            discarded: counter("discarded"),
            expired: counter("expired"),
            // `cancelled_scheduled` is kept apart for the books (those
            // jobs never were in `ready`); people count them as cancelled.
            cancelled: counter("cancelled") + counter("cancelled_scheduled"),
            duplicates: counter("duplicates"),
            dead_total: counter("dead"),
            dead_scheduled: counter("dead_scheduled"),
            dead_trimmed: counter("dead_trimmed"),
            replayed: counter("replayed"),
            requeued: counter("requeued"),
            throttled: counter("throttled"),
            held: counter("held"),
            purged: counter("purged_ready") + counter("purged_scheduled") + counter("purged_dead"),
            rejected: counter("rejected"),
            shed: counter("shed"),
            limits: crate::backpressure::QueueLimits::from_fields(&limits),
            groups,
            group_waiting: counter("group_waiting"),
            consumers,
            oldest_ready_age_ms: oldest,
            paused: paused.is_some(),
            paused_at_ms: paused,
        })
    }

    /// Checks that each key of the queue is missing or of the type jobstream
    /// writes: a foreign value at `dead`, `scheduled` or `stats` would make
    /// every dead letter, retry or count fail later, so it is refused at
    /// start ([`RedisFailure::WrongType`](crate::RedisFailure), naming the
    /// key).
    pub async fn check_key_types(&self) -> Result<()> {
        let k = self.keys();
        let expected = [
            (k.ready(), "stream"),
            (k.scheduled(), "zset"),
            (k.dead(), "stream"),
            (k.stats(), "hash"),
        ];
        // One at a time (at start only): a refusal (an ACL without TYPE)
        // is then one message, not the same one four times over.
        let mut types = Vec::with_capacity(expected.len());
        for (key, _) in &expected {
            let mut cmd = redis::cmd("TYPE");
            cmd.arg(key);
            types.push(self.query::<String>("TYPE", &cmd).await?);
        }
        for ((key, want), got) in expected.iter().zip(types) {
            if got != "none" && got != *want {
                let e = Error::Redis {
                    op: "TYPE",
                    kind: crate::RedisFailure::WrongType,
                    message: format!("key {key} is a {got}, jobstream needs a {want} there"),
                };
                return Err(e.for_server(self.redis().display_url()));
            }
        }
        Ok(())
    }

    /// One counter of the queue's stats hash (0 when unset).
    pub async fn counter(&self, name: &str) -> Result<u64> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.keys().stats()).arg(name);
        let v: Option<i64> = self.query("HGET", &cmd).await?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    /// Dead entries from `start` (an entry id, or `-`), oldest first, at
    /// most `count`.
    pub async fn dead_entries(&self, start: &str, count: usize) -> Result<Vec<StreamEntry>> {
        self.range(self.keys().dead(), start, count).await
    }

    /// `XRANGE key start + COUNT count`.
    async fn range(&self, key: &str, start: &str, count: usize) -> Result<Vec<StreamEntry>> {
        self.between("XRANGE", key, start, "+", count).await
    }

    /// `OP key from to COUNT count`, `OP` being `XRANGE` (`from` the
    /// older bound) or `XREVRANGE` (`from` the newer one).
    pub(crate) async fn between(
        &self,
        op: &'static str,
        key: &str,
        from: &str,
        to: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        let mut cmd = redis::cmd(op);
        cmd.arg(key).arg(from).arg(to).arg("COUNT").arg(count);
        let v: Value = self.query(op, &cmd).await?;
        reply::entries(op, v)
    }

    /// The id of the newest entry of the dead stream, if any
    /// (`XREVRANGE dead + - COUNT 1`): dead letters added later have larger
    /// ids.
    pub async fn last_dead_id(&self) -> Result<Option<String>> {
        let newest = self
            .between("XREVRANGE", self.keys().dead(), "+", "-", 1)
            .await?;
        Ok(newest.into_iter().next().map(|e| e.id))
    }

    /// Entries of `ready` between `start` and `end` (entry ids or bare
    /// unix ms), oldest first, at most `count`.
    pub async fn ready_range(
        &self,
        start: &str,
        end: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        self.between("XRANGE", self.keys().ready(), start, end, count)
            .await
    }

    /// `XREVRANGE ready end start COUNT count`: entries of `ready` from
    /// `end` down to `start`, newest first.
    pub async fn ready_range_rev(
        &self,
        end: &str,
        start: &str,
        count: usize,
    ) -> Result<Vec<StreamEntry>> {
        self.between("XREVRANGE", self.keys().ready(), end, start, count)
            .await
    }

    /// Entries of `ready` from `start` (an entry id, `(id` for after it,
    /// or `-`), oldest first, at most `count`: jobs waiting and running.
    pub async fn ready_entries(&self, start: &str, count: usize) -> Result<Vec<StreamEntry>> {
        self.range(self.keys().ready(), start, count).await
    }

    /// Members of `scheduled` with their due times (unix ms), earliest
    /// first, from rank `offset`, at most `count`.
    pub async fn scheduled_members(
        &self,
        offset: usize,
        count: usize,
    ) -> Result<Vec<(Vec<u8>, u64)>> {
        const OP: &str = "ZRANGE";
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.keys().scheduled())
            .arg(offset)
            // A cursor from a caller can be any number: no overflow.
            .arg(offset.saturating_add(count - 1))
            .arg("WITHSCORES");
        let v: Value = self.query(OP, &cmd).await?;
        let score = |v: Value| -> Result<u64> {
            match v {
                Value::Double(d) => Ok(d.max(0.0) as u64),
                other => {
                    let text = reply::string(OP, other)?;
                    text.parse::<f64>()
                        .map(|d| d.max(0.0) as u64)
                        .map_err(|_| Error::protocol(OP, "a score is not a number"))
                }
            }
        };
        let mut out = Vec::new();
        let mut items = reply::array(OP, v)?.into_iter();
        while let Some(item) = items.next() {
            // RESP3 nests each pair; RESP2 sends them flat.
            let (member, due) = match item {
                Value::Array(pair) => {
                    let mut pair = pair.into_iter();
                    (pair.next(), pair.next())
                }
                member => (Some(member), items.next()),
            };
            let (Some(member), Some(due)) = (member, due) else {
                return Err(Error::protocol(OP, "expected member, score pairs"));
            };
            out.push((reply::bytes(OP, member)?, score(due)?));
        }
        Ok(out)
    }

    /// Script `replay-3`: moves dead entries back to `ready`, deleting them
    /// from `dead`. Returns how many were replayed.
    pub async fn replay(&self, dead_ids: &[&str]) -> Result<u64> {
        if dead_ids.is_empty() {
            return Ok(0);
        }
        self.eval(&scripts::REPLAY, |inv| {
            inv.key(self.keys().dead())
                .key(self.keys().ready())
                .key(self.keys().stats())
                .arg(dead_ids);
        })
        .await
    }

    /// `XDEL dead ids`: returns how many were deleted.
    pub async fn discard_dead(&self, dead_ids: &[&str]) -> Result<u64> {
        if dead_ids.is_empty() {
            return Ok(0);
        }
        let mut cmd = redis::cmd("XDEL");
        cmd.arg(self.keys().dead()).arg(dead_ids);
        self.query("XDEL", &cmd).await
    }
}

/// Names in the `PREFIX:queues` set, sorted.
pub async fn known_queues(redis: &crate::Redis, prefix: &str) -> Result<Vec<String>> {
    let mut conn = redis.shared();
    let raw: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:queues"))
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.error("SMEMBERS", e))?;
    // A member that is no valid queue name (written by hand, not UTF-8)
    // is skipped with a warning: it must not break every fleet-wide read.
    let mut names = Vec::with_capacity(raw.len());
    for bytes in raw {
        match std::str::from_utf8(&bytes).map(crate::QueueName::new) {
            Ok(Ok(name)) => names.push(name.as_str().to_owned()),
            _ => tracing::warn!(
                member = %String::from_utf8_lossy(&bytes).escape_debug(),
                "skipping a member of {prefix}:queues that is not a valid queue name"
            ),
        }
    }
    names.sort();
    Ok(names)
}
