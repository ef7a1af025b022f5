//! Backpressure limits of queues (`jobstream queue limits`).

use crate::Result;
use crate::inspect::Inspector;
use jobstream_core::QueueLimits;

impl Inspector {
    /// The limits of `queue` (`PREFIX:{Q}:limits`); `None` when it has none.
    pub async fn limits(&self, queue: &str) -> Result<Option<QueueLimits>> {
        self.store(queue)?.limits().await
    }

    /// Sets the limits of `queue`, replacing any it had. Every producer
    /// applies them within [`LIMITS_REFRESH`](crate::LIMITS_REFRESH); the
    /// queue is registered so `jobstream queues` lists it.
    pub async fn set_limits(&self, queue: &str, limits: &QueueLimits) -> Result<()> {
        let store = self.store(queue)?;
        store.set_limits(limits).await?;
        store.register().await
    }

    /// Removes the limits of `queue`; true when it had some.
    pub async fn clear_limits(&self, queue: &str) -> Result<bool> {
        self.store(queue)?.clear_limits().await
    }
}
