//! Moves due jobs from `scheduled` to `ready`: delayed jobs and retries.
//! Every worker runs one; the script makes concurrent promoters safe.

use std::time::Duration;

use jobstream_core::{Limits, QueueStore, Reconnect, Timings};

use crate::shutdown::{Fatal, Shutdown};

pub(crate) struct Promoter {
    pub(crate) store: QueueStore,
    pub(crate) timings: Timings,
    pub(crate) limits: Limits,
    pub(crate) fatal: Fatal,
}

impl Promoter {
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Reconnect::new(&self.timings);
        while !shutdown.is_set() {
            // "Due" is judged by the server's clock, never this host's.
            let promoted = match self.store.redis().server_now_ms().await {
                Ok(now) => self
                    .store
                    .promote(now, self.limits.promote_batch, self.limits.dead_max_len)
                    .await
                    .map(|r| (r, now)),
                Err(e) => Err(e),
            };
            let wait = match promoted {
                Ok(((moved, next_due, malformed), now)) => {
                    if malformed > 0 {
                        tracing::warn!(queue = %self.store.keys().name(), malformed,
                            "moved malformed scheduled members to dead, reason malformed, each member's exact \
                             bytes in field raw (not a map of str/bin/integer/boolean fields, or too wide): \
                             jobstream dlq list --queue QUEUE --reason malformed --json shows them as raw_hex");
                    }
                    backoff.reset();
                    // A full batch: more may be due at once.
                    if (moved + malformed) as usize >= self.limits.promote_batch {
                        continue;
                    }
                    self.until(next_due, now)
                }
                Err(e) if e.is_fatal() => {
                    self.fatal.report(e);
                    break;
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    if let Some(suppressed) =
                        jobstream_core::throttle::warnings().allow("promoter.promote")
                    {
                        tracing::warn!(suppressed, error = %e, "promoting scheduled jobs failed; will retry");
                    }
                    wait
                }
            };
            shutdown.sleep(wait).await;
        }
    }

    /// Sleep until the next known due time, but no longer than the promote
    /// interval (a job scheduled meanwhile may be due sooner).
    fn until(&self, next_due: Option<u64>, now: u64) -> Duration {
        let interval = self.timings.promote_interval;
        match next_due {
            Some(due) => Duration::from_millis(due.saturating_sub(now))
                .clamp(Duration::from_millis(1), interval),
            None => interval,
        }
    }
}
