//! What a console (the web dashboard) needs beyond the CLI's views: dead
//! letters newest first with time filters, a page at a time; a job's
//! record; running jobs with their holders; run-now, cancel, replay and
//! discard of single jobs; and the queue's throughput history. Every read
//! is bounded by a count: nothing here walks a whole stream or set.

use jobstream_core::history::{HISTORY_POINTS, Sample, Sampled};
use jobstream_core::store_lifecycle::CancelOutcome;
use jobstream_core::{JobRecord, Result};
use serde::Serialize;

use crate::inspect::{DeadJob, Inspector, Place, PlainCancel, QueuedJob};
use crate::read_batch::{ReadBatch, entry_bytes};

/// Which dead letters [`Inspector::dead_page`] lists. Empty filters match
/// everything.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeadQuery {
    /// Only this reason.
    pub reason: Option<String>,
    /// Only this job type.
    pub job_type: Option<String>,
    /// Only jobs that died at or after this time, unix ms.
    pub since_ms: Option<u64>,
    /// Only jobs that died at or before this time, unix ms.
    pub until_ms: Option<u64>,
    /// Continue before this dead entry id (an earlier page's `next`).
    pub before: Option<String>,
    /// At most this many jobs (at least 1).
    pub limit: usize,
    /// Stop after reading this many entries (at least `limit`).
    pub scan_cap: usize,
}

impl DeadQuery {
    /// Sets `reason`.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
    /// Sets `job_type`.
    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.job_type = Some(job_type.into());
        self
    }
    /// Sets `since_ms`.
    pub fn since_ms(mut self, ms: u64) -> Self {
        self.since_ms = Some(ms);
        self
    }
    /// Sets `until_ms`.
    pub fn until_ms(mut self, ms: u64) -> Self {
        self.until_ms = Some(ms);
        self
    }
    /// Sets `before`.
    pub fn before(mut self, dead_id: impl Into<String>) -> Self {
        self.before = Some(dead_id.into());
        self
    }
    /// Sets `limit` and `scan_cap`.
    pub fn page(mut self, limit: usize, scan_cap: usize) -> Self {
        self.limit = limit;
        self.scan_cap = scan_cap;
        self
    }

    fn matches(&self, job: &DeadJob) -> bool {
        self.reason.as_ref().is_none_or(|r| *r == job.reason)
            && self.job_type.as_ref().is_none_or(|t| *t == job.job_type)
    }

    /// The `XREVRANGE` bounds: the newest end first.
    fn bounds(&self) -> (String, String) {
        let end = match (&self.before, self.until_ms) {
            (Some(id), _) => format!("({id}"),
            (None, Some(ms)) => ms.to_string(),
            (None, None) => "+".to_owned(),
        };
        let start = self
            .since_ms
            .map_or_else(|| "-".to_owned(), |ms| ms.to_string());
        (end, start)
    }
}

/// A page of dead letters, newest first.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct DeadPage {
    /// The dead jobs (payloads left out of JSON).
    pub jobs: Vec<DeadJob>,
    /// The cursor for the next (older) page ([`DeadQuery::before`]); `None`
    /// at the end.
    pub next: Option<String>,
    /// Entries read.
    pub scanned: usize,
    /// True when the read stopped at the scan cap with entries left.
    pub capped: bool,
    /// The newest entry read (on a first page: the newest dead letter
    /// within the bounds), what [`Inspector::dead_ids_matching`] takes as
    /// `upto` so an action on a filter leaves later letters alone.
    pub newest: Option<String>,
}

/// A job that a worker is running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RunningJob {
    /// The queue.
    pub queue: String,
    /// Job id.
    pub id: String,
    /// Job type.
    pub job_type: String,
    /// The `ready` entry id.
    pub entry_id: String,
    /// The consumer (worker) holding it.
    pub consumer: String,
    /// Since its delivery or last lease extension, ms.
    pub idle_ms: u64,
    /// Times delivered.
    pub deliveries: u64,
}

/// What [`Inspector::run_now`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunNow {
    /// The scheduled job is due now: the promoter moves it to `ready` at
    /// its next pass (within a second).
    Due,
    /// The dead job was replayed to `ready`.
    Replayed,
    /// It is in `ready` already, or running.
    AlreadyReady,
    /// Not found (or not within the scan cap).
    NotFound,
}

/// What [`Inspector::cancel_job`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cancelled {
    /// A job with a record: the record's cancel.
    Tracked(CancelOutcome),
    /// A job without one: taken out of `ready` or `scheduled`, or not.
    Plain(PlainCancel),
}

impl Inspector {
    /// Dead letters of `queue`, newest first, matching `query`: at most
    /// `query.limit` jobs from at most `query.scan_cap` entries and 64 MiB
    /// (`XREVRANGE` with `COUNT`, the time bounds as entry ids; the count
    /// sized to the entries, so a page of big packed jobs is read a few
    /// at a time).
    pub async fn dead_page(&self, queue: &str, query: &DeadQuery) -> Result<DeadPage> {
        let store = self.store(queue)?;
        let limit = query.limit.max(1);
        let cap = query.scan_cap.max(limit);
        let (mut end, start) = query.bounds();
        let mut page = DeadPage::default();
        let mut reads = ReadBatch::new(500);
        loop {
            // No more than the page still needs when every entry matches.
            let needed = limit - page.jobs.len();
            let count = (cap - page.scanned).min(reads.count()).min(needed.max(10));
            let entries = store.dead_entries_rev(&end, &start, count).await?;
            reads.saw(entries.iter().map(entry_bytes));
            let full = entries.len() == count;
            for entry in entries {
                page.scanned += 1;
                let id = entry.id.clone();
                if page.newest.is_none() {
                    page.newest = Some(id.clone());
                }
                let job = DeadJob::from_entry(entry);
                if query.matches(&job) {
                    page.jobs.push(job);
                }
                end = format!("({id}");
                if page.jobs.len() >= limit {
                    page.next = Some(id);
                    return Ok(page);
                }
            }
            if !full {
                return Ok(page);
            }
            if page.scanned >= cap || reads.spent() {
                page.capped = true;
                page.next = end.strip_prefix('(').map(str::to_owned);
                return Ok(page);
            }
        }
    }

    /// Replays the dead entries with these ids to `ready` (`replay-3`, in
    /// batches of 500). Returns how many were replayed.
    pub async fn dead_replay_entries(&self, queue: &str, dead_ids: &[String]) -> Result<u64> {
        let store = self.store(queue)?;
        let mut n = 0;
        for chunk in dead_ids.chunks(500) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            n += store.replay(&ids).await?;
        }
        Ok(n)
    }

    /// Deletes the dead entries with these ids. Returns how many were
    /// deleted.
    pub async fn dead_discard_entries(&self, queue: &str, dead_ids: &[String]) -> Result<u64> {
        let store = self.store(queue)?;
        let mut n = 0;
        for chunk in dead_ids.chunks(500) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            n += store.discard_dead(&ids).await?;
        }
        Ok(n)
    }

    /// The dead entry ids matching `query` (its time bounds and filters;
    /// its paging ignored), newest first, for an action on a filter's
    /// whole result: at most `max` of them, and none newer than `upto`
    /// (the newest entry a person saw when they confirmed, so letters that
    /// arrived since are left alone). Reads the dead stream within the
    /// bounds, a reply of about a megabyte at a time. The ids, and whether
    /// more matched than `max`.
    pub async fn dead_ids_matching(
        &self,
        queue: &str,
        query: &DeadQuery,
        upto: Option<&str>,
        max: usize,
    ) -> Result<(Vec<String>, bool)> {
        let store = self.store(queue)?;
        let mut q = query.clone();
        q.before = None;
        let (mut end, start) = q.bounds();
        if let Some(upto) = upto
            && end_after(&end, upto)
        {
            end = upto.to_owned();
        }
        let mut ids = Vec::new();
        let mut reads = ReadBatch::new(500);
        loop {
            let count = reads.count();
            let entries = store.dead_entries_rev(&end, &start, count).await?;
            reads.saw(entries.iter().map(entry_bytes));
            let full = entries.len() == count;
            for entry in entries {
                end = format!("({}", entry.id);
                let id = entry.id.clone();
                if q.matches(&DeadJob::from_entry(entry)) {
                    if ids.len() >= max {
                        return Ok((ids, true));
                    }
                    ids.push(id);
                }
            }
            if !full {
                return Ok((ids, false));
            }
        }
    }

    /// The record of job `id` on `queue`, if it keeps one.
    pub async fn record(&self, queue: &str, id: &str) -> Result<Option<JobRecord>> {
        self.store(queue)?.record(id).await
    }

    /// Cancels job `id`: through its record when it keeps one (a running
    /// job's handler is signalled), else taken out of `ready` or
    /// `scheduled` if no worker fetched it ([`Inspector::cancel_plain`]).
    pub async fn cancel_job(&self, queue: &str, id: &str, scan_cap: usize) -> Result<Cancelled> {
        let store = self.store(queue)?;
        if store.record(id).await?.is_some() {
            let now = self.redis_handle()?.server_now_ms().await?;
            return Ok(Cancelled::Tracked(store.cancel(id, now).await?));
        }
        Ok(Cancelled::Plain(
            self.cancel_plain(queue, id, scan_cap).await?,
        ))
    }

    /// Runs job `id` now: a scheduled job becomes due at the server's time
    /// now, a dead one is replayed. Looks at most `scan_cap` entries.
    pub async fn run_now(&self, queue: &str, id: &str, scan_cap: usize) -> Result<RunNow> {
        let store = self.store(queue)?;
        let found = self.find_job(queue, id, scan_cap).await?;
        let Some(job) = found.job else {
            return Ok(RunNow::NotFound);
        };
        match job.state {
            Some(Place::Scheduled) => {
                let Some((member, _)) = self.scheduled_member_of(&store, &job.id, scan_cap).await?
                else {
                    return Ok(RunNow::NotFound);
                };
                let now = self.redis_handle()?.server_now_ms().await?;
                Ok(if store.reschedule(&member, now).await? {
                    RunNow::Due
                } else {
                    RunNow::NotFound
                })
            }
            Some(Place::Dead) => {
                let dead_id = job.entry_id.unwrap_or_default();
                Ok(if store.replay(&[dead_id.as_str()]).await? > 0 {
                    RunNow::Replayed
                } else {
                    RunNow::NotFound
                })
            }
            _ => Ok(RunNow::AlreadyReady),
        }
    }

    /// Job `hint.id` looked for again where `hint` (an earlier find) saw
    /// it: one entry or one due time, no scan. `None` when it has moved
    /// (then [`Inspector::find_job`] looks everywhere).
    pub async fn locate(&self, queue: &str, hint: &QueuedJob) -> Result<Option<QueuedJob>> {
        let store = self.store(queue)?;
        let entry = hint.entry_id.as_deref().unwrap_or("");
        Ok(match hint.state {
            Some(Place::Ready | Place::InFlight) if !entry.is_empty() => {
                match store.ready_entries_by_id(&[entry]).await?.pop().flatten() {
                    Some(e) => {
                        let job = QueuedJob::from_entry(Place::Ready, &e);
                        (job.id == hint.id).then_some(self.placed(&store, job).await?)
                    }
                    None => None,
                }
            }
            Some(Place::Scheduled) => {
                let due = hint.due_at_ms.unwrap_or(0);
                store
                    .scheduled_due_at(due, 100)
                    .await?
                    .iter()
                    .map(|m| crate::inspect::decode_member(m, due))
                    .find(|j| j.id == hint.id)
            }
            Some(Place::Dead) if !entry.is_empty() => store
                .dead_entries(entry, 1)
                .await?
                .pop()
                .filter(|e| e.id == entry)
                .map(|e| QueuedJob::from_dead(&DeadJob::from_entry(e)))
                .filter(|j| j.id == hint.id),
            _ => None,
        })
    }

    /// Jobs in flight on `queue`, oldest delivery first, at most `count`
    /// (`XPENDING` and one `XRANGE` each, in one pipeline).
    pub async fn running(&self, queue: &str, count: usize) -> Result<Vec<RunningJob>> {
        let store = self.store(queue)?;
        let pending = store.pending_entries("-", count.max(1)).await?;
        let ids: Vec<&str> = pending.iter().map(|p| p.id.as_str()).collect();
        // The entries are read for their id and type only: a few at a
        // time when they are wide, so no pipeline's replies add up to
        // hundreds of megabytes.
        let mut entries = Vec::with_capacity(ids.len());
        let mut reads = ReadBatch::new(ids.len());
        while entries.len() < ids.len() {
            let from = entries.len();
            let to = (from + reads.count()).min(ids.len());
            let got = store.ready_entries_by_id(&ids[from..to]).await?;
            reads.saw(got.iter().flatten().map(entry_bytes));
            entries.extend(got);
        }
        Ok(pending
            .iter()
            .zip(entries)
            .map(|(p, e)| {
                let job = e.map(|e| QueuedJob::from_entry(Place::InFlight, &e));
                RunningJob {
                    queue: queue.to_owned(),
                    id: job.as_ref().map_or_else(|| p.id.clone(), |j| j.id.clone()),
                    job_type: job.map_or_else(|| "(entry deleted)".into(), |j| j.job_type),
                    entry_id: p.id.clone(),
                    consumer: p.consumer.clone(),
                    idle_ms: p.idle_ms,
                    deliveries: p.deliveries,
                }
            })
            .collect())
    }

    /// Writes `queue`'s counters as the history sample of the current
    /// interval of `step_ms` (server clock), unless another process wrote
    /// it first (see [`jobstream_core::history`]).
    pub async fn record_sample(&self, queue: &str, step_ms: u64) -> Result<bool> {
        let now = self.redis_handle()?.server_now_ms().await?;
        Ok(self.store(queue)?.record_sample(now, step_ms).await? == Sampled::Written)
    }

    /// `queue`'s history samples, oldest first (up to an hour's worth).
    pub async fn samples(&self, queue: &str) -> Result<Vec<Sample>> {
        self.store(queue)?.samples(HISTORY_POINTS).await
    }

    /// `queue`'s held keys (`hold-4`, after an upstream 429): hold field
    /// (`key:K` or `type:T`) and until when (unix ms), soonest first;
    /// expired ones included until a script meets them.
    pub async fn holds(&self, queue: &str) -> Result<Vec<(String, u64)>> {
        let mut holds: Vec<(String, u64)> = self.store(queue)?.holds().await?.into_iter().collect();
        holds.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        Ok(holds)
    }

    /// Secret `name`: 32 random bytes shared by every process on this
    /// prefix (`PREFIX:secret:NAME`), created on first use. The dashboard
    /// signs its login cookies with `dashboard`.
    pub async fn shared_secret(&self, name: &str) -> Result<Vec<u8>> {
        jobstream_core::secret::shared_secret(self.redis_handle()?, self.prefix(), name).await
    }

    /// The server's clock now, unix ms.
    pub async fn server_now_ms(&self) -> Result<u64> {
        self.redis_handle()?.server_now_ms().await
    }
}

/// True when `XREVRANGE` end bound `end` (`+`, `(id`, `id` or an
/// incomplete id `ms`) may reach past entry id `upto`.
fn end_after(end: &str, upto: &str) -> bool {
    let parse = |id: &str| -> Option<(u64, u64)> {
        let id = id.strip_prefix('(').unwrap_or(id);
        match id.split_once('-') {
            Some((ms, seq)) => Some((ms.parse().ok()?, seq.parse().ok()?)),
            None => Some((id.parse().ok()?, u64::MAX)),
        }
    };
    match (end, parse(upto)) {
        (_, None) => false,
        ("+", Some(_)) => true,
        (e, Some(u)) => parse(e).is_none_or(|e| e > u),
    }
}

#[cfg(test)]
mod tests {
    use super::end_after;

    #[test]
    fn the_lower_end_bound_wins() {
        assert!(end_after("+", "5-0"));
        assert!(end_after("6", "5-0"));
        assert!(end_after("5", "5-0"), "an incomplete id reaches 5-max");
        assert!(!end_after("4", "5-0"));
        assert!(!end_after("(5-0", "5-0"));
        assert!(end_after("(6-0", "5-0"));
        assert!(!end_after("5-0", "5-0"));
        assert!(!end_after("+", "junk"), "an unreadable upto is ignored");
    }
}
