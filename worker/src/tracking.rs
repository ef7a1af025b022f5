//! Jobs that keep a record or hold a uniqueness key ("tracked" jobs): what
//! their handler can reach while it runs (progress, lease, cancellation,
//! result), and the watcher that brings cancellations to them. Jobs that
//! are neither never touch this: they cost nothing more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobstream_core::lifecycle::{MAX_PROGRESS_MSG_LEN, MAX_RESULT_BYTES, UniqueMode, truncate_to};
use jobstream_core::{Envelope, QueueStore, Redis};
use tokio_util::sync::CancellationToken;

use crate::inflight::LaneId;
use crate::shutdown::Shutdown;

/// What a tracked job's outcome must also do: which record, which key.
#[derive(Debug, Clone)]
pub(crate) struct Tracking {
    pub(crate) job_id: String,
    /// The record's keep time, ms; 0 = no record.
    pub(crate) record_ms: u64,
    /// The uniqueness key, released at start (`queued`; and when final).
    pub(crate) release_at_start: Option<String>,
    /// The uniqueness key, released when the job is final (`done`).
    pub(crate) release_at_end: Option<String>,
    /// The batch it is a member of.
    pub(crate) batch: Option<String>,
    /// Its group (ordering and fairness, see `jobstream_core::groups`).
    pub(crate) group: Option<String>,
    /// A chain step with steps after it: its result goes to the next.
    pub(crate) chained: bool,
}

impl Tracking {
    /// The tracking a job needs, `None` for a plain job.
    pub(crate) fn of(envelope: &Envelope, entry_id: &str) -> Option<Self> {
        let record_ms = envelope.record_ms.unwrap_or(0);
        let (at_start, at_end) = match &envelope.unique {
            // Also released when final: a job that never started (expired,
            // unknown type, a failed start-3) must not hold it for good;
            // the release is a compare-and-delete on the job's id.
            Some(u) if u.mode == UniqueMode::Queued => (Some(u.key.clone()), Some(u.key.clone())),
            Some(u) if u.mode == UniqueMode::Done => (None, Some(u.key.clone())),
            _ => (None, None),
        };
        let chained = envelope.has_chain();
        if record_ms == 0
            && at_start.is_none()
            && at_end.is_none()
            && envelope.batch.is_none()
            // A completion job: tracked so that its handler can read the
            // batch (`JobContext::batch` needs the store).
            && envelope.batch_done.is_none()
            && envelope.group.is_none()
            && !chained
        {
            return None;
        }
        Some(Self {
            job_id: envelope.job_id(entry_id).to_owned(),
            record_ms,
            release_at_start: at_start,
            release_at_end: at_end,
            batch: envelope.batch.clone(),
            group: envelope.group.clone(),
            chained,
        })
    }

    /// For an entry that does not decode (malformed, or a wire version
    /// this worker does not know) but may hold something elsewhere: a
    /// group's place (`group-enqueue-6` admits without decoding), a
    /// uniqueness key or a record (`enqueue-6` reserves and writes without
    /// decoding the payload), a batch's count. Its dead letter goes through
    /// `settle-14`, which frees each only if this job holds it (the key is a
    /// compare-and-delete on the id, the group's place is keyed by group
    /// and id), so nothing stays held for good by a job that never runs.
    /// Fields are read leniently (the first of each, UTF-8); `None` when
    /// there is nothing to free.
    pub(crate) fn of_malformed(fields: &[(Vec<u8>, Vec<u8>)], entry_id: &str) -> Option<Self> {
        use jobstream_core::envelope::{MAX_GROUP_LEN, field};
        let text = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        let group = text(field::GROUP).filter(|g| !g.is_empty() && g.len() <= MAX_GROUP_LEN);
        let key = text(field::UNIQUE_KEY)
            .filter(|k| !k.is_empty() && k.len() <= jobstream_core::lifecycle::MAX_UNIQUE_KEY_LEN);
        // A `ttl` key expires by itself; any other mode (or a bad one) is
        // released when final, as a decodable job's would be.
        let mode = text(field::UNIQUE_FOR).and_then(|m| UniqueMode::parse(m.as_bytes()));
        let release = key.filter(|_| mode != Some(UniqueMode::Ttl));
        let record_ms = text(field::RECORD_MS)
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |ms| ms.clamp(1, jobstream_core::lifecycle::MAX_KEEP_MS));
        let batch = text(field::BATCH).filter(|b| !b.is_empty());
        if group.is_none() && release.is_none() && record_ms == 0 && batch.is_none() {
            return None;
        }
        Some(Self {
            job_id: text(field::ID).unwrap_or(entry_id).to_owned(),
            record_ms,
            release_at_start: None,
            release_at_end: release.map(str::to_owned),
            batch: batch.map(str::to_owned),
            group: group.map(str::to_owned),
            chained: false,
        })
    }

    /// `start-3` is needed: a record to mark active, or a key to release.
    pub(crate) fn starts(&self) -> bool {
        self.record_ms > 0 || self.release_at_start.is_some()
    }
}

/// What every job of a lane can reach while it runs: its lease and its
/// progress (written to its record when it has one). One per lane, shared:
/// a plain job costs a reference count, no allocation.
pub(crate) struct LaneCtx {
    pub(crate) store: QueueStore,
    pub(crate) redis: Redis,
    pub(crate) consumer: Arc<str>,
}

impl LaneCtx {
    /// `progress-2`: the record (if any) and the lease.
    pub(crate) async fn progress(&self, entry_id: &str, job_id: &str, percent: u8, message: &str) {
        let now = self
            .redis
            .server_now_ms()
            .await
            .unwrap_or_else(|_| jobstream_core::now_ms());
        let message = truncate_to(message, MAX_PROGRESS_MSG_LEN);
        let r = self
            .store
            .progress(&self.consumer, entry_id, job_id, percent, message, now)
            .await;
        match r {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                job_id,
                "progress not written: the job's lease is lost (another worker has it)"
            ),
            Err(e) => tracing::warn!(job_id, error = %e, "progress not written"),
        }
    }

    /// `extend-1` for one entry; false when the lease is lost or the call
    /// failed.
    pub(crate) async fn extend_lease(&self, entry_id: &str, job_id: &str) -> bool {
        match self.store.extend(&self.consumer, &[entry_id]).await {
            Ok(lost) => lost.is_empty(),
            Err(e) => {
                tracing::warn!(job_id, error = %e, "lease not extended");
                false
            }
        }
    }
}

/// A running tracked job's line back to its worker: cancellation and the
/// result slot. Only jobs run by a worker have one (not the ones a
/// test builds).
pub(crate) struct Live {
    pub(crate) job_id: String,
    /// The job's result is kept: for its record, or for the next step of
    /// its chain.
    pub(crate) keep_result: bool,
    pub(crate) cancel: CancellationToken,
    pub(crate) result: Mutex<Option<Vec<u8>>>,
}

impl Live {
    /// Keeps `value` (MessagePack) as the job's result, if the job keeps
    /// a record; a unit or a too large value is not kept.
    pub(crate) fn set_result_bytes(&self, bytes: Vec<u8>) {
        if !self.keep_result || bytes == [0xc0] {
            return;
        }
        if bytes.len() > MAX_RESULT_BYTES {
            tracing::warn!(job_id = %self.job_id, size = bytes.len(), limit = MAX_RESULT_BYTES, "job result too large to keep in its record; dropped");
            return;
        }
        if let Ok(mut slot) = self.result.lock() {
            *slot = Some(bytes);
        }
    }

    pub(crate) fn take_result(&self) -> Vec<u8> {
        self.result
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_default()
    }
}

/// Cancellation tokens of the running jobs that keep a record, by lane
/// and job id.
#[derive(Clone, Default)]
pub(crate) struct Cancels {
    running: Arc<Mutex<HashMap<(LaneId, String), CancellationToken>>>,
}

impl Cancels {
    pub(crate) fn insert(&self, lane: LaneId, job_id: &str) -> CancellationToken {
        let token = CancellationToken::new();
        if let Ok(mut m) = self.running.lock() {
            m.insert((lane, job_id.to_owned()), token.clone());
        }
        token
    }

    pub(crate) fn remove(&self, lane: LaneId, job_id: &str) {
        if let Ok(mut m) = self.running.lock() {
            m.remove(&(lane, job_id.to_owned()));
        }
    }

    fn lanes(&self) -> Vec<LaneId> {
        let mut lanes: Vec<LaneId> = self
            .running
            .lock()
            .map(|m| m.keys().map(|(l, _)| *l).collect())
            .unwrap_or_default();
        lanes.sort_unstable();
        lanes.dedup();
        lanes
    }

    fn cancel(&self, lane: LaneId, job_id: &str) -> bool {
        let token = self
            .running
            .lock()
            .ok()
            .and_then(|m| m.get(&(lane, job_id.to_owned())).cloned());
        match token {
            Some(t) if !t.is_cancelled() => {
                t.cancel();
                true
            }
            _ => false,
        }
    }
}

/// How often the cancel feed is read while recorded jobs run.
const CANCEL_POLL: Duration = Duration::from_millis(500);
/// How far back each read looks: overlapping reads (a token is cancelled
/// once) absorb clock steps and slow reads.
const CANCEL_LOOKBACK_MS: u64 = 10_000;

/// Reads each lane's cancel feed twice a second, but only for lanes with a
/// recorded job running here, and signals the handlers named in it.
pub(crate) async fn watch_cancels(
    stores: Vec<QueueStore>,
    redis: Redis,
    cancels: Cancels,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CANCEL_POLL) => {}
            _ = shutdown.wait() => return,
        }
        let lanes = cancels.lanes();
        if lanes.is_empty() {
            continue;
        }
        let Ok(now) = redis.server_now_ms().await else {
            continue;
        };
        for lane in lanes {
            let Some(store) = stores.get(lane) else {
                continue;
            };
            match store
                .cancel_requests(now.saturating_sub(CANCEL_LOOKBACK_MS))
                .await
            {
                Ok(ids) => {
                    for (id, _) in ids {
                        if cancels.cancel(lane, &id) {
                            tracing::info!(queue = %store.keys().name(), job_id = %id, "cancellation requested: the handler is signalled");
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "could not read the cancel feed"),
            }
        }
    }
}
