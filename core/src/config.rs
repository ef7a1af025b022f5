//! Every timing and limit in one place. The table in docs/configuration.md
//! mirrors [`Timings::default`] and [`Limits::default`]; a unit test keeps
//! the two in step.

use std::time::Duration;

use crate::error::Error;

/// How long things wait. Defaults suit a production fleet; tests shorten them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Timings {
    /// `XREADGROUP ... BLOCK`: how long an idle fetch waits for a job.
    /// Shutdown does not wait for it: the read is unblocked with
    /// `CLIENT UNBLOCK`.
    pub block: Duration,
    /// A pending job whose lease was not refreshed for this long is taken
    /// over by another worker (`XAUTOCLAIM` min-idle).
    pub visibility_timeout: Duration,
    /// How often a worker refreshes the lease of its running jobs. Must be
    /// well inside the visibility timeout (at most a third of it).
    pub lease_refresh: Duration,
    /// How often a worker looks for jobs of dead workers.
    pub reclaim_interval: Duration,
    /// Longest wait between two looks at the scheduled set; a delayed job
    /// starts at most this late (sooner when the promoter knows its due time).
    pub promote_interval: Duration,
    /// On shutdown, how long running handlers may take to finish before
    /// they are aborted (their jobs then go straight back to `ready`).
    pub shutdown_grace: Duration,
    /// On shutdown, how long after the grace period the worker may spend
    /// giving aborted jobs back and writing the outcomes it holds. Then it
    /// exits whatever Redis does: outcomes not written leave their jobs
    /// pending, and another worker reclaims them after the visibility
    /// timeout. A shutdown takes at most `shutdown_grace + shutdown_flush`.
    pub shutdown_flush: Duration,
    /// A reply from Redis slower than this counts as a connection failure.
    pub response_timeout: Duration,
    /// Connecting to Redis gives up after this long (then backs off and
    /// tries again).
    pub connect_timeout: Duration,
    /// First wait after a Redis failure; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest wait between two tries after a Redis failure.
    pub reconnect_max: Duration,
    /// Consumers idle this long with nothing pending are removed from the
    /// group.
    pub consumer_idle_reap: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            block: Duration::from_secs(5),
            visibility_timeout: Duration::from_secs(30),
            lease_refresh: Duration::from_secs(10),
            reclaim_interval: Duration::from_secs(5),
            promote_interval: Duration::from_millis(500),
            shutdown_grace: Duration::from_secs(30),
            shutdown_flush: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            consumer_idle_reap: Duration::from_secs(3600),
        }
    }
}

impl Timings {
    /// Checks the relations between timings that correctness depends on.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.lease_refresh.is_zero() || self.lease_refresh * 3 > self.visibility_timeout {
            return bad("lease_refresh must be non-zero and at most a third of visibility_timeout");
        }
        if self.block.is_zero()
            || self.promote_interval.is_zero()
            || self.reclaim_interval.is_zero()
        {
            return bad("block, promote_interval and reclaim_interval must be non-zero");
        }
        if self.reconnect_min.is_zero() || self.reconnect_min > self.reconnect_max {
            return bad("reconnect_min must be non-zero and at most reconnect_max");
        }
        if self.shutdown_flush < Duration::from_millis(100) {
            return bad("shutdown_flush must be at least 100ms");
        }
        if self.response_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("response_timeout and connect_timeout must be non-zero");
        }
        Ok(())
    }
}

/// Builder methods, one per field, for code outside this crate (the struct
/// is `#[non_exhaustive]`, so it cannot be built with a literal there):
///
/// ```
/// use std::time::Duration;
/// use jobstream_core::Timings;
///
/// let t = Timings::default()
///     .block(Duration::from_millis(200))
///     .visibility_timeout(Duration::from_secs(10))
///     .lease_refresh(Duration::from_secs(3));
/// assert!(t.validate().is_ok());
/// ```
impl Timings {
    /// Sets `block`: how long an idle fetch waits for a job.
    pub fn block(mut self, d: Duration) -> Self {
        self.block = d;
        self
    }

    /// Sets `visibility_timeout`: how long a lease may go unrefreshed before
    /// another worker takes the job.
    pub fn visibility_timeout(mut self, d: Duration) -> Self {
        self.visibility_timeout = d;
        self
    }

    /// Sets `lease_refresh`: how often a worker refreshes the lease of its
    /// running jobs (at most a third of the visibility timeout).
    pub fn lease_refresh(mut self, d: Duration) -> Self {
        self.lease_refresh = d;
        self
    }

    /// Sets `reclaim_interval`: how often a worker looks for jobs of dead
    /// workers.
    pub fn reclaim_interval(mut self, d: Duration) -> Self {
        self.reclaim_interval = d;
        self
    }

    /// Sets `promote_interval`: the longest wait between two looks at the
    /// scheduled set.
    pub fn promote_interval(mut self, d: Duration) -> Self {
        self.promote_interval = d;
        self
    }

    /// Sets `shutdown_grace`: how long running handlers may take to finish on
    /// shutdown.
    pub fn shutdown_grace(mut self, d: Duration) -> Self {
        self.shutdown_grace = d;
        self
    }

    /// Sets `shutdown_flush`: how long after the grace period a shutdown may
    /// spend writing what it holds.
    pub fn shutdown_flush(mut self, d: Duration) -> Self {
        self.shutdown_flush = d;
        self
    }

    /// Sets `response_timeout`: a reply slower than this counts as a connection
    /// failure.
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }

    /// Sets `connect_timeout`: how long connecting to Redis may take before it
    /// backs off and tries again.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets `reconnect_min`: the first wait after a Redis failure.
    pub fn reconnect_min(mut self, d: Duration) -> Self {
        self.reconnect_min = d;
        self
    }

    /// Sets `reconnect_max`: the longest wait between two tries after a Redis
    /// failure.
    pub fn reconnect_max(mut self, d: Duration) -> Self {
        self.reconnect_max = d;
        self
    }

    /// Sets `consumer_idle_reap`: how long a consumer with nothing pending may
    /// stay idle before it is removed from the group.
    pub fn consumer_idle_reap(mut self, d: Duration) -> Self {
        self.consumer_idle_reap = d;
        self
    }
}

/// Sizes and counts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest encoded payload a producer accepts, bytes.
    pub max_payload_bytes: usize,
    /// A job delivered more often than this without an outcome (its worker
    /// kept dying) goes to dead as `abandoned`.
    pub max_deliveries: u32,
    /// Approximate cap on the dead stream's length (`XADD MAXLEN ~`);
    /// 0 = unbounded. `ready` is never trimmed.
    pub dead_max_len: u64,
    /// Jobs moved per promote script call.
    pub promote_batch: usize,
    /// Jobs claimed per reclaim script call.
    pub reclaim_batch: usize,
    /// Outcomes written per ack script call.
    pub ack_batch: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 512 * 1024,
            max_deliveries: 5,
            dead_max_len: 100_000,
            promote_batch: 200,
            reclaim_batch: 100,
            ack_batch: 500,
        }
    }
}

impl Limits {
    /// Checks the limits.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_deliveries == 0 {
            return Err(Error::Config("max_deliveries must be at least 1".into()));
        }
        for (name, v) in [
            ("promote_batch", self.promote_batch),
            ("reclaim_batch", self.reclaim_batch),
            ("ack_batch", self.ack_batch),
        ] {
            if v == 0 || v > 1000 {
                return Err(Error::Config(format!("{name} must be between 1 and 1000")));
            }
        }
        Ok(())
    }
}

/// Builder methods, one per field, for code outside this crate (the struct
/// is `#[non_exhaustive]`, so it cannot be built with a literal there):
///
/// ```
/// use jobstream_core::Limits;
///
/// let l = Limits::default().max_deliveries(3).ack_batch(100);
/// assert!(l.validate().is_ok());
/// ```
impl Limits {
    /// Sets `max_payload_bytes`: the largest encoded payload a producer
    /// accepts, bytes.
    pub fn max_payload_bytes(mut self, n: usize) -> Self {
        self.max_payload_bytes = n;
        self
    }

    /// Sets `max_deliveries`: deliveries without an outcome before a job goes
    /// to dead as `abandoned`.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n;
        self
    }

    /// Sets `dead_max_len`: the approximate cap on the dead stream's length (0
    /// = unbounded).
    pub fn dead_max_len(mut self, n: u64) -> Self {
        self.dead_max_len = n;
        self
    }

    /// Sets `promote_batch`: jobs moved per promote script call.
    pub fn promote_batch(mut self, n: usize) -> Self {
        self.promote_batch = n;
        self
    }

    /// Sets `reclaim_batch`: jobs claimed per reclaim script call.
    pub fn reclaim_batch(mut self, n: usize) -> Self {
        self.reclaim_batch = n;
        self
    }

    /// Sets `ack_batch`: outcomes written per ack script call.
    pub fn ack_batch(mut self, n: usize) -> Self {
        self.ack_batch = n;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Timings::default().validate().unwrap();
        Limits::default().validate().unwrap();
    }

    #[test]
    fn a_lease_refresh_too_close_to_the_visibility_timeout_is_refused() {
        let t = Timings {
            lease_refresh: Duration::from_secs(20),
            ..Timings::default()
        };
        assert!(
            t.validate()
                .unwrap_err()
                .to_string()
                .contains("lease_refresh")
        );
    }

    #[test]
    fn documented_table_matches_the_defaults() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/configuration.md"
        ))
        .unwrap();
        let t = Timings::default();
        let l = Limits::default();
        for (name, value) in [
            ("block", format!("{:?}", t.block)),
            ("visibility_timeout", format!("{:?}", t.visibility_timeout)),
            ("lease_refresh", format!("{:?}", t.lease_refresh)),
            ("reclaim_interval", format!("{:?}", t.reclaim_interval)),
            ("promote_interval", format!("{:?}", t.promote_interval)),
            ("shutdown_grace", format!("{:?}", t.shutdown_grace)),
            ("shutdown_flush", format!("{:?}", t.shutdown_flush)),
            ("response_timeout", format!("{:?}", t.response_timeout)),
            ("connect_timeout", format!("{:?}", t.connect_timeout)),
            ("reconnect_min", format!("{:?}", t.reconnect_min)),
            ("reconnect_max", format!("{:?}", t.reconnect_max)),
            ("consumer_idle_reap", format!("{:?}", t.consumer_idle_reap)),
            ("max_payload_bytes", l.max_payload_bytes.to_string()),
            ("max_deliveries", l.max_deliveries.to_string()),
            ("dead_max_len", l.dead_max_len.to_string()),
            ("promote_batch", l.promote_batch.to_string()),
            ("reclaim_batch", l.reclaim_batch.to_string()),
            ("ack_batch", l.ack_batch.to_string()),
        ] {
            let row = format!("| `{name}` | `{value}` |");
            assert!(
                doc.contains(&row),
                "docs/configuration.md lacks the row {row}"
            );
        }
    }
}
