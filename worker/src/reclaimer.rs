//! Takes over jobs whose worker stopped refreshing their lease (crashed,
//! killed, cut off) once they have been idle for the visibility timeout, and
//! now and then removes consumers that are long gone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobstream_core::{Limits, QueueStore, Timings, now_ms};
use tokio::sync::Semaphore;

use crate::processor::Dispatcher;
use crate::shutdown::Shutdown;

pub(crate) struct Reclaimer {
    pub(crate) store: QueueStore,
    pub(crate) consumer: String,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) timings: Timings,
    pub(crate) limits: Limits,
}

const REAP_EVERY: Duration = Duration::from_secs(60);

impl Reclaimer {
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        let mut last_reap: Option<Instant> = None;
        loop {
            if shutdown.sleep(self.timings.reclaim_interval).await {
                break;
            }
            if let Err(e) = self.pass(&shutdown).await {
                tracing::warn!(error = %e, "reclaiming abandoned jobs failed; will retry");
            }
            if last_reap.is_none_or(|t| t.elapsed() >= REAP_EVERY) {
                last_reap = Some(Instant::now());
                match self
                    .store
                    .reap_consumers(self.timings.consumer_idle_reap, &self.consumer)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "removed idle consumers with nothing pending"),
                    Err(e) => tracing::debug!(error = %e, "reaping idle consumers failed"),
                }
            }
        }
    }

    /// One pass over the pending entries list, bounded by free slots.
    async fn pass(&self, shutdown: &Shutdown) -> jobstream_core::Result<()> {
        let mut cursor = "0-0".to_owned();
        loop {
            let mut permits = Vec::new();
            while permits.len() < self.limits.reclaim_batch {
                match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            if permits.is_empty() || shutdown.is_set() {
                return Ok(());
            }
            let (next, claimed) = self
                .store
                .reclaim(
                    &self.consumer,
                    self.timings.visibility_timeout,
                    &cursor,
                    permits.len(),
                    self.limits.max_deliveries,
                    self.limits.dead_max_len,
                    now_ms(),
                )
                .await?;
            for (c, permit) in claimed.into_iter().zip(permits) {
                tracing::warn!(queue = %self.store.keys().name(), entry_id = %c.entry.id, deliveries = c.deliveries,
                    "reclaimed a job whose worker stopped refreshing its lease");
                self.dispatcher.dispatch(c.entry, c.deliveries, permit);
            }
            if next == "0-0" {
                return Ok(());
            }
            cursor = next;
        }
    }
}
