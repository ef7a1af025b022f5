//! Fleet-wide rate limits: at most `limit` jobs of a queue start per
//! `per`, across every worker, with a `burst` that may start at once after
//! a quiet spell. Enforced in Redis by `rate-1` (GCRA on the server's
//! clock): a worker takes tokens before it fetches and fetches no more
//! than it was granted, so a job held back by the limit simply waits in
//! the queue: it is not a failure and spends no attempt.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::scripts;
use crate::store::QueueStore;

/// A rate limit: `limit` jobs per `per`, with a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    limit: u32,
    per: Duration,
    burst: u32,
}

impl RateLimit {
    /// At most `limit` jobs per `per` (e.g. `RateLimit::new(100,
    /// Duration::from_secs(1))`), with a burst of a tenth of a second's
    /// worth (at least 1): the tokens a worker can take in one fetch after
    /// a quiet spell.
    ///
    /// # Errors
    ///
    /// `limit` of 0, or `per` shorter than a millisecond, or a rate above
    /// a million per second.
    pub fn new(limit: u32, per: Duration) -> Result<Self> {
        if limit == 0 || per < Duration::from_millis(1) {
            return Err(Error::Config(format!(
                "rate limit {limit} per {per:?}: need at least 1 job per at least 1 ms"
            )));
        }
        let r = Self {
            limit,
            per,
            burst: 1,
        };
        if r.interval_us() < 1 {
            return Err(Error::Config(format!(
                "rate limit {limit} per {per:?}: more than a million per second"
            )));
        }
        let tenth = (f64::from(limit) * 0.1 / per.as_secs_f64()).floor() as u32;
        Ok(Self {
            burst: tenth.max(1),
            ..r
        })
    }

    /// At most `limit` jobs per second.
    ///
    /// # Errors
    ///
    /// As [`RateLimit::new`].
    pub fn per_second(limit: u32) -> Result<Self> {
        Self::new(limit, Duration::from_secs(1))
    }

    /// At most `burst` jobs (at least 1) start at once after a quiet spell.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = burst.max(1);
        self
    }

    /// Jobs per [`RateLimit::per`].
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The period.
    pub fn per(&self) -> Duration {
        self.per
    }

    /// The burst, jobs.
    pub fn burst_size(&self) -> u32 {
        self.burst
    }

    /// Microseconds between tokens.
    fn interval_us(&self) -> u64 {
        (self.per.as_micros() / u128::from(self.limit)).min(u128::from(u64::MAX)) as u64
    }
}

impl QueueStore {
    /// Script `rate-1`: takes up to `want` tokens of `limit` (this queue's
    /// limiter). Returns how many were granted and, when none was, how
    /// long until one is due.
    pub async fn take_tokens(&self, limit: &RateLimit, want: usize) -> Result<(usize, Duration)> {
        let (granted, wait_ms): (u64, u64) = self
            .eval(&scripts::RATE, |inv| {
                inv.key(self.keys().rate())
                    .arg(limit.interval_us())
                    .arg(limit.burst)
                    .arg(want.max(1));
            })
            .await?;
        Ok((granted as usize, Duration::from_millis(wait_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_bursts_default_to_a_tenth_of_a_second() {
        let r = RateLimit::per_second(100).unwrap();
        assert_eq!((r.interval_us(), r.burst_size()), (10_000, 10));
        assert_eq!(RateLimit::per_second(5).unwrap().burst_size(), 1);
        assert_eq!(
            RateLimit::new(60, Duration::from_secs(60))
                .unwrap()
                .interval_us(),
            1_000_000
        );
        assert!(RateLimit::per_second(0).is_err());
        assert!(RateLimit::new(1, Duration::from_micros(10)).is_err());
        assert!(RateLimit::per_second(2_000_000).is_err());
        assert_eq!(RateLimit::per_second(100).unwrap().burst(0).burst_size(), 1);
    }
}
