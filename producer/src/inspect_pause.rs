//! Pausing and resuming queues fleet-wide (`jobstream queue pause|resume`).

use crate::Result;
use crate::inspect::Inspector;

impl Inspector {
    /// Pauses `queue` on every worker: within a second none fetches its
    /// jobs; jobs already running finish; enqueues go on (the queue grows).
    /// Returns false when it was already paused. Shown as `paused` in
    /// [`stats`](Self::stats) and `jobstream_queue_paused` in metrics.
    pub async fn pause(&self, queue: &str) -> Result<bool> {
        self.store(queue)?.pause().await
    }

    /// Resumes `queue`: workers fetch its jobs again within a second.
    /// Returns false when it was not paused.
    pub async fn resume(&self, queue: &str) -> Result<bool> {
        self.store(queue)?.resume().await
    }

    /// Every paused queue with when it was paused (unix ms, server clock),
    /// sorted by name.
    pub async fn paused(&self) -> Result<Vec<(String, u64)>> {
        // Any queue's store reads the one fleet-wide hash.
        let any = self.store("_")?;
        let mut all: Vec<(String, u64)> = any.paused_queues().await?.into_iter().collect();
        all.sort();
        Ok(all)
    }
}
