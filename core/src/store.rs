//! Every Redis command jobstream sends for one queue, typed. The producer,
//! the worker and the tools call these; none of them sees a Redis client type.
//! Administrative reads (stats, dead-letter listing) are in `store_admin.rs`.

use std::time::Duration;

use redis::Value;

use crate::connection::{BlockingConn, Redis};
use crate::error::{Error, Result};
use crate::keys::QueueKeys;
use crate::reply::{self, StreamEntry};
use crate::scripts::{self, JobScript};

/// A job claimed from a dead worker by the reclaimer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedEntry {
    /// The entry, as it is in `ready`.
    pub entry: StreamEntry,
    /// How often the entry has been delivered, this claim included.
    pub deliveries: u64,
}

/// What one `reclaim-3` call did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reclaimed {
    /// Cursor for the next call; `0-0` when the pass is complete.
    pub next_cursor: String,
    /// The jobs now owned by the caller, to run.
    pub entries: Vec<ClaimedEntry>,
    /// Entries delivered too often, moved to `dead` as `abandoned`.
    pub abandoned: u64,
    /// Entries that should have gone to `dead` but whose add to `dead`
    /// failed: left pending (not returned), they come back after another
    /// visibility timeout.
    pub failed: u64,
    /// Of the abandoned jobs, those with lifecycle fields: their `id`,
    /// `unique_key`, `unique_for`, `record_ms` and `batch` fields, for the
    /// caller to finish their record, key and batch (`settle-14` with no
    /// entry).
    pub tracked: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Redis operations on one queue, through one consumer group.
#[derive(Debug, Clone)]
pub struct QueueStore {
    redis: Redis,
    keys: std::sync::Arc<QueueKeys>,
    group: String,
}

impl QueueStore {
    /// Operations on `keys` through consumer group `group`.
    pub fn new(redis: Redis, keys: QueueKeys, group: impl Into<String>) -> Self {
        Self {
            redis,
            keys: std::sync::Arc::new(keys),
            group: group.into(),
        }
    }

    /// The queue's keys.
    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The connection handle.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        let mut conn = self.redis.shared();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| self.redis.error(op, e))
    }

    pub(crate) async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &'static JobScript,
        build: impl FnOnce(&mut redis::ScriptInvocation<'static>),
    ) -> Result<T> {
        let mut inv = script.redis().prepare_invoke();
        build(&mut inv);
        let mut conn = self.redis.shared();
        inv.invoke_async(&mut conn)
            .await
            .map_err(|e| self.redis.error(script.name, e))
    }

    /// Creates the consumer group (and the stream) if missing. Starts at id
    /// 0, so jobs enqueued before any worker ran are delivered. Returns true
    /// when it created the group.
    pub async fn ensure_group(&self) -> Result<bool> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(self.keys.ready())
            .arg(&self.group)
            .arg("0")
            .arg("MKSTREAM");
        match self.query::<Value>("XGROUP CREATE", &cmd).await {
            Ok(_) => Ok(true),
            Err(Error::Redis { message, .. }) if message.contains("BUSYGROUP") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `XGROUP CREATECONSUMER`: makes a worker visible in the group (and in
    /// `stats`) before it has received its first job.
    pub async fn create_consumer(&self, consumer: &str) -> Result<()> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATECONSUMER")
            .arg(self.keys.ready())
            .arg(&self.group)
            .arg(consumer);
        self.query::<Value>("XGROUP CREATECONSUMER", &cmd)
            .await
            .map(|_| ())
    }

    /// Sends, one at a time, every plain command a worker of this queue
    /// will send, in forms that change nothing (its own delivery history
    /// from id 0, a claim of nothing, an ack and a delete of id 0-0, which
    /// no entry can have, …), so that a user whose ACL lacks one fails at start
    /// with `NOPERM` naming the command and key, not on the first job or
    /// the first reclaim.
    pub async fn probe_worker_rights(&self, consumer: &str) -> Result<()> {
        let (ready, scheduled, group) = (self.keys.ready(), self.keys.scheduled(), &self.group);
        // An id no entry can have: XADD refuses 0-0 (even by hand).
        let never = "0-0";
        let mut probes: Vec<(&'static str, redis::Cmd)> = Vec::new();
        let mut c = redis::cmd("XREADGROUP");
        c.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(1)
            .arg("STREAMS")
            .arg(ready)
            .arg("0");
        probes.push(("XREADGROUP", c));
        let mut c = redis::cmd("XAUTOCLAIM");
        c.arg(ready)
            .arg(group)
            .arg(consumer)
            .arg(i64::MAX / 2)
            .arg("0-0")
            .arg("COUNT")
            .arg(1);
        probes.push(("XAUTOCLAIM", c));
        let mut c = redis::cmd("XCLAIM");
        c.arg(ready)
            .arg(group)
            .arg(consumer)
            .arg(i64::MAX / 2)
            .arg(never);
        probes.push(("XCLAIM", c));
        let mut c = redis::cmd("XACK");
        c.arg(ready).arg(group).arg(never);
        probes.push(("XACK", c));
        let mut c = redis::cmd("XDEL");
        c.arg(ready).arg(never);
        probes.push(("XDEL", c));
        let mut c = redis::cmd("XPENDING");
        c.arg(ready).arg(group);
        probes.push(("XPENDING", c));
        let mut c = redis::cmd("XINFO");
        c.arg("GROUPS").arg(ready);
        probes.push(("XINFO GROUPS", c));
        let mut c = redis::cmd("ZRANGEBYSCORE");
        c.arg(scheduled)
            .arg("-inf")
            .arg("-inf")
            .arg("LIMIT")
            .arg(0)
            .arg(1);
        probes.push(("ZRANGEBYSCORE", c));
        // Scripts write these too (their counters with pcall, so a refusal
        // there would pass silently): ZADD XX of a member that is never
        // there, ZREM of it, a counter + 0.
        let mut c = redis::cmd("ZADD");
        c.arg(scheduled).arg("XX").arg(0).arg("\u{0}rights-probe");
        probes.push(("ZADD", c));
        let mut c = redis::cmd("ZREM");
        c.arg(scheduled).arg("\u{0}rights-probe");
        probes.push(("ZREM", c));
        let mut c = redis::cmd("HINCRBY");
        c.arg(self.keys.stats()).arg("processed").arg(0);
        probes.push(("HINCRBY", c));
        // What the lifecycle scripts send (uniqueness keys, records), on a
        // key that never exists: a read, a delete and an expire of nothing.
        let nothing = self.keys.unique("\u{0}rights-probe");
        for op in ["GET", "EXISTS", "DEL", "PEXPIRE"] {
            let mut c = redis::cmd(op);
            c.arg(&nothing);
            if op == "PEXPIRE" {
                c.arg(1000);
            }
            probes.push((op, c));
        }
        for (op, cmd) in &probes {
            self.query::<Value>(op, cmd).await?;
        }
        Ok(())
    }

    /// Whether the queue is in the `PREFIX:queues` set (a producer or a
    /// worker has used it).
    pub async fn is_registered(&self) -> Result<bool> {
        let mut cmd = redis::cmd("SISMEMBER");
        cmd.arg(self.keys.registry()).arg(self.keys.name().as_str());
        self.query::<bool>("SISMEMBER", &cmd).await
    }

    /// Adds the queue to the `PREFIX:queues` set that tools list.
    pub async fn register(&self) -> Result<()> {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.keys.registry()).arg(self.keys.name().as_str());
        self.query::<Value>("SADD", &cmd).await.map(|_| ())
    }

    fn xadd(&self, fields: &[(&[u8], &[u8])]) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.keys.ready()).arg("*");
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        cmd
    }

    /// `XADD ready * fields`: returns the entry id.
    pub async fn add(&self, fields: &[(&[u8], &[u8])]) -> Result<String> {
        self.query("XADD", &self.xadd(fields)).await
    }

    /// Many `XADD`s in one pipeline: returns the entry ids in order.
    pub async fn add_many<'a>(
        &self,
        jobs: impl IntoIterator<Item = &'a [(&'a [u8], &'a [u8])]>,
    ) -> Result<Vec<String>> {
        let mut pipe = redis::pipe();
        for fields in jobs {
            pipe.add_command(self.xadd(fields));
        }
        let mut conn = self.redis.shared();
        pipe.query_async(&mut conn)
            .await
            .map_err(|e| self.redis.error("XADD (pipeline)", e))
    }

    /// `ZADD scheduled` of members (MessagePack maps of fields) due at
    /// the given unix ms.
    pub async fn schedule(&self, items: &[(u64, Vec<u8>)]) -> Result<()> {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.scheduled());
        for (due, member) in items {
            cmd.arg(*due).arg(member.as_slice());
        }
        self.query::<Value>("ZADD", &cmd).await.map(|_| ())
    }

    /// `XREADGROUP ... COUNT count [BLOCK block] STREAMS ready >` on a
    /// dedicated connection. Without `block` it returns what is there at
    /// once. An empty result means there was nothing (the block time ran
    /// out, or the read was unblocked).
    pub async fn read(
        &self,
        conn: &mut BlockingConn,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<StreamEntry>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(consumer)
            .arg("COUNT")
            .arg(count);
        if let Some(block) = block {
            // BLOCK 0 would wait forever: at least 1 ms.
            cmd.arg("BLOCK").arg((block.as_millis() as u64).max(1));
        }
        cmd.arg("STREAMS").arg(self.keys.ready()).arg(">");
        let v: Value = cmd
            .query_async(&mut conn.conn)
            .await
            .map_err(|e| self.redis.error("XREADGROUP", e))?;
        reply::read_reply("XREADGROUP", v)
    }

    /// `XREAD COUNT 1 BLOCK block STREAMS ready $` on a dedicated
    /// connection: waits for a new entry without claiming it (a doorbell
    /// for a worker with no slot to run it). True when an entry was added
    /// while it waited; false when the block time ran out (or it was
    /// unblocked).
    pub async fn wait_for_new(&self, conn: &mut BlockingConn, block: Duration) -> Result<bool> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg((block.as_millis() as u64).max(1))
            .arg("STREAMS")
            .arg(self.keys.ready())
            .arg("$");
        let v: Value = cmd
            .query_async(&mut conn.conn)
            .await
            .map_err(|e| self.redis.error("XREAD", e))?;
        Ok(!matches!(v, Value::Nil) && !matches!(&v, Value::Array(a) if a.is_empty()))
    }

    /// `CLIENT ID` of a dedicated connection, so a blocked read on it can be
    /// ended from elsewhere with [`QueueStore::unblock`].
    pub async fn client_id(&self, conn: &mut BlockingConn) -> Result<i64> {
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(&mut conn.conn)
            .await
            .map_err(|e| self.redis.error("CLIENT ID", e))
    }

    /// `CLIENT UNBLOCK id`: the blocked read returns empty at once.
    pub async fn unblock(&self, client_id: i64) -> Result<()> {
        let mut cmd = redis::cmd("CLIENT");
        cmd.arg("UNBLOCK").arg(client_id);
        self.query::<Value>("CLIENT UNBLOCK", &cmd)
            .await
            .map(|_| ())
    }

    /// Script `ack-2`: acknowledges and deletes entries still pending on
    /// `consumer`, adding their number to counter `counter`. Returns the ids
    /// that were not pending on `consumer` (lost).
    pub async fn ack(&self, consumer: &str, counter: &str, ids: &[&str]) -> Result<Vec<String>> {
        let Some((min, max)) = id_range(ids) else {
            return Ok(Vec::new());
        };
        let call = |script: &'static JobScript| {
            self.eval(script, move |inv| {
                inv.key(self.keys.ready())
                    .key(self.keys.stats())
                    .arg(&self.group)
                    .arg(consumer)
                    .arg(counter)
                    .arg(min)
                    .arg(max)
                    .arg(ids);
            })
        };
        if !self.redis.xackdel() {
            return call(&scripts::ACK).await;
        }
        match call(&scripts::ACKDEL).await {
            // The server lost XACKDEL (a failover to an older server): the
            // script failed at that command, before anything was changed.
            // From now on, and for this batch, XACK + XDEL.
            Err(e) if e.redis_failure() == Some(crate::RedisFailure::Unsupported) => {
                tracing::warn!(error = %e, "XACKDEL is gone; acknowledging with XACK and XDEL");
                self.redis.use_xackdel(false);
                call(&scripts::ACK).await
            }
            other => other,
        }
    }

    /// Script `retry-3`: moves a failed entry to `scheduled` as `member`,
    /// due at `due_ms`. False when the entry was not pending on `consumer`.
    pub async fn retry(
        &self,
        consumer: &str,
        entry_id: &str,
        due_ms: u64,
        member: &[u8],
    ) -> Result<bool> {
        self.eval(&scripts::RETRY, |inv| {
            inv.key(self.keys.ready())
                .key(self.keys.scheduled())
                .key(self.keys.stats())
                .arg(&self.group)
                .arg(consumer)
                .arg(entry_id)
                .arg(due_ms)
                .arg(member);
        })
        .await
    }

    /// Script `dead-3`: moves an entry to `dead` with `fields` (the job's
    /// fields plus failure context). False when the entry was not pending
    /// on `consumer`.
    pub async fn dead(
        &self,
        consumer: &str,
        entry_id: &str,
        dead_max_len: u64,
        fields: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<bool> {
        self.eval(&scripts::DEAD, |inv| {
            inv.key(self.keys.ready())
                .key(self.keys.dead())
                .key(self.keys.stats())
                .arg(&self.group)
                .arg(consumer)
                .arg(entry_id)
                .arg(dead_max_len);
            for (k, v) in fields {
                inv.arg(k.as_slice()).arg(v.as_slice());
            }
        })
        .await
    }

    /// Script `promote-4`: moves up to `limit` due jobs to `ready`. Returns
    /// how many moved, the due time of the earliest job left, if any, and
    /// how many members were sent to `dead` instead (not a map of scalar
    /// fields, or wider than [`MAX_FIELDS`](crate::envelope::MAX_FIELDS)).
    /// An error means the member it was moving stays scheduled (members
    /// moved before it in the same call stay moved).
    pub async fn promote(
        &self,
        now_ms: u64,
        limit: usize,
        dead_max_len: u64,
    ) -> Result<(u64, Option<u64>, u64)> {
        const OP: &str = "promote-4";
        let v: Value = self
            .eval(&scripts::PROMOTE, |inv| {
                inv.key(self.keys.scheduled())
                    .key(self.keys.ready())
                    .key(self.keys.dead())
                    .key(self.keys.stats())
                    .arg(now_ms)
                    .arg(limit)
                    .arg(dead_max_len);
            })
            .await?;
        let parts = reply::array(OP, v)?;
        let (Some(moved), Some(next)) = (parts.first(), parts.get(1)) else {
            return Err(Error::protocol(OP, "expected [moved, next_due, malformed]"));
        };
        let malformed = parts.get(2).map_or(Ok(0), |v| reply::int(OP, v))?;
        Ok((
            reply::int(OP, moved)?.max(0) as u64,
            u64::try_from(reply::int(OP, next)?).ok(),
            malformed.max(0) as u64,
        ))
    }

    /// Script `requeue-2`: gives fetched, unstarted entries back to `ready`.
    pub async fn requeue(&self, consumer: &str, ids: &[&str]) -> Result<u64> {
        self.eval(&scripts::REQUEUE, |inv| {
            inv.key(self.keys.ready())
                .key(self.keys.stats())
                .arg(&self.group)
                .arg(consumer)
                .arg(ids);
        })
        .await
    }

    /// Script `extend-1`: refreshes the lease of running entries. Returns
    /// the ids no longer pending on `consumer`.
    pub async fn extend(&self, consumer: &str, ids: &[&str]) -> Result<Vec<String>> {
        self.eval(&scripts::EXTEND, |inv| {
            inv.key(self.keys.ready())
                .arg(&self.group)
                .arg(consumer)
                .arg(ids);
        })
        .await
    }

    /// Script `reclaim-3`: claims up to `count` entries idle for at least
    /// `min_idle`, dead-lettering those delivered more than `max_deliveries`
    /// times. Returns the next cursor ("0-0" when the pass is complete), the
    /// entries to run, how many entries were dead-lettered as abandoned and
    /// how many could not be (left pending).
    #[allow(clippy::too_many_arguments)]
    pub async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        cursor: &str,
        count: usize,
        max_deliveries: u32,
        dead_max_len: u64,
        now_ms: u64,
    ) -> Result<Reclaimed> {
        const OP: &str = "reclaim-3";
        let v: Value = self
            .eval(&scripts::RECLAIM, |inv| {
                inv.key(self.keys.ready())
                    .key(self.keys.dead())
                    .key(self.keys.stats())
                    .arg(&self.group)
                    .arg(consumer)
                    .arg(min_idle.as_millis() as u64)
                    .arg(cursor)
                    .arg(count)
                    .arg(max_deliveries)
                    .arg(dead_max_len)
                    .arg(now_ms)
                    .arg(consumer)
                    .arg(self.keys.name().as_str());
            })
            .await?;
        let mut parts = reply::array(OP, v)?.into_iter();
        let (Some(next), Some(claimed), abandoned, failed, tracked) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Error::protocol(
                OP,
                "expected [cursor, entries, abandoned, failed]",
            ));
        };
        let count = |v: Option<Value>| -> Result<u64> {
            Ok(v.map_or(Ok(0), |v| reply::int(OP, &v))?.max(0) as u64)
        };
        let mut entries = Vec::new();
        for item in reply::array(OP, claimed)? {
            let mut f = reply::array(OP, item)?.into_iter();
            let (Some(id), Some(deliveries), Some(fields)) = (f.next(), f.next(), f.next()) else {
                return Err(Error::protocol(OP, "expected [id, deliveries, fields]"));
            };
            entries.push(ClaimedEntry {
                deliveries: reply::int(OP, &deliveries)?.max(1) as u64,
                entry: StreamEntry {
                    id: reply::string(OP, id)?,
                    fields: reply::pairs(OP, fields)?,
                },
            });
        }
        Ok(Reclaimed {
            next_cursor: reply::string(OP, next)?,
            entries,
            abandoned: count(abandoned)?,
            failed: count(failed)?,
            tracked: match tracked {
                Some(v) => reply::array(OP, v)?
                    .into_iter()
                    .map(|t| reply::pairs(OP, t))
                    .collect::<Result<_>>()?,
                None => Vec::new(),
            },
        })
    }

    /// Script `reap-1`: removes consumers idle longer than `min_idle` with
    /// nothing pending, except `me`. Returns how many were removed.
    pub async fn reap_consumers(&self, min_idle: Duration, me: &str) -> Result<u64> {
        self.eval(&scripts::REAP, |inv| {
            inv.key(self.keys.ready())
                .arg(&self.group)
                .arg(min_idle.as_millis() as u64)
                .arg(me);
        })
        .await
    }
}

/// The smallest and largest stream entry id of `ids`, compared as ids
/// (`ms-seq`, numerically), not as strings.
fn id_range<'a>(ids: &[&'a str]) -> Option<(&'a str, &'a str)> {
    let key = |id: &str| {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            seq.parse::<u64>().unwrap_or(0),
        )
    };
    let min = ids.iter().min_by_key(|id| key(id))?;
    let max = ids.iter().max_by_key(|id| key(id))?;
    Some((min, max))
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_range_compares_ids_numerically() {
        let ids = ["99-10", "100-2", "100-10", "99-9"];
        assert_eq!(super::id_range(&ids), Some(("99-9", "100-10")));
        assert_eq!(super::id_range(&[]), None);
    }
}
