//! Browsing one queue job by job, for on-call tools: undelivered entries,
//! the pending list, and the scripts that take single jobs out
//! (`withdraw-4`) or purge many (`purge-4`). Away from the hot path.

use redis::Value;

use crate::error::{Error, Result};
use crate::reply::{self, StreamEntry};
use crate::scripts;
use crate::store::QueueStore;

/// One entry of the group's pending list (`XPENDING … IDLE`-less extended
/// form): delivered to a consumer and not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingEntry {
    /// The `ready` entry id.
    pub id: String,
    /// The consumer that holds it.
    pub consumer: String,
    /// Time since it was last delivered (or its lease extended), ms.
    pub idle_ms: u64,
    /// Times it was delivered.
    pub deliveries: u64,
}

/// Where [`QueueStore::withdraw`] takes a job from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WithdrawFrom<'a> {
    /// An undelivered `ready` entry, by entry id.
    Ready(&'a str),
    /// A `scheduled` member, by its exact bytes.
    Scheduled(&'a [u8]),
}

/// What `withdraw-4` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Withdrawn {
    /// The undelivered `ready` entry was deleted (`cancelled` + 1).
    Ready,
    /// The `scheduled` member was removed (`cancelled_scheduled` + 1).
    Scheduled,
    /// Not there any more: nothing changed.
    Gone,
    /// A worker has fetched it: nothing changed.
    Fetched,
    /// It keeps a record or is a batch member: nothing changed.
    Tracked,
}

/// Which jobs [`QueueStore::purge`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PurgeOf {
    /// Undelivered `ready` entries, by entry id.
    Ready,
    /// `scheduled` members, by their exact bytes.
    Scheduled,
    /// Dead letters, by dead entry id.
    Dead,
}

impl PurgeOf {
    fn as_str(self) -> &'static str {
        match self {
            PurgeOf::Ready => "ready",
            PurgeOf::Scheduled => "scheduled",
            PurgeOf::Dead => "dead",
        }
    }
}

/// Most ids one `purge-4` call takes.
pub const PURGE_BATCH: usize = 500;

impl QueueStore {
    /// The group's last-delivered id (`XINFO GROUPS`): entries after it
    /// are undelivered. `None` when the stream or the group does not exist
    /// (then nothing was delivered).
    pub async fn last_delivered_id(&self) -> Result<Option<String>> {
        Ok(self.group_info().await?.map(|g| g.last_delivered))
    }

    /// The group's pending list from `start` (`-`, an id, or `(id` for
    /// after it), oldest first, at most `count`. Empty when there is no
    /// group.
    pub async fn pending_entries(&self, start: &str, count: usize) -> Result<Vec<PendingEntry>> {
        const OP: &str = "XPENDING";
        let mut cmd = redis::cmd("XPENDING");
        cmd.arg(self.keys().ready())
            .arg(self.group())
            .arg(start)
            .arg("+")
            .arg(count);
        let v = match self.query::<Value>(OP, &cmd).await {
            Ok(v) => v,
            Err(e) if e.is_no_group() => return Ok(Vec::new()),
            Err(Error::Redis { message, .. }) if message.contains("NOGROUP") => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for item in reply::array(OP, v)? {
            let mut parts = reply::array(OP, item)?.into_iter();
            let (Some(id), Some(consumer), Some(idle), Some(n)) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(Error::protocol(OP, "expected id, consumer, idle, count"));
            };
            out.push(PendingEntry {
                id: reply::string(OP, id)?,
                consumer: reply::string(OP, consumer)?,
                idle_ms: reply::int(OP, &idle)?.max(0) as u64,
                deliveries: reply::int(OP, &n)?.max(0) as u64,
            });
        }
        Ok(out)
    }

    /// The `ready` entries with these ids, in order; `None` for an id no
    /// longer there. One pipeline.
    pub async fn ready_entries_by_id(&self, ids: &[&str]) -> Result<Vec<Option<StreamEntry>>> {
        const OP: &str = "XRANGE";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XRANGE")
                .arg(self.keys().ready())
                .arg(*id)
                .arg(*id)
                .arg("COUNT")
                .arg(1);
        }
        let mut conn = self.redis().shared();
        let replies: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis().error(OP, e))?;
        replies
            .into_iter()
            .map(|v| Ok(reply::entries(OP, v)?.into_iter().next()))
            .collect()
    }

    /// Makes the `scheduled` member with exactly these bytes due at
    /// `due_ms` (`ZADD XX CH`): the promoter moves it to `ready` at its
    /// next pass. False when the member is no longer scheduled (promoted,
    /// cancelled); nothing is added then.
    pub async fn reschedule(&self, member: &[u8], due_ms: u64) -> Result<bool> {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys().scheduled())
            .arg("XX")
            .arg("CH")
            .arg(due_ms)
            .arg(member);
        Ok(self.query::<u64>("ZADD", &cmd).await? > 0)
    }

    /// The `scheduled` members due at exactly `due_ms`, at most `count`
    /// (`ZRANGE … BYSCORE … LIMIT`): where a job seen scheduled is looked
    /// for again without a scan.
    pub async fn scheduled_due_at(&self, due_ms: u64, count: usize) -> Result<Vec<Vec<u8>>> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(self.keys().scheduled())
            .arg(due_ms)
            .arg(due_ms)
            .arg("LIMIT")
            .arg(0)
            .arg(count.max(1));
        self.query("ZRANGEBYSCORE", &cmd).await
    }

    /// Dead entries from `end` back to `start` (entry ids, `(id` for
    /// exclusive, `+`/`-`, or a bare unix ms), newest first, at most
    /// `count` (`XREVRANGE`).
    pub async fn dead_entries_rev(
        &self,
        end: &str,
        start: &str,
        count: usize,
    ) -> Result<Vec<crate::reply::StreamEntry>> {
        self.between("XREVRANGE", self.keys().dead(), end, start, count.max(1))
            .await
    }

    /// Script `withdraw-4`: cancels a job that keeps no record before any
    /// worker fetched it. `unique_key` is the job's uniqueness key, if it
    /// has one: released when it holds `job_id`.
    pub async fn withdraw(
        &self,
        from: WithdrawFrom<'_>,
        job_id: &str,
        unique_key: Option<&str>,
    ) -> Result<Withdrawn> {
        let (place, what): (&str, &[u8]) = match from {
            WithdrawFrom::Ready(id) => ("ready", id.as_bytes()),
            WithdrawFrom::Scheduled(member) => ("scheduled", member),
        };
        let key = match unique_key {
            Some(k) => self.keys().unique(k),
            None => self.keys().stats().to_owned(),
        };
        let code: i64 = self
            .eval(&scripts::WITHDRAW, |inv| {
                inv.key(self.keys().ready())
                    .key(self.keys().scheduled())
                    .key(self.keys().stats())
                    .key(key)
                    .arg(self.group())
                    .arg(place)
                    .arg(what)
                    .arg(job_id)
                    .arg(if unique_key.is_some() { "1" } else { "" });
            })
            .await?;
        Ok(match code {
            1 => Withdrawn::Ready,
            2 => Withdrawn::Scheduled,
            -1 => Withdrawn::Fetched,
            -2 => Withdrawn::Tracked,
            _ => Withdrawn::Gone,
        })
    }

    /// Script `purge-4`: removes these jobs (at most [`PURGE_BATCH`] per
    /// call is what callers send; the script refuses more than 1000).
    /// Ready entries a worker has fetched are skipped. Returns how many
    /// were removed.
    pub async fn purge(&self, of: PurgeOf, ids: &[&[u8]]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.eval(&scripts::PURGE, |inv| {
            inv.key(self.keys().ready())
                .key(self.keys().scheduled())
                .key(self.keys().dead())
                .key(self.keys().stats())
                .arg(self.group())
                .arg(of.as_str());
            for id in ids {
                inv.arg(*id);
            }
        })
        .await
    }
}
