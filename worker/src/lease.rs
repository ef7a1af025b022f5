//! Keeps the lease of running jobs: refreshes their idle time well inside
//! the visibility timeout, so no reclaimer takes a job that is still running.

use jobstream_core::{QueueStore, Timings};

use crate::inflight::Inflight;
use crate::shutdown::Shutdown;

pub(crate) struct Lease {
    /// One store per lane, by lane id.
    pub(crate) stores: Vec<QueueStore>,
    pub(crate) consumer: String,
    pub(crate) inflight: Inflight,
    pub(crate) timings: Timings,
}

const CHUNK: usize = 500;

impl Lease {
    /// Runs until `stop` (raised after the last handler is done).
    pub(crate) async fn run(self, mut stop: Shutdown) {
        loop {
            if stop.sleep(self.timings.lease_refresh).await {
                break;
            }
            self.refresh().await;
        }
    }

    async fn refresh(&self) {
        for (lane, ids) in self.inflight.ids_by_lane() {
            let Some(store) = self.stores.get(lane) else {
                continue;
            };
            self.refresh_lane(store, &ids).await;
        }
    }

    async fn refresh_lane(&self, store: &QueueStore, ids: &[String]) {
        for chunk in ids.chunks(CHUNK) {
            let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
            match store.extend(&self.consumer, &ids).await {
                Ok(lost) => {
                    for id in &lost {
                        tracing::warn!(queue = %store.keys().name(), entry_id = %id,
                            "lease lost while the job was running: another worker may run it too; this worker's outcome will be dropped");
                    }
                }
                Err(e) => {
                    if let Some(suppressed) =
                        jobstream_core::throttle::warnings().allow("lease.refresh")
                    {
                        tracing::warn!(suppressed, error = %e, "could not refresh job leases; will retry");
                    }
                    return;
                }
            }
        }
    }
}
