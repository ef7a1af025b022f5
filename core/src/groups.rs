//! Groups: ordering by key and fairness between tenants.
//!
//! A job may belong to a **group** (field `group`: a customer, a tenant,
//! an account). At most `group_concurrency` jobs of one group are
//! *admitted* at a time (in `ready`, running, or waiting for a retry): with
//! the default of 1 a group's jobs run one at a time, in enqueue order,
//! across the whole fleet. The rest wait in the group's own stream
//! (`PREFIX:{Q}:group:G`); each admitted job that ends lets the next one
//! into `ready`, at its tail, so groups take turns: another group's job
//! waits behind at most `group_concurrency` jobs of each busy group, not
//! behind their backlogs.
//!
//! The state is three keys of the queue, changed only by scripts
//! (`group-enqueue-6` at enqueue, `group-start-6` when a worker starts a
//! job that did not come through the gate, `settle-14` when a job ends):
//! see docs/flow-control.md and docs/wire-format.md.

use redis::Value;

use crate::error::{Error, Result};
use crate::reply;
use crate::scripts;
use crate::store::QueueStore;

/// The field of `PREFIX:{Q}:meta` that holds the queue's group
/// concurrency (default 1).
pub const CONCURRENCY_FIELD: &str = "group_concurrency";

/// `group_concurrency` as the group scripts read it: decimal digits only,
/// clamped to 1..=[`MAX_GROUP_CONCURRENCY`]; anything else (`nan`, `1.5`,
/// `0x10`, `+3`, `-1`) counts as 1. One reading everywhere, or a worker and
/// a script would disagree on how many jobs of a group may run.
pub fn parse_concurrency(v: &str) -> u32 {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return 1;
    }
    // Too many digits for u64 is still "more than the maximum".
    v.parse::<u64>().map_or(MAX_GROUP_CONCURRENCY, |n| {
        n.clamp(1, u64::from(MAX_GROUP_CONCURRENCY)) as u32
    })
}

/// Most jobs of one group admitted at once, at most.
pub const MAX_GROUP_CONCURRENCY: u32 = 10_000;

/// Where the jobs of one `group-enqueue-6` call went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct GroupEnqueued {
    /// Added to `ready` (or already admitted: a retried call).
    pub admitted: u64,
    /// Waiting behind their group.
    pub waiting: u64,
}

/// Most jobs one `group-enqueue-6` call takes.
pub const GROUP_ENQUEUE_BATCH: usize = 1000;

/// One job for [`QueueStore::enqueue_grouped`]: its id and its entry's
/// fields (which must carry `group` and `id`).
pub type GroupedJob<'a> = (&'a str, &'a [(&'a [u8], &'a [u8])]);

/// What a worker does with a grouped job it fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupStart {
    /// Admitted: run it.
    Run,
    /// Moved behind its group: nothing more to do with this entry.
    Waiting,
    /// Not pending on this consumer any more: nothing was changed.
    Lost,
}

/// One group of a queue, as `jobstream` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct GroupInfo {
    /// The group.
    pub group: String,
    /// Its jobs admitted (ready, running or waiting for a retry).
    pub admitted: u64,
    /// Its jobs waiting for their turn.
    pub waiting: u64,
}

/// The partition of `group` in a queue split into `partitions` queues
/// (`Q.0` … `Q.{n-1}`, each its own stream, so its own Cluster slot): FNV-1a
/// (32 bits) of the group's bytes, modulo `partitions`. Every producer of
/// the fleet, in any language, must send a group's jobs to the same
/// partition, or the group's order only holds within each partition; the
/// function is spelled out in docs/flow-control.md for that. `partitions`
/// 0 counts as 1.
///
/// ```
/// use jobstream_core::groups::partition_of;
/// assert_eq!(partition_of(b"tenant-7", 8), partition_of(b"tenant-7", 8));
/// assert!(partition_of(b"tenant-7", 8) < 8);
/// ```
pub fn partition_of(group: &[u8], partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in group {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}

impl QueueStore {
    /// Script `group-enqueue-6`: admits each job (adds it to `ready`) or
    /// lets it wait behind its group, in the order given, in calls of at
    /// most [`GROUP_ENQUEUE_BATCH`] jobs. Each job's fields must carry
    /// `group` and its `id`.
    pub async fn enqueue_grouped(
        &self,
        group: &str,
        jobs: &[GroupedJob<'_>],
    ) -> Result<GroupEnqueued> {
        let keys = self.keys();
        let op = scripts::GROUP_ENQUEUE.name;
        let mut out = GroupEnqueued::default();
        for chunk in jobs.chunks(GROUP_ENQUEUE_BATCH) {
            let v: Value = self
                .eval(&scripts::GROUP_ENQUEUE, |inv| {
                    inv.key(keys.ready())
                        .key(keys.groups())
                        .key(keys.grouped())
                        .key(keys.group(group))
                        .key(keys.meta())
                        .key(keys.stats())
                        .arg(group)
                        .arg(chunk.len());
                    for (id, fields) in chunk {
                        inv.arg(*id).arg(fields.len());
                        for (k, v) in fields.iter() {
                            inv.arg(*k).arg(*v);
                        }
                    }
                })
                .await?;
            let items = reply::array(op, v)?;
            let [admitted, waiting] = items.as_slice() else {
                return Err(Error::protocol(op, "expected { admitted, waiting }"));
            };
            out.admitted += reply::int(op, admitted)?.max(0) as u64;
            out.waiting += reply::int(op, waiting)?.max(0) as u64;
        }
        Ok(out)
    }

    /// Script `group-start-6`: whether a fetched grouped job may run now.
    pub async fn start_grouped(
        &self,
        consumer: &str,
        entry_id: &str,
        group: &str,
        job_id: &str,
    ) -> Result<GroupStart> {
        let keys = self.keys();
        let code: i64 = self
            .eval(&scripts::GROUP_START, |inv| {
                inv.key(keys.ready())
                    .key(keys.groups())
                    .key(keys.grouped())
                    .key(keys.group(group))
                    .key(keys.meta())
                    .key(keys.stats())
                    .arg(self.group())
                    .arg(consumer)
                    .arg(entry_id)
                    .arg(group)
                    .arg(job_id);
            })
            .await?;
        Ok(match code {
            1 => GroupStart::Run,
            2 => GroupStart::Waiting,
            _ => GroupStart::Lost,
        })
    }

    /// Sets the queue's group concurrency (`PREFIX:{Q}:meta`,
    /// `group_concurrency`): how many jobs of one group may be admitted at
    /// once, fleet-wide. 1 (the default) runs each group's jobs one at a
    /// time, in order.
    pub async fn set_group_concurrency(&self, n: u32) -> Result<()> {
        let n = n.clamp(1, MAX_GROUP_CONCURRENCY);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(self.keys().meta()).arg(CONCURRENCY_FIELD).arg(n);
        self.query::<Value>("HSET", &cmd).await.map(|_| ())
    }

    /// The queue's group concurrency (1 when unset or unreadable).
    pub async fn group_concurrency(&self) -> Result<u32> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.keys().meta()).arg(CONCURRENCY_FIELD);
        let v: Option<String> = self.query("HGET", &cmd).await?;
        Ok(v.as_deref().map_or(1, parse_concurrency))
    }

    /// Groups with admitted jobs (at most `limit`, from `HSCAN`), each
    /// with its admitted and waiting counts.
    pub async fn groups(&self, limit: usize) -> Result<Vec<GroupInfo>> {
        let keys = self.keys();
        let mut cursor = "0".to_owned();
        let mut found: Vec<(Vec<u8>, i64)> = Vec::new();
        loop {
            let mut cmd = redis::cmd("HSCAN");
            cmd.arg(keys.groups()).arg(&cursor).arg("COUNT").arg(500);
            let (next, page): (String, Vec<(Vec<u8>, i64)>) = self.query("HSCAN", &cmd).await?;
            found.extend(page);
            cursor = next;
            if cursor == "0" || found.len() >= limit {
                break;
            }
        }
        found.truncate(limit);
        let mut pipe = redis::pipe();
        for (g, _) in &found {
            // The group's key by bytes: a group name need not be UTF-8.
            let mut key = keys.group("").into_bytes();
            key.extend_from_slice(g);
            pipe.cmd("XLEN").arg(key);
        }
        let waiting: Vec<u64> = if found.is_empty() {
            Vec::new()
        } else {
            let mut conn = self.redis().shared();
            pipe.query_async(&mut conn)
                .await
                .map_err(|e| self.redis().error("XLEN", e))?
        };
        Ok(found
            .into_iter()
            .zip(waiting)
            .map(|((group, admitted), waiting)| GroupInfo {
                group: String::from_utf8_lossy(&group).into_owned(),
                admitted: admitted.max(0) as u64,
                waiting,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::partition_of;

    #[test]
    fn partition_of_is_fnv1a_32_modulo_the_count() {
        // FNV-1a 32-bit reference values: "" and "a", "foobar".
        assert_eq!(partition_of(b"", u32::MAX), 0x811c_9dc5);
        assert_eq!(partition_of(b"a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition_of(b"foobar", u32::MAX), 0xbf9c_f968);
        assert_eq!(partition_of(b"foobar", 0), 0);
        let spread: std::collections::HashSet<u32> = (0..1000)
            .map(|i| partition_of(format!("tenant-{i}").as_bytes(), 8))
            .collect();
        assert_eq!(spread.len(), 8, "every partition gets groups");
    }
}
