//! A job's life after it was enqueued: read its record, wait for its
//! outcome, cancel it. Only jobs enqueued with
//! [`NewJob::keep_record`](crate::NewJob::keep_record) (or of a type with
//! [`Job::KEEP_RECORD`](crate::Job::KEEP_RECORD)) have a record.

use std::time::{Duration, Instant};

pub use jobstream_core::store_lifecycle::CancelOutcome;
use jobstream_core::{Error, JobRecord, QueueStore, Redis, Result};

use crate::{Backend, Producer};

impl Producer {
    /// The record of job `id` on `queue`: its state, attempts, times,
    /// progress, last error and result. `None` when there is none (an
    /// unknown id, a job without a record, or a record that expired).
    pub async fn job(&self, queue: &str, id: &str) -> Result<Option<JobRecord>> {
        self.lifecycle_store(queue).await?.1.record(id).await
    }

    /// Waits until job `id` on `queue` is final (completed, dead,
    /// discarded, expired or cancelled) and returns its record: its
    /// [`JobRecord::result`] or [`JobRecord::last_error`]. Blocks on Redis
    /// (`BLMOVE` on the job's done list, woken by the script that settles
    /// the job), it does not poll. Fails with [`Error::WaitTimeout`] after
    /// `timeout`, and [`Error::NoRecord`] when the job has no record.
    pub async fn wait_for(&self, queue: &str, id: &str, timeout: Duration) -> Result<JobRecord> {
        let (redis, store) = self.lifecycle_store(queue).await?;
        let deadline = Instant::now() + timeout;
        let mut conn = redis.blocking().await?;
        // The done list answered last time, yet the record was not final.
        let mut stale = false;
        loop {
            let record = store.record(id).await?.ok_or_else(|| Error::NoRecord {
                queue: queue.to_owned(),
                id: id.to_owned(),
            })?;
            if record.state.is_final() {
                return Ok(record);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::WaitTimeout {
                    id: id.to_owned(),
                    waited: timeout,
                });
            }
            // Blocks in slices no longer than the connection's read
            // timeout allows; each slice ends early when the job is final.
            if stale {
                // A done list that answers while the record is not final
                // is an old one (the job was replayed from dead): wait a
                // little instead of asking again at once.
                tokio::time::sleep(left.min(Duration::from_millis(200))).await;
            }
            let slice = left.min(self.timings.block);
            match store.wait_final(&mut conn, id, slice).await {
                Ok(answered) => stale = answered,
                Err(e) => {
                    conn.discard();
                    return Err(e);
                }
            }
        }
    }

    /// Cancels job `id` on `queue`. A job that has not started never runs
    /// (counted as `cancelled`); a running job's handler sees
    /// [`JobContext::cancelled`] within about a second, on whichever
    /// worker runs it, and decides when to stop. Only jobs with a record
    /// can be cancelled ([`CancelOutcome::NotFound`] otherwise).
    ///
    /// [`JobContext::cancelled`]: https://docs.rs/jobstream-worker
    pub async fn cancel(&self, queue: &str, id: &str) -> Result<CancelOutcome> {
        let (redis, store) = self.lifecycle_store(queue).await?;
        let now = redis.server_now_ms().await?;
        store.cancel(id, now).await
    }

    async fn lifecycle_store(&self, queue: &str) -> Result<(Redis, QueueStore)> {
        match &self.backend {
            // Not registered: reading a record (`job show`, `wait_for`) is
            // no write, and a read-only user may do it.
            Backend::Redis(redis) => Ok((redis.clone(), self.queue_store(redis, queue)?)),
            Backend::Recording(_) => Err(Error::Config(
                "a recording producer has no Redis: job records need one".into(),
            )),
        }
    }
}
