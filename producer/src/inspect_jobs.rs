//! Job-by-job views of a queue for on-call tools: list the jobs in one
//! state, find one job wherever it is, cancel a plain job before a worker
//! fetched it, purge a state. Payloads are never returned here.

use jobstream_core::envelope::{entry_id_ms, field, msgpack_to_fields};
use jobstream_core::store_browse::{PURGE_BATCH, PurgeOf, WithdrawFrom, Withdrawn};
use jobstream_core::{QueueStore, Result, StreamEntry};

use crate::read_batch::{ReadBatch, entry_bytes};
use serde::Serialize;

use super::{DeadJob, Inspector};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Place {
    /// In `ready`, not yet delivered to a worker.
    Ready,
    /// In `ready`, delivered to a worker and not yet settled.
    InFlight,
    /// In `scheduled`, waiting for its due time.
    Scheduled,
    /// In the dead-letter stream.
    Dead,
}

impl Place {
    /// `ready`, `in-flight`, `scheduled` or `dead`.
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Ready => "ready",
            Place::InFlight => "in-flight",
            Place::Scheduled => "scheduled",
            Place::Dead => "dead",
        }
    }
}

/// One job as it sits in a queue: never its payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueuedJob {
    /// Where it is (`None` only while being built).
    pub state: Option<Place>,
    /// Job id (stable across retries).
    pub id: String,
    /// The `ready` entry id (ready, in flight) or the dead entry id (dead).
    pub entry_id: Option<String>,
    /// Job type.
    pub job_type: String,
    /// Attempt this is (1 for the first).
    pub attempt: u64,
    /// First enqueue, unix ms (0 when unknown).
    pub enqueued_at_ms: u64,
    /// Scheduled: when it is due, unix ms.
    pub due_at_ms: Option<u64>,
    /// In flight: the consumer (worker) holding it.
    pub consumer: Option<String>,
    /// In flight: ms since it was delivered or its lease was extended.
    pub idle_ms: Option<u64>,
    /// In flight: times delivered.
    pub deliveries: Option<u64>,
    /// Dead: why (`exhausted`, `permanent`, ...).
    pub reason: Option<String>,
    /// Dead: class of the final error; else of the last failed attempt.
    pub error_class: Option<String>,
    /// Dead: the final error; else the last failed attempt's.
    pub error: Option<String>,
    /// Dead: when it died, unix ms.
    pub failed_at_ms: Option<u64>,
    /// Payload size in bytes (the payload itself is never shown here).
    pub payload_bytes: usize,
    /// Every other field, as text (lossy for binary), payload left out.
    pub fields: Vec<(String, String)>,
    /// The payload's bytes (MessagePack, as written). Left out of JSON: it
    /// may hold personal data; a tool shows it only when asked.
    #[serde(skip)]
    pub payload: Vec<u8>,
}

impl QueuedJob {
    fn from_fields(place: Place, fields: &[(Vec<u8>, Vec<u8>)]) -> Self {
        let mut job = QueuedJob {
            state: Some(place),
            attempt: 1,
            ..Default::default()
        };
        for (k, v) in fields {
            if k == field::PAYLOAD.as_bytes() {
                job.payload_bytes = v.len();
                job.payload.clone_from(v);
                continue;
            }
            let text = String::from_utf8_lossy(v).into_owned();
            match std::str::from_utf8(k).unwrap_or("") {
                field::ID => job.id.clone_from(&text),
                field::TYPE => job.job_type.clone_from(&text),
                field::ATTEMPT => job.attempt = text.parse().unwrap_or(1).max(1),
                field::ENQUEUED_AT => job.enqueued_at_ms = text.parse().unwrap_or(0),
                field::LAST_ERROR_CLASS => job.error_class = Some(text.clone()),
                field::LAST_ERROR => job.error = Some(text.clone()),
                _ => {}
            }
            job.fields
                .push((String::from_utf8_lossy(k).into_owned(), text));
        }
        job
    }

    pub(crate) fn from_entry(place: Place, entry: &StreamEntry) -> Self {
        let mut job = Self::from_fields(place, &entry.fields);
        if job.id.is_empty() {
            job.id.clone_from(&entry.id);
        }
        if job.enqueued_at_ms == 0 {
            job.enqueued_at_ms = entry_id_ms(&entry.id).unwrap_or(0);
        }
        job.entry_id = Some(entry.id.clone());
        job
    }

    pub(crate) fn from_dead(d: &DeadJob) -> Self {
        QueuedJob {
            state: Some(Place::Dead),
            id: d.job_id.clone(),
            entry_id: Some(d.dead_id.clone()),
            job_type: d.job_type.clone(),
            attempt: d.attempt,
            enqueued_at_ms: d.enqueued_at,
            reason: Some(d.reason.clone()),
            error_class: Some(d.error_class.clone()),
            error: Some(d.error.clone()),
            failed_at_ms: Some(d.failed_at),
            deliveries: Some(d.deliveries),
            payload_bytes: d.payload_bytes,
            fields: d.fields.clone(),
            payload: d.payload.clone(),
            ..Default::default()
        }
    }

    /// The value of field `name`, as text, if the job has it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// True when the job keeps a record, belongs to a batch or to a group:
    /// taking it out by hand would leave its record or batch waiting, or
    /// its group's place held for good.
    fn is_tracked(&self) -> bool {
        self.field(field::RECORD_MS).is_some()
            || self.field(field::BATCH).is_some()
            || self.field(field::GROUP).is_some()
    }
}

/// Which jobs [`Inspector::jobs`] lists.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct JobsFilter {
    /// Only this job type.
    pub job_type: Option<String>,
    /// At most this many (0 = no limit).
    pub limit: usize,
    /// Stop after reading this many entries (0 = no cap).
    pub scan_cap: usize,
    /// Start after this cursor: a [`JobsPage::next`] from an earlier call.
    pub after: Option<String>,
}

impl JobsFilter {
    /// Sets `job_type`.
    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.job_type = Some(job_type.into());
        self
    }
    /// Sets `limit` (0 = no limit).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Sets `scan_cap` (0 = no cap).
    pub fn scan_cap(mut self, cap: usize) -> Self {
        self.scan_cap = cap;
        self
    }
    /// Sets `after`: continue from an earlier page's [`JobsPage::next`].
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }
    fn wants(&self, job: &QueuedJob) -> bool {
        self.job_type.as_ref().is_none_or(|t| *t == job.job_type)
    }
}

/// A list of jobs and how it was read.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct JobsPage {
    /// The jobs, oldest (or earliest due) first.
    pub jobs: Vec<QueuedJob>,
    /// Entries read to find them.
    pub scanned: usize,
    /// True when the read stopped at the scan cap with entries left.
    pub capped: bool,
    /// Where the next page starts ([`JobsFilter::after`]); `None` when
    /// this page read to the end.
    pub next: Option<String>,
}

/// Where [`Inspector::find_job`] found a job, if anywhere.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct FoundJob {
    /// The job, or `None`.
    pub job: Option<QueuedJob>,
    /// Entries and members read.
    pub scanned: usize,
    /// True when a scan stopped at the cap: the job may still be there.
    pub capped: bool,
}

impl QueuedJob {
    /// Where a job was seen, for [`Inspector::locate`]: its id, its state,
    /// and its entry id (ready, in flight, dead) or due time (scheduled).
    pub fn seen_at(id: &str, state: Place, entry_id: Option<&str>, due_at_ms: Option<u64>) -> Self {
        QueuedJob {
            state: Some(state),
            id: id.to_owned(),
            entry_id: entry_id.map(str::to_owned),
            due_at_ms,
            ..Default::default()
        }
    }
}

impl From<QueuedJob> for FoundJob {
    /// A job found without a scan.
    fn from(job: QueuedJob) -> Self {
        FoundJob {
            job: Some(job),
            scanned: 0,
            capped: false,
        }
    }
}

/// What [`Inspector::cancel_plain`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlainCancel {
    /// Taken out of `ready` before any worker fetched it.
    Ready,
    /// Taken out of `scheduled`.
    Scheduled,
    /// A worker has fetched it (running, or about to): not cancelled.
    InFlight,
    /// It keeps a record or is a batch member: use the record's cancel.
    Tracked,
    /// The job belongs to a group (and keeps no record): not cancelled, as
    /// taking it out by hand would hold its group's place for good.
    Grouped,
    /// Dead already: nothing to cancel.
    Dead,
    /// Not in the queue (or not within the scan cap, see `capped`).
    NotFound {
        /// True when a scan stopped at the cap.
        capped: bool,
    },
}

/// What [`Inspector::purge`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Purged {
    /// Jobs removed.
    pub removed: u64,
    /// Jobs left because they keep a record, belong to a batch or a group,
    /// or hold a uniqueness key (cancel those with a record or a key one by
    /// one with `job cancel`).
    pub skipped: u64,
}

const PAGE: usize = 500;

/// Default cap on entries read when looking for one job.
pub const DEFAULT_SCAN_CAP: usize = 100_000;

pub(crate) fn decode_member(member: &[u8], due: u64) -> QueuedJob {
    let mut job = match msgpack_to_fields(member) {
        Some(fields) => QueuedJob::from_fields(Place::Scheduled, &fields),
        None => QueuedJob {
            state: Some(Place::Scheduled),
            attempt: 1,
            job_type: "(undecodable member)".into(),
            ..Default::default()
        },
    };
    job.due_at_ms = Some(due);
    job
}

/// Where a UUIDv7's `ready` entry is looked for first: from a little
/// before its time (the producer's clock may run ahead of Redis's) to a
/// while after (or behind).
const UUID_BEFORE_MS: u64 = 5_000;
const UUID_AFTER_MS: u64 = 120_000;
/// Where the forward read starts: this much before the id's time.
const UUID_SKEW_MS: u64 = 50;

/// The unix ms of a UUIDv7 id, if `id` is one.
fn uuid_v7_ms(id: &str) -> Option<u64> {
    let u = uuid::Uuid::parse_str(id).ok()?;
    if u.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = u.get_timestamp()?.to_unix();
    Some(secs * 1000 + u64::from(nanos) / 1_000_000)
}

/// True when stream entry id `a` sorts before `b` (an unreadable one
/// sorts first).
fn entry_id_lt(a: &str, b: &str) -> bool {
    let parse = |id: &str| -> (u64, u64) {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
    };
    parse(a) < parse(b)
}

/// `ms-seq`, both decimal: a stream entry id.
fn is_entry_id(id: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    id.split_once('-')
        .is_some_and(|(ms, seq)| digits(ms) && digits(seq))
}

fn matches_id(job: &QueuedJob, id: &str) -> bool {
    job.id == id || job.entry_id.as_deref() == Some(id)
}

impl Inspector {
    async fn pending_of(
        &self,
        store: &QueueStore,
        entry_id: &str,
    ) -> Result<Option<(String, u64, u64)>> {
        let first = store.pending_entries(entry_id, 1).await?;
        Ok(first
            .into_iter()
            .find(|p| p.id == entry_id)
            .map(|p| (p.consumer, p.idle_ms, p.deliveries)))
    }

    /// A `ready` job as it is: undelivered, or in flight with its holder.
    pub(crate) async fn placed(&self, store: &QueueStore, job: QueuedJob) -> Result<QueuedJob> {
        let entry_id = job.entry_id.clone().unwrap_or_default();
        Ok(match self.pending_of(store, &entry_id).await? {
            Some((c, idle, n)) => Self::in_flight(job, c, idle, n),
            None => job,
        })
    }

    fn in_flight(mut job: QueuedJob, consumer: String, idle: u64, deliveries: u64) -> QueuedJob {
        job.state = Some(Place::InFlight);
        job.consumer = Some(consumer);
        job.idle_ms = Some(idle);
        job.deliveries = Some(deliveries);
        job
    }

    /// The jobs of `queue` in `state`, oldest (earliest due) first, a page
    /// at a time: at most `filter.limit` jobs, reading at most
    /// `filter.scan_cap` entries (and, with a cap, at most 64 MiB), from
    /// `filter.after` (an earlier page's [`JobsPage::next`]). Payloads are
    /// in [`QueuedJob::payload`], never in its JSON.
    pub async fn jobs(&self, queue: &str, state: Place, filter: &JobsFilter) -> Result<JobsPage> {
        let store = self.store(queue)?;
        let mut page = JobsPage::default();
        let mut cursor = filter.after.clone();
        if state == Place::Ready {
            // Entries up to the last delivered one are in flight, not
            // ready, whatever the cursor says.
            if let Some(last) = store.last_delivered_id().await?
                && cursor.as_deref().is_none_or(|c| entry_id_lt(c, &last))
            {
                cursor = Some(last);
            }
        }
        let mut reads = ReadBatch::new(PAGE);
        loop {
            let wanted = match filter.limit {
                0 => PAGE,
                n => PAGE
                    .min(n.saturating_sub(page.jobs.len()).max(1) * 4)
                    .max(50),
            };
            let count = wanted.min(reads.count());
            let (jobs, next) = self
                .jobs_batch(&store, state, cursor.as_deref(), count, &mut reads)
                .await?;
            let more = next.is_some();
            for (job, at) in jobs {
                page.scanned += 1;
                if filter.wants(&job) {
                    page.jobs.push(job);
                }
                if filter.limit > 0 && page.jobs.len() >= filter.limit {
                    page.next = Some(at);
                    return Ok(page);
                }
            }
            cursor = next;
            if !more {
                return Ok(page);
            }
            if filter.scan_cap > 0 && (page.scanned >= filter.scan_cap || reads.spent()) {
                page.capped = true;
                page.next = cursor;
                return Ok(page);
            }
        }
    }

    /// One read of at most `count` jobs of `state` after `cursor`: each
    /// job with the cursor that continues after it, and the cursor after
    /// the batch when it may not be the last. The entries' sizes go to
    /// `reads`.
    async fn jobs_batch(
        &self,
        store: &QueueStore,
        state: Place,
        cursor: Option<&str>,
        count: usize,
        reads: &mut ReadBatch,
    ) -> Result<(Vec<(QueuedJob, String)>, Option<String>)> {
        let after = |c: Option<&str>| c.map_or_else(|| "-".to_owned(), |c| format!("({c}"));
        let mut out = Vec::new();
        match state {
            Place::Ready | Place::Dead => {
                let entries = if state == Place::Ready {
                    store.ready_entries(&after(cursor), count).await?
                } else {
                    store.dead_entries(&after(cursor), count).await?
                };
                reads.saw(entries.iter().map(entry_bytes));
                let full = entries.len() == count;
                for e in &entries {
                    let job = if state == Place::Ready {
                        QueuedJob::from_entry(Place::Ready, e)
                    } else {
                        QueuedJob::from_dead(&DeadJob::from_entry(e.clone()))
                    };
                    out.push((job, e.id.clone()));
                }
                let next = entries.last().filter(|_| full).map(|e| e.id.clone());
                Ok((out, next))
            }
            Place::InFlight => {
                let pending = store.pending_entries(&after(cursor), count).await?;
                let ids: Vec<&str> = pending.iter().map(|p| p.id.as_str()).collect();
                let entries = store.ready_entries_by_id(&ids).await?;
                reads.saw(entries.iter().flatten().map(entry_bytes));
                for (p, e) in pending.iter().zip(entries) {
                    let job = match e {
                        Some(e) => QueuedJob::from_entry(Place::InFlight, &e),
                        None => QueuedJob {
                            id: p.id.clone(),
                            entry_id: Some(p.id.clone()),
                            job_type: "(entry deleted)".into(),
                            attempt: 1,
                            enqueued_at_ms: entry_id_ms(&p.id).unwrap_or(0),
                            ..Default::default()
                        },
                    };
                    let job = Self::in_flight(job, p.consumer.clone(), p.idle_ms, p.deliveries);
                    out.push((job, p.id.clone()));
                }
                let next = pending
                    .last()
                    .filter(|_| pending.len() == count)
                    .map(|p| p.id.clone());
                Ok((out, next))
            }
            Place::Scheduled => {
                // The cursor is a rank: members are ordered by due time,
                // and one promoted or added meanwhile shifts the page by
                // one, which a person paging through does not mind.
                let offset: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
                let members = store.scheduled_members(offset, count).await?;
                reads.saw(members.iter().map(|(m, _)| m.len()));
                let n = members.len();
                for (i, (member, due)) in members.iter().enumerate() {
                    let at = offset.saturating_add(i + 1);
                    out.push((decode_member(member, *due), at.to_string()));
                }
                let next = offset.saturating_add(n);
                Ok((out, (n == count).then(|| next.to_string())))
            }
        }
    }

    /// Finds job `id` (a job id, or a `ready`/dead entry id) in `queue`:
    /// in `ready` (undelivered or in flight), `scheduled` or dead. Reads
    /// at most `scan_cap` entries of each (0 = no cap), and with a cap at
    /// most 64 MiB of each.
    pub async fn find_job(&self, queue: &str, id: &str, scan_cap: usize) -> Result<FoundJob> {
        let mut found = FoundJob::default();
        if id.is_empty() {
            // No job has an empty id that could be told from another.
            return Ok(found);
        }
        let store = self.store(queue)?;
        // An entry id: one lookup.
        if is_entry_id(id)
            && let Some(Some(e)) = store.ready_entries_by_id(&[id]).await?.pop()
        {
            found.job = Some(
                self.placed(&store, QueuedJob::from_entry(Place::Ready, &e))
                    .await?,
            );
            return Ok(found);
        }
        // A UUIDv7 (what the Rust producer writes) carries its enqueue
        // time: a job sent to ready at once has an entry id within
        // moments of it.
        if let Some(ms) = uuid_v7_ms(id) {
            let (entry, read) = self.find_near(&store, id, ms, scan_cap).await?;
            found.scanned += read;
            if let Some(e) = entry {
                found.job = Some(
                    self.placed(&store, QueuedJob::from_entry(Place::Ready, &e))
                        .await?,
                );
                return Ok(found);
            }
        }
        let over = |n: usize, reads: &ReadBatch| scan_cap > 0 && (n >= scan_cap || reads.spent());
        // ready, in pages.
        let mut start = "-".to_owned();
        let (mut scanned, mut reads) = (0, ReadBatch::new(1000));
        loop {
            let count = reads.count();
            let entries = store.ready_entries(&start, count).await?;
            reads.saw(entries.iter().map(entry_bytes));
            let more = entries.len() == count;
            scanned += entries.len();
            if let Some(e) = entries
                .iter()
                .find(|e| matches_id(&QueuedJob::from_entry(Place::Ready, e), id))
            {
                found.scanned += scanned;
                found.job = Some(
                    self.placed(&store, QueuedJob::from_entry(Place::Ready, e))
                        .await?,
                );
                return Ok(found);
            }
            let Some(last) = entries.last() else { break };
            start = format!("({}", last.id);
            if !more {
                break;
            }
            if over(scanned, &reads) {
                found.capped = true;
                break;
            }
        }
        found.scanned += scanned;
        // scheduled.
        let (mut offset, mut scanned, mut reads) = (0usize, 0, ReadBatch::new(1000));
        loop {
            let count = reads.count();
            let members = store.scheduled_members(offset, count).await?;
            reads.saw(members.iter().map(|(m, _)| m.len()));
            let more = members.len() == count;
            offset = offset.saturating_add(members.len());
            scanned += members.len();
            for (member, due) in &members {
                let job = decode_member(member, *due);
                if job.id == id {
                    found.scanned += scanned;
                    found.job = Some(job);
                    return Ok(found);
                }
            }
            if !more {
                break;
            }
            if over(scanned, &reads) {
                found.capped = true;
                break;
            }
        }
        found.scanned += scanned;
        // dead, newest first (a job just dead-lettered is found at once).
        let (job, scanned, capped) = self.find_dead(&store, id, scan_cap).await?;
        found.job = job;
        found.scanned += scanned;
        found.capped |= capped;
        Ok(found)
    }

    /// The `ready` entry of UUIDv7 job `id` made at `ms` (its producer's
    /// clock), looked for near that time: forward from a moment before
    /// it (a producer's clock a little behind Redis's, or the usual
    /// enqueue delay, puts the entry just after), then backwards from
    /// there (a producer's clock ahead of Redis's puts it before). Each
    /// direction reads at most `scan_cap` entries (at least 10,000): a
    /// burst of enqueues before the job never hides it, since the
    /// nearest entries are read first. The entry, and the entries read.
    async fn find_near(
        &self,
        store: &QueueStore,
        id: &str,
        ms: u64,
        scan_cap: usize,
    ) -> Result<(Option<StreamEntry>, usize)> {
        let budget = scan_cap.max(10_000);
        let pivot = ms.saturating_sub(UUID_SKEW_MS);
        // Forward from `pivot`; backwards from the last ms before it (an
        // incomplete id as the end means its last sequence number).
        let mut bounds = vec![(pivot.to_string(), (ms + UUID_AFTER_MS).to_string(), false)];
        if pivot > 0 {
            let to = ms.saturating_sub(UUID_BEFORE_MS).to_string();
            bounds.push(((pivot - 1).to_string(), to, true));
        }
        let mut read = 0;
        for (mut from, to, backwards) in bounds {
            let (mut n, mut reads) = (0, ReadBatch::new(1000));
            while n < budget && !reads.spent() {
                let count = reads.count();
                let entries = if backwards {
                    store.ready_range_rev(&from, &to, count).await?
                } else {
                    store.ready_range(&from, &to, count).await?
                };
                reads.saw(entries.iter().map(entry_bytes));
                n += entries.len();
                let full = entries.len() == count;
                let next = entries.last().map(|e| format!("({}", e.id));
                if let Some(e) = entries
                    .into_iter()
                    .find(|e| QueuedJob::from_entry(Place::Ready, e).id == id)
                {
                    return Ok((Some(e), read + n));
                }
                match next {
                    Some(next) if full => from = next,
                    _ => break,
                }
            }
            read += n;
        }
        Ok((None, read))
    }

    /// Job `id` (a job id or a dead entry id) among the dead letters,
    /// newest first, reading at most `scan_cap` entries (0 = no cap; with
    /// a cap, at most 64 MiB): the job, the entries read, whether the cap
    /// stopped the read.
    async fn find_dead(
        &self,
        store: &QueueStore,
        id: &str,
        scan_cap: usize,
    ) -> Result<(Option<QueuedJob>, usize, bool)> {
        let mut end = "+".to_owned();
        let (mut scanned, mut reads) = (0, ReadBatch::new(1000));
        loop {
            let count = reads.count();
            let entries = store.dead_entries_rev(&end, "-", count).await?;
            reads.saw(entries.iter().map(entry_bytes));
            let more = entries.len() == count;
            scanned += entries.len();
            if let Some(last) = entries.last() {
                end = format!("({}", last.id);
            }
            for e in entries {
                let dead = DeadJob::from_entry(e);
                if !id.is_empty() && (dead.job_id == id || dead.dead_id == id) {
                    return Ok((Some(QueuedJob::from_dead(&dead)), scanned, false));
                }
            }
            if !more {
                return Ok((None, scanned, false));
            }
            if scan_cap > 0 && (scanned >= scan_cap || reads.spent()) {
                return Ok((None, scanned, true));
            }
        }
    }

    /// The exact `scheduled` member of job `id`, if it is scheduled.
    pub(crate) async fn scheduled_member_of(
        &self,
        store: &QueueStore,
        id: &str,
        cap: usize,
    ) -> Result<Option<(Vec<u8>, QueuedJob)>> {
        let (mut offset, mut reads) = (0usize, ReadBatch::new(1000));
        loop {
            let count = reads.count();
            let members = store.scheduled_members(offset, count).await?;
            reads.saw(members.iter().map(|(m, _)| m.len()));
            let more = members.len() == count;
            offset = offset.saturating_add(members.len());
            for (member, due) in members {
                let job = decode_member(&member, due);
                if job.id == id {
                    return Ok(Some((member, job)));
                }
            }
            if !more || (cap > 0 && (offset >= cap || reads.spent())) {
                return Ok(None);
            }
        }
    }

    /// Cancels job `id` of `queue` that keeps no record: removes it from
    /// `scheduled`, or from `ready` while no worker has fetched it, in one
    /// script (`withdraw-4`, counted in `cancelled` or
    /// `cancelled_scheduled`). A fetched job is left alone.
    pub async fn cancel_plain(
        &self,
        queue: &str,
        id: &str,
        scan_cap: usize,
    ) -> Result<PlainCancel> {
        let store = self.store(queue)?;
        let found = self.find_job(queue, id, scan_cap).await?;
        let Some(job) = found.job else {
            return Ok(PlainCancel::NotFound {
                capped: found.capped,
            });
        };
        if job.field(field::GROUP).is_some() && job.field(field::RECORD_MS).is_none() {
            return Ok(PlainCancel::Grouped);
        }
        if job.is_tracked() {
            return Ok(PlainCancel::Tracked);
        }
        let unique = job.field(field::UNIQUE_KEY).map(str::to_owned);
        let outcome = match job.state {
            Some(Place::Dead) => return Ok(PlainCancel::Dead),
            Some(Place::InFlight) => return Ok(PlainCancel::InFlight),
            Some(Place::Scheduled) => {
                let Some((member, _)) = self.scheduled_member_of(&store, &job.id, scan_cap).await?
                else {
                    return Ok(PlainCancel::NotFound { capped: false });
                };
                store
                    .withdraw(WithdrawFrom::Scheduled(&member), &job.id, unique.as_deref())
                    .await?
            }
            _ => {
                let entry = job.entry_id.clone().unwrap_or_default();
                store
                    .withdraw(WithdrawFrom::Ready(&entry), &job.id, unique.as_deref())
                    .await?
            }
        };
        Ok(match outcome {
            Withdrawn::Ready => PlainCancel::Ready,
            Withdrawn::Scheduled => PlainCancel::Scheduled,
            Withdrawn::Fetched => PlainCancel::InFlight,
            Withdrawn::Tracked => PlainCancel::Tracked,
            _ => PlainCancel::NotFound { capped: false },
        })
    }

    /// Removes every job of `queue` in `state` (`Ready`: undelivered
    /// entries only; `InFlight` is refused), in pages, with `purge-4`:
    /// counted so the books balance. Jobs that keep a record, belong to a
    /// batch or a group, or hold a uniqueness key are skipped.
    pub async fn purge(&self, queue: &str, state: Place) -> Result<Purged> {
        let store = self.store(queue)?;
        let mut out = Purged::default();
        match state {
            Place::InFlight => Err(jobstream_core::Error::Config(
                "jobs in flight are held by workers and are never purged".into(),
            )),
            Place::Ready | Place::Scheduled => {
                let of = if state == Place::Ready {
                    PurgeOf::Ready
                } else {
                    PurgeOf::Scheduled
                };
                // Ready: from the last-delivered id on; scheduled: from
                // the rank after the members skipped so far.
                let mut start = match store.last_delivered_id().await? {
                    Some(last) => format!("({last}"),
                    None => "-".to_owned(),
                };
                loop {
                    let (ids, listed): (Vec<Vec<u8>>, usize) = if of == PurgeOf::Ready {
                        let entries = store.ready_entries(&start, PURGE_BATCH).await?;
                        if let Some(last) = entries.last() {
                            start = format!("({}", last.id);
                        }
                        let n = entries.len();
                        let mut ids = Vec::new();
                        for e in &entries {
                            let job = QueuedJob::from_entry(Place::Ready, e);
                            if job.is_tracked() || job.field(field::UNIQUE_KEY).is_some() {
                                out.skipped += 1;
                            } else {
                                ids.push(e.id.clone().into_bytes());
                            }
                        }
                        (ids, n)
                    } else {
                        let members = store
                            .scheduled_members(out.skipped as usize, PURGE_BATCH)
                            .await?;
                        let n = members.len();
                        let mut ids = Vec::new();
                        for (m, due) in members {
                            let job = decode_member(&m, due);
                            if job.is_tracked() || job.field(field::UNIQUE_KEY).is_some() {
                                out.skipped += 1;
                            } else {
                                ids.push(m);
                            }
                        }
                        (ids, n)
                    };
                    let refs: Vec<&[u8]> = ids.iter().map(Vec::as_slice).collect();
                    out.removed += store.purge(of, &refs).await?;
                    if listed < PURGE_BATCH {
                        return Ok(out);
                    }
                }
            }
            Place::Dead => {
                let mut start = "-".to_owned();
                loop {
                    let entries = store.dead_entries(&start, PURGE_BATCH).await?;
                    let Some(last) = entries.last() else {
                        return Ok(out);
                    };
                    start = format!("({}", last.id);
                    let ids: Vec<&[u8]> = entries.iter().map(|e| e.id.as_bytes()).collect();
                    out.removed += store.purge(PurgeOf::Dead, &ids).await?;
                    if entries.len() < PURGE_BATCH {
                        return Ok(out);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ms_dash_seq_is_an_entry_id() {
        assert!(is_entry_id("1700000000000-0"));
        for not in [
            "01234567-ae18-7def-ba7a-52ff14398bd6",
            "17-",
            "-1",
            "abc",
            "1-2-3",
        ] {
            assert!(!is_entry_id(not), "{not}");
        }
    }
}
