//! The lifecycle's Redis operations on one queue: enqueue with a
//! uniqueness key or a record, start, settle, progress, cancel, read a
//! record, wait for a final state. Jobs without a key or a record never
//! come here: they keep the plain XADD and the batched ack.

use std::collections::HashMap;
use std::time::Duration;

use redis::Value;

use crate::connection::BlockingConn;
use crate::error::{Error, Result};
use crate::lifecycle::{JobRecord, JobState};
use crate::reply;
use crate::scripts;
use crate::store::QueueStore;

/// Where an enqueued job goes.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// To the ready stream now, with these fields.
    Ready(&'a [(&'a [u8], &'a [u8])]),
    /// To the scheduled set, due at unix ms, as this member.
    Scheduled(u64, &'a [u8]),
}

/// The uniqueness key of an enqueue: key (without the prefix), wire mode
/// (`queued`, `done`, `ttl`) and the key's lifetime in ms (0 = until
/// released).
#[derive(Debug, Clone, Copy)]
pub struct UniqueLock<'a> {
    /// The key, as the job names it.
    pub key: &'a str,
    /// `queued`, `done` or `ttl`.
    pub mode: &'a str,
    /// Lifetime, ms; 0 = until released.
    pub ttl_ms: u64,
}

/// What `enqueue-6` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// Enqueued, with this id.
    Enqueued(String),
    /// Refused: the key is held by the job with this id.
    Duplicate(String),
}

/// What `start-3` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// Started: run the handler.
    Started,
    /// Not pending on this consumer any more: do not run.
    Lost,
    /// Cancelled before it started: do not run; settle as cancelled.
    Cancelled,
}

/// What `cancel-4` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelOutcome {
    /// It had not started: it never will.
    Cancelled,
    /// It is running: its handler is signalled.
    Requested,
    /// It was already final.
    AlreadyFinal,
    /// No record: an unknown id, a job without a record, or a record that
    /// expired.
    NotFound,
}

/// A field, value pair of an entry.
pub type Field = (Vec<u8>, Vec<u8>);

/// One `settle-14` call: the outcome of an attempt of a tracked job.
#[derive(Debug, Clone, Copy)]
pub struct Settle<'a> {
    /// This worker's consumer name.
    pub consumer: &'a str,
    /// The entry in ready.
    pub entry_id: &'a str,
    /// The job's id.
    pub job_id: &'a str,
    /// The new state: completed, discarded, expired, cancelled, retrying
    /// or dead.
    pub state: JobState,
    /// Server time, unix ms.
    pub now_ms: u64,
    /// The record's keep time after a final state, ms; 0 = no record.
    pub record_ms: u64,
    /// The uniqueness key to release (if it still holds this job's id).
    pub release: Option<&'a str>,
    /// Completed: the result (MessagePack); retrying, dead: the error.
    pub text: &'a [u8],
    /// Retrying, dead: the error class.
    pub error_class: &'a str,
    /// Retrying: due time (unix ms) and the scheduled member.
    pub retry: Option<(u64, &'a [u8])>,
    /// Dead: the dead stream's cap and the dead entry's fields.
    pub dead: Option<(u64, &'a [Field])>,
    /// Completed chain step: the next step's entry fields.
    pub next_step: Option<&'a [Field]>,
    /// The batch the job is a member of.
    pub batch: Option<&'a str>,
    /// Its group: a final state frees its place there.
    pub group: Option<&'a str>,
}

/// A batch as its hash says: how many members, how they ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BatchSummary {
    /// The batch id.
    pub id: String,
    /// Members in all.
    pub total: u64,
    /// Members not final yet (0 once the completion job is scheduled).
    pub pending: u64,
    /// Members that completed.
    pub succeeded: u64,
    /// Members that ended otherwise (dead, discarded, expired, cancelled).
    pub failed: u64,
    /// The ids of the members that did not complete.
    pub failed_ids: Vec<String>,
    /// When the last member ended, unix ms.
    pub done_at_ms: Option<u64>,
}

impl QueueStore {
    /// Script `enqueue-6`: reserves `unique` (if any), adds the job to
    /// `dest`, and writes its first record (if `record_ms` > 0), in one
    /// atomic step.
    #[allow(clippy::too_many_arguments)]
    pub async fn enqueue_tracked(
        &self,
        job_id: &str,
        job_type: &str,
        unique: Option<UniqueLock<'_>>,
        record_ms: u64,
        now_ms: u64,
        dest: Destination<'_>,
    ) -> Result<EnqueueOutcome> {
        let keys = self.keys();
        let lock = unique.map_or_else(|| keys.unique(""), |u| keys.unique(u.key));
        let v: Value = self
            .eval(&scripts::ENQUEUE, |inv| {
                inv.key(keys.ready())
                    .key(keys.scheduled())
                    .key(keys.stats())
                    .key(&lock)
                    .key(keys.job(job_id))
                    .key(keys.job_done(job_id))
                    .arg(job_id)
                    .arg(unique.map_or("", |u| u.mode))
                    .arg(unique.map_or(0, |u| u.ttl_ms))
                    .arg(record_ms)
                    .arg(now_ms);
                match dest {
                    Destination::Ready(fields) => {
                        inv.arg(0).arg(job_type);
                        for (k, v) in fields {
                            inv.arg(*k).arg(*v);
                        }
                    }
                    Destination::Scheduled(due, member) => {
                        inv.arg(due.max(1)).arg(job_type).arg(member);
                    }
                }
            })
            .await?;
        let op = scripts::ENQUEUE.name;
        let mut items = reply::array(op, v)?.into_iter();
        let (Some(code), Some(id)) = (items.next(), items.next()) else {
            return Err(Error::protocol(op, "expected { code, id }"));
        };
        let id = reply::string(op, id)?;
        Ok(match reply::int(op, &code)? {
            1 => EnqueueOutcome::Enqueued(id),
            _ => EnqueueOutcome::Duplicate(id),
        })
    }

    /// Script `start-3`: marks the record `active` and releases a `queued`
    /// uniqueness key, if the entry is still pending on `consumer`.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_tracked(
        &self,
        consumer: &str,
        entry_id: &str,
        job_id: &str,
        now_ms: u64,
        attempt: u32,
        record: bool,
        release: Option<&str>,
    ) -> Result<StartOutcome> {
        let keys = self.keys();
        let lock = keys.unique(release.unwrap_or(""));
        let code: i64 = self
            .eval(&scripts::START, |inv| {
                inv.key(keys.ready())
                    .key(keys.job(job_id))
                    .key(&lock)
                    .arg(self.group())
                    .arg(consumer)
                    .arg(entry_id)
                    .arg(job_id)
                    .arg(now_ms)
                    .arg(attempt)
                    .arg(consumer)
                    .arg(if record { "1" } else { "0" })
                    .arg(if release.is_some() { "1" } else { "0" });
            })
            .await?;
        Ok(match code {
            1 => StartOutcome::Started,
            2 => StartOutcome::Cancelled,
            _ => StartOutcome::Lost,
        })
    }

    /// Script `settle-14`. False when the entry was not pending on the
    /// consumer (lease lost: nothing changed).
    pub async fn settle(&self, s: &Settle<'_>) -> Result<bool> {
        let keys = self.keys();
        let lock = keys.unique(s.release.unwrap_or(""));
        let batch = s.batch.unwrap_or("");
        self.eval(&scripts::SETTLE, |inv| {
            inv.key(keys.ready())
                .key(keys.scheduled())
                .key(keys.dead())
                .key(keys.stats())
                .key(keys.job(s.job_id))
                .key(&lock)
                .key(keys.job_done(s.job_id))
                .key(keys.batch(batch))
                .key(keys.batch_members(batch))
                .key(keys.batch_failed(batch))
                .key(keys.groups())
                .key(keys.grouped())
                .key(keys.group(s.group.unwrap_or("")))
                .key(keys.meta())
                .arg(self.group())
                .arg(s.consumer)
                .arg(s.entry_id)
                .arg(s.job_id)
                .arg(s.state.as_str())
                .arg(s.now_ms)
                .arg(s.record_ms)
                .arg(if s.release.is_some() { "1" } else { "0" })
                .arg(s.text)
                .arg(s.error_class)
                .arg(if s.batch.is_some() { "1" } else { "0" })
                .arg(s.group.unwrap_or(""));
            match (s.retry, s.dead, s.next_step) {
                (Some((due, member)), _, _) => {
                    inv.arg(due).arg(member);
                }
                (None, Some((max_len, fields)), _) => {
                    inv.arg(max_len);
                    for (k, v) in fields {
                        inv.arg(k.as_slice()).arg(v.as_slice());
                    }
                }
                (None, None, Some(fields)) => {
                    inv.arg("1");
                    for (k, v) in fields {
                        inv.arg(k.as_slice()).arg(v.as_slice());
                    }
                }
                (None, None, None) => {
                    inv.arg("0");
                }
            }
        })
        .await
    }

    /// Script `progress-2`: writes progress to the job's record (if it has
    /// one) and refreshes the lease. False when the lease is lost.
    pub async fn progress(
        &self,
        consumer: &str,
        entry_id: &str,
        job_id: &str,
        percent: u8,
        message: &str,
        now_ms: u64,
    ) -> Result<bool> {
        let keys = self.keys();
        self.eval(&scripts::PROGRESS, |inv| {
            inv.key(keys.ready())
                .key(keys.job(job_id))
                .arg(self.group())
                .arg(consumer)
                .arg(entry_id)
                .arg(percent.min(100))
                .arg(message)
                .arg(now_ms);
        })
        .await
    }

    /// Script `cancel-4`: cancels the job `job_id` through its record.
    pub async fn cancel(&self, job_id: &str, now_ms: u64) -> Result<CancelOutcome> {
        let keys = self.keys();
        let record = keys.job(job_id);
        // The key the job holds, as its record names it; only a key of this
        // queue is passed on (a record is data, and could say anything).
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&record).arg("unique_lock");
        let lock: Option<String> = self.query("HGET", &cmd).await?;
        let prefix = keys.unique("");
        let lock = lock.filter(|l| l.starts_with(&prefix)).unwrap_or(prefix);
        let code: i64 = self
            .eval(&scripts::CANCEL, |inv| {
                inv.key(&record)
                    .key(keys.cancels())
                    .key(keys.job_done(job_id))
                    .key(&lock)
                    .arg(job_id)
                    .arg(now_ms);
            })
            .await?;
        Ok(match code {
            1 => CancelOutcome::Cancelled,
            2 => CancelOutcome::Requested,
            3 => CancelOutcome::AlreadyFinal,
            _ => CancelOutcome::NotFound,
        })
    }

    /// Opens batch `batch_id`: its hash (`total` = `pending` = the number
    /// of members, the completion job's scheduled `callback` member, the
    /// keep time after it completes) and its member set, before any
    /// member is enqueued. `HSETNX`, so a repeated call changes nothing.
    pub async fn open_batch(
        &self,
        batch_id: &str,
        member_ids: &[&str],
        callback: &[u8],
        keep_ms: u64,
        now_ms: u64,
    ) -> Result<()> {
        let keys = self.keys();
        let hash = keys.batch(batch_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (k, v) in [
            ("total", member_ids.len().to_string()),
            ("pending", member_ids.len().to_string()),
            ("keep_ms", keep_ms.to_string()),
            ("created_at", now_ms.to_string()),
        ] {
            pipe.cmd("HSETNX").arg(&hash).arg(k).arg(v).ignore();
        }
        pipe.cmd("HSETNX")
            .arg(&hash)
            .arg("callback")
            .arg(callback)
            .ignore();
        for chunk in member_ids.chunks(1000) {
            pipe.cmd("SADD")
                .arg(keys.batch_members(batch_id))
                .arg(chunk)
                .ignore();
        }
        let mut conn = self.redis().shared();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.redis().error("open batch", e))
    }

    /// What batch `batch_id`'s hash says, `None` when there is none (an
    /// unknown id, or it expired after its keep time).
    pub async fn batch_summary(&self, batch_id: &str) -> Result<Option<BatchSummary>> {
        let keys = self.keys();
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(keys.batch(batch_id));
        let v: Value = self.query("HGETALL", &cmd).await?;
        let fields: HashMap<String, String> = reply::pairs("HGETALL", v)?
            .into_iter()
            .filter_map(|(k, v)| Some((String::from_utf8(k).ok()?, String::from_utf8(v).ok()?)))
            .collect();
        if fields.is_empty() {
            return Ok(None);
        }
        let num = |k: &str| fields.get(k).and_then(|v| v.parse::<i64>().ok());
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(keys.batch_failed(batch_id));
        let failed_ids: Vec<String> = self.query("SMEMBERS", &cmd).await?;
        Ok(Some(BatchSummary {
            id: batch_id.to_owned(),
            total: num("total").unwrap_or(0).max(0) as u64,
            pending: num("pending").unwrap_or(0).max(0) as u64,
            succeeded: num("succeeded").unwrap_or(0).max(0) as u64,
            failed: num("failed").unwrap_or(0).max(0) as u64,
            failed_ids,
            done_at_ms: num("done_at").map(|v| v.max(0) as u64),
        }))
    }

    /// The record of job `job_id`, if it has one (`HGETALL`).
    pub async fn record(&self, job_id: &str) -> Result<Option<JobRecord>> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys().job(job_id));
        let v: Value = self.query("HGETALL", &cmd).await?;
        let fields: HashMap<String, Vec<u8>> = reply::pairs("HGETALL", v)?
            .into_iter()
            .filter_map(|(k, v)| String::from_utf8(k).ok().map(|k| (k, v)))
            .collect();
        Ok(JobRecord::from_fields(fields))
    }

    /// Blocks on a dedicated connection until job `job_id` is final or
    /// `block` has passed (`BLMOVE` of its done list onto itself, so every
    /// waiter sees the element). True when it is final.
    pub async fn wait_final(
        &self,
        conn: &mut BlockingConn,
        job_id: &str,
        block: Duration,
    ) -> Result<bool> {
        let done = self.keys().job_done(job_id);
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(&done)
            .arg(&done)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(format!("{:.3}", block.as_secs_f64().max(0.01)));
        let v: Value = cmd
            .query_async(&mut conn.conn)
            .await
            .map_err(|e| self.redis().error("BLMOVE", e))?;
        Ok(!matches!(v, Value::Nil))
    }

    /// Ids of running jobs asked to cancel at or after `since_ms`, with
    /// when (`ZRANGEBYSCORE` of the cancel feed).
    pub async fn cancel_requests(&self, since_ms: u64) -> Result<Vec<(String, u64)>> {
        let mut cmd = redis::cmd("ZRANGEBYSCORE");
        cmd.arg(self.keys().cancels())
            .arg(since_ms)
            .arg("+inf")
            .arg("WITHSCORES");
        let v: Value = self.query("ZRANGEBYSCORE", &cmd).await?;
        reply::pairs("ZRANGEBYSCORE", v)?
            .into_iter()
            .map(|(id, at)| {
                let id = String::from_utf8(id)
                    .map_err(|_| Error::protocol("ZRANGEBYSCORE", "id is not UTF-8"))?;
                let at = std::str::from_utf8(&at)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0);
                Ok((id, at as u64))
            })
            .collect()
    }
}
