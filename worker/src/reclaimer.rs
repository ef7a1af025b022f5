//! Takes over jobs whose worker stopped refreshing their lease (crashed,
//! killed, cut off) once they have been idle for the visibility timeout, and
//! now and then removes consumers that are long gone.
//!
//! The claim itself runs inside the fetch loop (`fetcher.rs`), with the
//! handler slots the fetcher already holds: one owner for the slots, and a
//! claimed job starts exactly like a fetched one.

use std::time::Duration;

use jobstream_core::store_lifecycle::Settle;
use jobstream_core::{ClaimedEntry, JobState, Limits, QueueStore, Timings};

use crate::shutdown::Shutdown;

pub(crate) struct Reclaimer {
    pub(crate) store: QueueStore,
    pub(crate) consumer: String,
    pub(crate) timings: Timings,
    pub(crate) limits: Limits,
    /// Where abandoned jobs are reported.
    pub(crate) events: crate::events::Events,
}

const REAP_EVERY: Duration = Duration::from_secs(60);

impl Reclaimer {
    /// One pass over the pending entries list: claims at most `max` jobs
    /// idle for the visibility timeout (dead-lettering the ones delivered
    /// too often, inside the script).
    pub(crate) async fn claim(&self, max: usize) -> jobstream_core::Result<Vec<ClaimedEntry>> {
        // Idle times are the server's own; `now` only stamps `failed_at`.
        let now = self.store.redis().server_now_ms().await?;
        let mut cursor = "0-0".to_owned();
        let mut out = Vec::new();
        while out.len() < max {
            let count = (max - out.len()).min(self.limits.reclaim_batch);
            let r = self
                .store
                .reclaim(
                    &self.consumer,
                    self.timings.visibility_timeout,
                    &cursor,
                    count,
                    self.limits.max_deliveries,
                    self.limits.dead_max_len,
                    now,
                )
                .await?;
            if r.abandoned > 0 {
                self.events.emit(crate::events::Event::Abandoned {
                    queue: self.store.keys().name().as_str(),
                    count: r.abandoned,
                });
                tracing::warn!(queue = %self.store.keys().name(), abandoned = r.abandoned, max_deliveries = self.limits.max_deliveries,
                    "moved jobs delivered too often without an outcome (poison messages that kill their worker) to dead");
            }
            if r.failed > 0 {
                tracing::warn!(queue = %self.store.keys().name(), failed = r.failed,
                    "could not move jobs delivered too often to dead (the add to dead failed); they stay pending and come back after the visibility timeout");
            }
            for fields in &r.tracked {
                self.finish_abandoned(fields, now).await;
            }
            for c in &r.entries {
                tracing::warn!(queue = %self.store.keys().name(), entry_id = %c.entry.id, deliveries = c.deliveries,
                    "reclaimed a job whose worker stopped refreshing its lease");
            }
            out.extend(r.entries);
            if r.next_cursor == "0-0" {
                break;
            }
            cursor = r.next_cursor;
        }
        Ok(out)
    }

    /// The record, key and batch of a job `reclaim-3` dead-lettered as
    /// abandoned: `settle-14` with no entry (the move is done). Not atomic
    /// with the move: a worker that dies in between leaves them as they
    /// were (docs/lifecycle.md, known gaps).
    async fn finish_abandoned(&self, fields: &[(Vec<u8>, Vec<u8>)], now: u64) {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name.as_bytes())
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
        };
        let Some(job_id) = get("id") else { return };
        let mode = get("unique_for").unwrap_or("done");
        let release = get("unique_key").filter(|_| mode == "done" || mode == "queued");
        let record_ms = get("record_ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            .min(jobstream_core::lifecycle::MAX_KEEP_MS);
        let settle = Settle {
            consumer: &self.consumer,
            entry_id: "",
            job_id,
            state: JobState::Dead,
            now_ms: now,
            record_ms,
            release,
            text: b"abandoned: delivered too often without an outcome (its workers kept dying)",
            error_class: "abandoned",
            retry: None,
            dead: Some((0, &[])),
            next_step: None,
            batch: get("batch"),
            group: get("group"),
        };
        // The dead letter is already written: this frees what the job held
        // (its key, its group's place). A lost write here would hold them
        // for good, so a failure is retried a few times before giving up.
        let mut wait = std::time::Duration::from_millis(100);
        for attempt in 1..=4 {
            match self.store.settle(&settle).await {
                Ok(_) => return,
                Err(e) if attempt == 4 => {
                    tracing::error!(queue = %self.store.keys().name(), job_id, error = %e,
                        "could not finish the record, key, batch or group of an abandoned job; \
                         its group may stay held (see docs/flow-control.md, groups)");
                }
                Err(e) => {
                    tracing::warn!(queue = %self.store.keys().name(), job_id, error = %e, attempt,
                        "finishing an abandoned job failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 3;
                }
            }
        }
    }

    /// Removes long-idle consumers with nothing pending, every minute; and
    /// warns when the dead stream's cap dropped dead letters since the last
    /// look (`dead_trimmed` grew), so nothing is dropped silently.
    pub(crate) async fn run_reaper(self, mut shutdown: Shutdown) {
        let mut trimmed_seen: Option<u64> = None;
        loop {
            match self
                .store
                .reap_consumers(self.timings.consumer_idle_reap, &self.consumer)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "removed idle consumers with nothing pending"),
                Err(e) => tracing::debug!(error = %e, "reaping idle consumers failed"),
            }
            if let Ok(trimmed) = self.store.counter("dead_trimmed").await {
                if let Some(seen) = trimmed_seen
                    && trimmed > seen
                {
                    tracing::warn!(queue = %self.store.keys().name(), dropped = trimmed - seen,
                        dead_trimmed = trimmed, dead_max_len = self.limits.dead_max_len,
                        "dead letters were dropped by the dead_max_len cap; replay or discard dead jobs sooner, or raise the cap");
                }
                trimmed_seen = Some(trimmed);
            }
            if shutdown.sleep(REAP_EVERY).await {
                break;
            }
        }
    }
}
