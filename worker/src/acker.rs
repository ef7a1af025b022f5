//! Writes outcomes to Redis: acks coalesced into one `ack-2` call per flush,
//! retries and dead letters one script each. A flush takes whatever has
//! piled up while the previous one was in flight, so batches grow with load
//! and an idle worker still acks at once.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use jobstream_core::store_lifecycle::Settle;
use jobstream_core::{Error, JobState, QueueStore, Reconnect, Timings};
use tokio::sync::{mpsc, watch};

use crate::inflight::{Inflight, LaneId};
use crate::processor::{Action, Outcome, Settling};
use crate::shutdown::Fatal;

pub(crate) struct Acker {
    /// One store per lane, by lane id.
    pub(crate) stores: Vec<QueueStore>,
    pub(crate) consumer: String,
    pub(crate) inflight: Inflight,
    pub(crate) timings: Timings,
    pub(crate) batch: usize,
    pub(crate) dead_max_len: u64,
    /// Set when shutdown starts: the moment the acker stops trying to write
    /// (`shutdown_grace + shutdown_flush` after it began). Until then a
    /// transient failure is retried for as long as it lasts: the lease of
    /// a job whose outcome waits keeps being refreshed, so no other worker
    /// runs the same attempt again.
    pub(crate) give_up_at: watch::Receiver<Option<Instant>>,
    /// Where a fatal error goes: it stops the worker.
    pub(crate) fatal: Fatal,
    /// Where lost leases are reported.
    pub(crate) events: crate::events::Events,
}

/// Resolves once `give_up_at` is set and has passed.
async fn passed(mut give_up_at: watch::Receiver<Option<Instant>>) {
    loop {
        let at = *give_up_at.borrow_and_update();
        if let Some(at) = at {
            tokio::time::sleep_until(at.into()).await;
            return;
        }
        if give_up_at.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Acker {
    /// Runs until every sender of `outcomes` is gone and the channel is drained.
    pub(crate) async fn run(self, mut outcomes: mpsc::Receiver<Outcome>) {
        let mut buf = Vec::with_capacity(self.batch);
        while outcomes.recv_many(&mut buf, self.batch).await > 0 {
            // Under load more outcomes are a task switch away: a few yields
            // (no timer, so an idle worker still acks at once) make the
            // batch, and so the script call, larger.
            for _ in 0..4 {
                if buf.len() >= self.batch {
                    break;
                }
                tokio::task::yield_now().await;
                while buf.len() < self.batch {
                    match outcomes.try_recv() {
                        Ok(o) => buf.push(o),
                        Err(_) => break,
                    }
                }
            }
            self.flush(&mut buf).await;
            buf.clear();
        }
    }

    async fn flush(&self, buf: &mut [Outcome]) {
        // One ack call per lane and counter: each script touches one
        // stream's keys only (ready to be spread over Cluster slots).
        // Acks, discards and expired jobs of each lane: one call each.
        // Tracked jobs (a record, a uniqueness key) are settled one by one
        // below, by settle-14.
        let mut by_lane: BTreeMap<LaneId, [Vec<&str>; 4]> = BTreeMap::new();
        for o in buf.iter().filter(|o| o.tracked.is_none()) {
            let lane = by_lane.entry(o.lane);
            let i = match &o.action {
                Action::Ack => 0,
                Action::Discard => 1,
                Action::Expire => 2,
                Action::Cancel => 3,
                _ => continue,
            };
            lane.or_default()[i].push(&o.entry_id);
        }
        for (lane, [acks, discards, expired, cancelled]) in by_lane {
            let store = &self.stores[lane];
            self.ack_all(store, "processed", &acks).await;
            self.ack_all(store, "discarded", &discards).await;
            self.ack_all(store, "expired", &expired).await;
            self.ack_all(store, "cancelled", &cancelled).await;
        }
        // Tracked jobs: one settle-14 each, all of the flush at once (the
        // calls share the multiplexed connection, so they go out as one
        // pipeline instead of one round trip each).
        let settles = buf.iter().filter_map(|o| {
            let tracked = o.tracked.as_ref()?;
            if matches!(o.action, Action::Forget) {
                return None;
            }
            let store = &self.stores[o.lane];
            Some(async move {
                if self.settle(store, o, tracked).await == Some(false) {
                    self.report_lost(store, std::slice::from_ref(&o.entry_id));
                }
            })
        });
        futures_util::future::join_all(settles).await;
        for o in buf.iter().filter(|o| o.tracked.is_none()) {
            let id = o.entry_id.as_str();
            let store = &self.stores[o.lane];
            let moved = match &o.action {
                Action::Retry { due_ms, member } => {
                    self.write("retry", || store.retry(&self.consumer, id, *due_ms, member))
                        .await
                }
                Action::Dead { fields } => {
                    self.write("dead", || {
                        store.dead(&self.consumer, id, self.dead_max_len, fields)
                    })
                    .await
                }
                Action::Ack
                | Action::Discard
                | Action::Expire
                | Action::Cancel
                | Action::Forget => continue,
            };
            if moved == Some(false) {
                self.report_lost(store, &[id.to_owned()]);
            }
        }
        self.inflight
            .remove_many(buf.iter().map(|o| (o.lane, o.entry_id.as_str())));
    }

    /// `settle-14` for one tracked job: the move, its record, its key.
    async fn settle(&self, store: &QueueStore, o: &Outcome, t: &Settling) -> Option<bool> {
        let (state, retry, dead) = match &o.action {
            Action::Ack => (JobState::Completed, None, None),
            Action::Discard => (JobState::Discarded, None, None),
            Action::Expire => (JobState::Expired, None, None),
            Action::Cancel => (JobState::Cancelled, None, None),
            Action::Retry { due_ms, member } => {
                (JobState::Retrying, Some((*due_ms, member.as_slice())), None)
            }
            Action::Dead { fields } => (
                JobState::Dead,
                None,
                Some((self.dead_max_len, fields.as_slice())),
            ),
            Action::Forget => return None,
        };
        let text: &[u8] = match state {
            JobState::Completed => &t.result,
            _ => t.error.as_bytes(),
        };
        let release = match state {
            JobState::Retrying => None,
            _ => t.tracking.release_at_end.as_deref(),
        };
        let redis = store.redis().clone();
        self.write(state.as_str(), || {
            let redis = redis.clone();
            async move {
                let now = redis.server_now_ms().await?;
                store
                    .settle(&Settle {
                        consumer: &self.consumer,
                        entry_id: &o.entry_id,
                        job_id: &t.tracking.job_id,
                        state,
                        now_ms: now,
                        record_ms: t.tracking.record_ms,
                        release,
                        text,
                        error_class: &t.error_class,
                        retry,
                        dead,
                        next_step: t.next_step.as_deref(),
                        batch: t.tracking.batch.as_deref(),
                        group: t.tracking.group.as_deref(),
                    })
                    .await
            }
        })
        .await
    }

    /// Acks `ids` in calls of at most `batch`, adding them to `counter`.
    async fn ack_all(&self, store: &QueueStore, counter: &str, ids: &[&str]) {
        for chunk in ids.chunks(self.batch) {
            let acked = self
                .write(counter, || store.ack(&self.consumer, counter, chunk))
                .await;
            if let Some(lost) = acked {
                self.report_lost(store, &lost);
            }
        }
    }

    fn report_lost(&self, store: &QueueStore, lost: &[String]) {
        if !lost.is_empty() {
            self.events.emit(crate::events::Event::LeaseLost {
                queue: store.keys().name().as_str(),
                count: lost.len() as u64,
            });
        }
        for id in lost {
            tracing::warn!(
                queue = %store.keys().name(),
                entry_id = %id,
                "lease lost: the job is no longer pending on this worker (reclaimed by another, or the group was recreated); its outcome is dropped"
            );
        }
    }

    /// Runs `op` until it succeeds. A transient failure (connection, OOM,
    /// BUSY, LOADING, a failover) is retried with backoff for as long as it
    /// lasts; meanwhile the job stays in flight and its lease is refreshed,
    /// so it is not run again. Gives up (None) on a fatal error, or once
    /// shutdown's flush time is over: the job then stays pending and is
    /// reclaimed, which keeps the at-least-once promise.
    async fn write<T, F, Fut>(&self, what: &str, mut op: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut backoff = Reconnect::new(&self.timings);
        loop {
            let attempt = tokio::select! {
                r = op() => r,
                _ = passed(self.give_up_at.clone()) => {
                    tracing::warn!("shutdown flush time is over; the {what} outcome is not written and its job stays pending for reclaim");
                    return None;
                }
            };
            match attempt {
                Ok(v) => return Some(v),
                Err(e) if e.is_transient() => {
                    let wait = backoff.next_delay().min(Duration::from_secs(5));
                    if let Some(suppressed) =
                        jobstream_core::throttle::warnings().allow("acker.write")
                    {
                        tracing::warn!(suppressed, error = %e, retry_in_ms = wait.as_millis() as u64, "could not write {what} outcome; retrying");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = passed(self.give_up_at.clone()) => {}
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "giving up writing {what} outcome; the job stays pending and will be reclaimed");
                    if e.is_fatal() {
                        self.fatal.report(e);
                    }
                    return None;
                }
            }
        }
    }
}
