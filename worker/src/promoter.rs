//! Moves due jobs from `scheduled` to `ready`: delayed jobs and retries.
//! Every worker runs one; the script makes concurrent promoters safe.

use std::time::Duration;

use jobstream_core::{Limits, QueueStore, Reconnect, Timings, now_ms};

use crate::shutdown::Shutdown;

pub(crate) struct Promoter {
    pub(crate) store: QueueStore,
    pub(crate) timings: Timings,
    pub(crate) limits: Limits,
}

impl Promoter {
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Reconnect::new(&self.timings);
        while !shutdown.is_set() {
            let wait = match self
                .store
                .promote(
                    now_ms(),
                    self.limits.promote_batch,
                    self.limits.dead_max_len,
                )
                .await
            {
                Ok((moved, next_due, malformed)) => {
                    if malformed > 0 {
                        tracing::warn!(queue = %self.store.keys().name(), malformed,
                            "moved scheduled members that are not a map of at most 1000 scalar fields to dead");
                    }
                    backoff.reset();
                    // A full batch: more may be due at once.
                    if (moved + malformed) as usize >= self.limits.promote_batch {
                        continue;
                    }
                    self.until(next_due)
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, "promoting scheduled jobs failed; will retry");
                    wait
                }
            };
            shutdown.sleep(wait).await;
        }
    }

    /// Sleep until the next known due time, but no longer than the promote
    /// interval (a job scheduled meanwhile may be due sooner).
    fn until(&self, next_due: Option<u64>) -> Duration {
        let interval = self.timings.promote_interval;
        match next_due {
            Some(due) => Duration::from_millis(due.saturating_sub(now_ms()))
                .clamp(Duration::from_millis(1), interval),
            None => interval,
        }
    }
}
