//! Periodic jobs as the fleet declared them (`jobstream cron list`).

use jobstream_core::cron::{CronInfo, CronSpec};

use crate::Result;
use crate::inspect::Inspector;

/// A declared cron schedule with its last and next tick.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CronListing {
    /// The schedule as the worker that started last declared it.
    pub info: CronInfo,
    /// The last tick fired (unix ms), from the queue's `cron` hash; None
    /// when it never fired.
    pub last_fired_ms: Option<u64>,
    /// The next tick after now (unix ms); None when the expression or the
    /// time zone cannot be read here, or it matches no time to come.
    pub next_at_ms: Option<u64>,
}

impl Inspector {
    /// Every schedule in `PREFIX:crons`, sorted by name, with its last
    /// fired tick and its next one (after the server's now, returned too).
    pub async fn crons(&self) -> Result<(Vec<CronListing>, u64)> {
        let redis = self.redis_handle()?;
        let now = redis.server_now_ms().await?;
        let infos = jobstream_core::cron::declared(redis, self.prefix()).await?;
        let mut out = Vec::with_capacity(infos.len());
        for info in infos {
            let last_fired_ms = match self.store(&info.queue) {
                Ok(store) => store.cron_last(&info.name).await?,
                // A declaration naming an invalid queue (written by hand).
                Err(_) => None,
            };
            let next_at_ms = CronSpec::new(&info.cron, &info.time_zone)
                .ok()
                .and_then(|spec| spec.next_after(now));
            out.push(CronListing {
                info,
                last_fired_ms,
                next_at_ms,
            });
        }
        Ok((out, now))
    }

    /// Removes schedule `name`'s declaration from `PREFIX:crons` (a
    /// schedule no worker declares any more); true when it was there. A
    /// worker that still declares it writes it back when it starts.
    pub async fn cron_forget(&self, name: &str) -> Result<bool> {
        jobstream_core::cron::forget(self.redis_handle()?, self.prefix(), name).await
    }
}
