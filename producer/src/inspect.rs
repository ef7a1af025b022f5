//! Queue inspection and dead-letter tools: stats, books, server safety,
//! list, replay, discard. Away from the hot path; used by the `jobstream`
//! CLI and by operators' own tooling.

pub use crate::inspect_console::{Cancelled, DeadPage, DeadQuery, RunNow, RunningJob};
pub use crate::inspect_cron::CronListing;
pub use crate::inspect_groups::GroupsView;
pub use jobstream_core::cron::CronInfo;
use jobstream_core::envelope::entry_id_ms;
pub use jobstream_core::groups::GroupInfo;
pub use jobstream_core::workers::{STALE_AFTER_MS, WorkerInfo};
pub use jobstream_core::{Books, BooksStatus, Fsync, QueueStats, ServerSafety};
use jobstream_core::{QueueKeys, QueueName, QueueStore, Redis, Result, StreamEntry};
use serde::Serialize;

#[path = "inspect_jobs.rs"]
mod jobs;
pub(crate) use jobs::decode_member;
pub use jobs::{
    DEFAULT_SCAN_CAP, FoundJob, JobsFilter, JobsPage, Place, PlainCancel, Purged, QueuedJob,
};

/// Reads and repairs queues.
#[derive(Debug, Clone)]
pub struct Inspector {
    /// `None` for the inspector of a recording producer.
    redis: Option<Redis>,
    prefix: String,
    group: String,
}

/// A dead-lettered job with its failure context.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeadJob {
    /// Entry id in the dead stream (what replay and discard take).
    pub dead_id: String,
    /// Job id (stable across retries and replays); for a packed job, the
    /// `id` inside `raw`.
    pub job_id: String,
    /// Job type.
    pub job_type: String,
    /// Why it is dead: `exhausted`, `permanent`, `abandoned`, `malformed`,
    /// `unknown_type`, `expired`, `shed` (by the queue's backpressure
    /// limits).
    pub reason: String,
    /// Class of the final error (`error`, `panic`, `timeout`, ...).
    pub error_class: String,
    /// Final error message (truncated; never the payload).
    pub error: String,
    /// Handler attempts made.
    pub attempt: u64,
    /// Deliveries of the final attempt.
    pub deliveries: u64,
    /// First enqueue, unix ms.
    pub enqueued_at: u64,
    /// When it died, unix ms.
    pub failed_at: u64,
    /// The worker (consumer) that dead-lettered it.
    pub worker: String,
    /// Payload size in bytes.
    pub payload_bytes: usize,
    /// Every field other than the payload, as text (lossy for binary).
    pub fields: Vec<(String, String)>,
    /// The payload, MessagePack bytes (left out of JSON output: it may hold
    /// personal data).
    #[serde(skip)]
    pub payload: Vec<u8>,
    /// For a dead entry whose job is packed whole in `raw` (too wide, or
    /// carrying dead-entry names): its fields, unpacked, other than the
    /// payload, as text (lossy for binary). Empty otherwise, and for a
    /// `raw` that holds an undecodable `scheduled` member.
    pub raw_fields: Vec<(String, String)>,
    /// The `raw` field's bytes, in lowercase hex (empty without one): the
    /// exact bytes of an undecodable `scheduled` member or of a packed
    /// job, recoverable from `jobstream dlq list --json` whatever they hold.
    pub raw_hex: String,
}

impl DeadJob {
    pub(crate) fn from_entry(entry: StreamEntry) -> Self {
        let mut job = DeadJob {
            dead_id: entry.id.clone(),
            ..Default::default()
        };
        for (k, v) in entry.fields {
            let text = String::from_utf8_lossy(&v).into_owned();
            let num = || text.parse::<u64>().unwrap_or(0);
            match k.as_slice() {
                b"raw" => {
                    job.unpack_raw(&v);
                    job.fields.push((
                        "raw".to_owned(),
                        format!("<{} bytes: see raw_hex>", v.len()),
                    ));
                    job.raw_hex = jobstream_core::hex::encode(&v);
                    continue;
                }
                b"payload" => {
                    job.payload_bytes = v.len();
                    job.payload = v;
                    continue;
                }
                b"id" => job.job_id = text.clone(),
                b"type" => job.job_type = text.clone(),
                b"reason" => job.reason = text.clone(),
                b"error_class" => job.error_class = text.clone(),
                b"error" => job.error = text.clone(),
                b"attempt" => job.attempt = num(),
                b"deliveries" => job.deliveries = num(),
                b"enqueued_at" => job.enqueued_at = num(),
                b"failed_at" => job.failed_at = num(),
                b"worker" => job.worker = text.clone(),
                _ => {}
            }
            job.fields
                .push((String::from_utf8_lossy(&k).into_owned(), text));
        }
        if job.attempt == 0 {
            job.attempt = 1;
        }
        if job.job_type.is_empty()
            && let Some((_, t)) = job.raw_fields.iter().find(|(k, _)| k == "type")
        {
            job.job_type = t.clone();
        }
        // A packed job's id is in it: found and shown by it like any other.
        if job.job_id.is_empty()
            && let Some((_, id)) = job.raw_fields.iter().find(|(k, _)| k == "id")
        {
            job.job_id = id.clone();
        }
        if job.enqueued_at == 0 {
            job.enqueued_at = entry_id_ms(&job.job_id).unwrap_or(0);
        }
        job
    }
}

impl DeadJob {
    /// Fills `raw_fields` (and the payload) from a packed job.
    fn unpack_raw(&mut self, raw: &[u8]) {
        let Some(fields) = jobstream_core::envelope::msgpack_to_fields(raw) else {
            return;
        };
        for (k, v) in fields {
            if k == b"payload" && self.payload.is_empty() {
                self.payload_bytes = v.len();
                self.payload = v;
                continue;
            }
            self.raw_fields.push((
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ));
        }
    }
}

/// Which dead jobs a command applies to. Empty filters match everything.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeadFilter {
    /// Only these dead entry ids or job ids.
    pub ids: Vec<String>,
    /// Only this job type.
    pub job_type: Option<String>,
    /// Only this reason.
    pub reason: Option<String>,
    /// At most this many (0 = no limit).
    pub limit: usize,
}

/// Builder methods, one per field, for code outside this crate (the struct
/// is `#[non_exhaustive]`, so it cannot be built with a literal there):
///
/// ```
/// use jobstream_producer::inspect::DeadFilter;
///
/// let filter = DeadFilter::default().job_type("send_email").limit(100);
/// # let _ = filter;
/// ```
impl DeadFilter {
    /// Sets `ids`: only these dead entry ids or job ids.
    pub fn ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ids = ids.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `job_type`: only jobs of this type.
    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.job_type = Some(job_type.into());
        self
    }

    /// Sets `reason`: only jobs dead for this reason (`exhausted`,
    /// `permanent`, `abandoned`, `malformed`, `unknown_type`).
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Sets `limit`: at most this many (0 = no limit).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
}

impl DeadFilter {
    fn matches(&self, job: &DeadJob) -> bool {
        (self.ids.is_empty()
            || self
                .ids
                .iter()
                .any(|i| *i == job.dead_id || *i == job.job_id))
            && self.job_type.as_ref().is_none_or(|t| *t == job.job_type)
            && self.reason.as_ref().is_none_or(|r| *r == job.reason)
    }
}

const PAGE: usize = 500;

impl Inspector {
    /// An inspector on `redis` for keys under `prefix`.
    pub fn new(redis: Redis, prefix: &str) -> Self {
        Self {
            redis: Some(redis),
            prefix: prefix.to_owned(),
            group: jobstream_core::DEFAULT_GROUP.to_owned(),
        }
    }

    /// The inspector of a recording producer: every call is an error.
    pub(crate) fn without_redis(prefix: &str) -> Self {
        Self {
            redis: None,
            prefix: prefix.to_owned(),
            group: jobstream_core::DEFAULT_GROUP.to_owned(),
        }
    }

    pub(crate) fn redis_handle(&self) -> Result<&Redis> {
        self.redis()
    }

    /// The key prefix this inspector reads.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn redis(&self) -> Result<&Redis> {
        self.redis.as_ref().ok_or_else(|| {
            jobstream_core::Error::Config(
                "this is the inspector of a recording producer (Producer::recording): \
                 inspecting queues needs Redis; use Inspector::connect or a producer \
                 from Producer::connect"
                    .into(),
            )
        })
    }

    /// Reads the consumer group `group` instead of `workers`.
    pub fn with_group(mut self, group: &str) -> Self {
        group.clone_into(&mut self.group);
        self
    }

    /// Connects to `url` (checking that Redis answers), for keys under
    /// `prefix` (normally `jobstream`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self> {
        let redis = Redis::open(url, &jobstream_core::Timings::default())?;
        redis.ping().await?;
        Ok(Self::new(redis, prefix))
    }

    pub(crate) fn store(&self, queue: &str) -> Result<QueueStore> {
        let name = QueueName::new(queue)?;
        Ok(QueueStore::new(
            self.redis()?.clone(),
            QueueKeys::new(&self.prefix, &name),
            self.group.as_str(),
        ))
    }

    /// Names of the queues producers and workers have registered.
    pub async fn queues(&self) -> Result<Vec<String>> {
        jobstream_core::known_queues(self.redis()?, &self.prefix).await
    }

    /// Every worker with a heartbeat (most recently seen first), and the
    /// server's time now, unix ms: a worker whose `seen_at_ms` is more than
    /// [`STALE_AFTER_MS`] old is stale (killed, stalled or cut off).
    pub async fn workers(&self) -> Result<(Vec<WorkerInfo>, u64)> {
        let redis = self.redis()?;
        let now = redis.server_now_ms().await?;
        Ok((
            jobstream_core::workers::list(redis, &self.prefix).await?,
            now,
        ))
    }

    /// Stats of one queue.
    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        self.store(queue)?.stats(jobstream_core::now_ms()).await
    }

    /// Whether the books of one queue balance: every entry ever added to
    /// `ready` is still there or was counted out by a script.
    pub async fn books(&self, queue: &str) -> Result<Books> {
        self.store(queue)?.books().await
    }

    /// Redis settings that can lose jobs, judged against `expect_fsync`.
    pub async fn server_safety(&self, expect_fsync: Fsync) -> Result<ServerSafety> {
        ServerSafety::read(self.redis()?, expect_fsync).await
    }

    /// Dead jobs of `queue` that match `filter`, oldest first.
    pub async fn dead_list(&self, queue: &str, filter: &DeadFilter) -> Result<Vec<DeadJob>> {
        let store = self.store(queue)?;
        let mut out = Vec::new();
        let mut start = "-".to_owned();
        loop {
            let page = store.dead_entries(&start, PAGE).await?;
            let full = page.len() == PAGE;
            if let Some(last) = page.last() {
                start = format!("({}", last.id);
            }
            for entry in page {
                let job = DeadJob::from_entry(entry);
                if filter.matches(&job) {
                    out.push(job);
                    if filter.limit > 0 && out.len() >= filter.limit {
                        return Ok(out);
                    }
                }
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// Moves the matching dead jobs back to `ready` (same job id, attempts
    /// reset). Returns how many were replayed; a job replayed twice is
    /// enqueued once.
    pub async fn dead_replay(&self, queue: &str, filter: &DeadFilter) -> Result<u64> {
        let store = self.store(queue)?;
        let mut n = 0;
        for ids in self.dead_id_pages(queue, filter).await? {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            n += store.replay(&ids).await?;
        }
        Ok(n)
    }

    /// Deletes the matching dead jobs. Returns how many were deleted.
    pub async fn dead_discard(&self, queue: &str, filter: &DeadFilter) -> Result<u64> {
        let store = self.store(queue)?;
        let mut n = 0;
        for ids in self.dead_id_pages(queue, filter).await? {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            n += store.discard_dead(&ids).await?;
        }
        Ok(n)
    }

    /// Dead entry ids matching `filter`, in pages of at most [`PAGE`] (the
    /// scripts' bound on ids per call).
    async fn dead_id_pages(&self, queue: &str, filter: &DeadFilter) -> Result<Vec<Vec<String>>> {
        let jobs = self.dead_list(queue, filter).await?;
        Ok(jobs
            .chunks(PAGE)
            .map(|c| c.iter().map(|j| j.dead_id.clone()).collect())
            .collect())
    }
}

#[cfg(test)]
mod raw_tests {
    use super::*;

    #[test]
    fn a_job_packed_in_raw_is_shown_unpacked() {
        let job = vec![
            (b"type".to_vec(), b"send".to_vec()),
            (b"payload".to_vec(), vec![0x91, 0x01]),
            (b"reason".to_vec(), b"the producer's own".to_vec()),
        ];
        let raw = jobstream_core::envelope::fields_to_msgpack(&job);
        let entry = StreamEntry {
            id: "1-1".into(),
            fields: vec![
                (b"raw".to_vec(), raw),
                (b"id".to_vec(), b"1-0".to_vec()),
                (b"reason".to_vec(), b"malformed".to_vec()),
            ],
        };
        let d = DeadJob::from_entry(entry);
        assert_eq!(
            (d.job_type.as_str(), d.reason.as_str()),
            ("send", "malformed")
        );
        assert_eq!(d.payload, vec![0x91, 0x01]);
        assert!(
            d.raw_fields
                .contains(&("reason".into(), "the producer's own".into()))
        );
        // An undecodable member in raw: shown as bytes, nothing unpacked.
        let entry = StreamEntry {
            id: "1-2".into(),
            fields: vec![(b"raw".to_vec(), b"\xc1garbage".to_vec())],
        };
        assert!(DeadJob::from_entry(entry).raw_fields.is_empty());
    }
}
