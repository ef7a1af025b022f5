//! Retry policy: how many attempts, and how long to wait between them. Pure:
//! the random part of the jitter is passed in, so tests are exact.

use std::time::Duration;

/// How long to wait before the next attempt.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Backoff {
    /// `base * factor^(attempt-1)`, capped at `max`, with "equal jitter":
    /// the wait is uniformly drawn from `[d/2, d]`.
    ///
    /// Why equal jitter: full jitter (`[0, d]`) spreads retries best but
    /// can bring a job back almost at once, hammering a dependency that just
    /// failed; no jitter makes every job that failed together retry together.
    /// Equal jitter keeps at least half the nominal wait and spreads the rest.
    Exponential {
        /// Wait before the second attempt (before jitter).
        base: Duration,
        /// Growth per attempt.
        factor: f64,
        /// Ceiling of the nominal wait.
        max: Duration,
    },
    /// Explicit waits: the n-th entry before attempt n+1; the last entry
    /// repeats once the list runs out. Jitter of 10% downwards is added so a
    /// burst of failures does not return in lock step.
    Schedule(Vec<Duration>),
    /// The same wait every time, no jitter (for tests and special cases).
    Fixed(Duration),
}

/// How a job type retries.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Total handler runs allowed, the first included. 1 = never retry.
    pub max_attempts: u32,
    /// Wait between attempts.
    pub backoff: Backoff,
}

impl Default for RetryPolicy {
    /// 10 attempts; 1 s doubling to a 10 min cap: about 4 to 8.5 minutes of
    /// waiting in all (511 s nominal, equal jitter).
    fn default() -> Self {
        Self {
            max_attempts: 10,
            backoff: Backoff::Exponential {
                base: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(600),
            },
        }
    }
}

impl RetryPolicy {
    /// A policy of `max_attempts` with exponential backoff.
    pub fn exponential(max_attempts: u32, base: Duration, max: Duration) -> Self {
        Self {
            max_attempts,
            backoff: Backoff::Exponential {
                base,
                factor: 2.0,
                max,
            },
        }
    }

    /// A policy that waits the given durations in turn; attempts = waits + 1.
    pub fn schedule(waits: Vec<Duration>) -> Self {
        Self {
            max_attempts: waits.len() as u32 + 1,
            backoff: Backoff::Schedule(waits),
        }
    }

    /// Never retry.
    pub fn no_retry() -> Self {
        Self {
            max_attempts: 1,
            backoff: Backoff::Fixed(Duration::ZERO),
        }
    }

    /// Sets `max_attempts`: handler runs allowed in all, the first included
    /// (1 = never retry).
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets `backoff`: the wait between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// True when `attempt` (1-based, the one that just failed) may be
    /// followed by another, given an optional per-job override.
    pub fn has_attempts_left(&self, attempt: u32, job_override: Option<u32>) -> bool {
        attempt < job_override.unwrap_or(self.max_attempts).max(1)
    }

    /// The wait after failed attempt `attempt` (1-based); `unit` is a random
    /// number in `[0, 1)`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let unit = unit.clamp(0.0, 1.0);
        match &self.backoff {
            Backoff::Fixed(d) => *d,
            Backoff::Exponential { base, factor, max } => {
                let exp = attempt.saturating_sub(1).min(64) as i32;
                let nominal = base.as_secs_f64() * factor.max(1.0).powi(exp);
                let nominal = nominal.min(max.as_secs_f64());
                Duration::from_secs_f64(nominal / 2.0 + nominal / 2.0 * unit)
            }
            Backoff::Schedule(waits) => {
                let Some(last) = waits.last() else {
                    return Duration::ZERO;
                };
                let idx = (attempt.saturating_sub(1) as usize).min(waits.len() - 1);
                let d = waits.get(idx).unwrap_or(last).as_secs_f64();
                Duration::from_secs_f64(d * (0.9 + 0.1 * unit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn exponential_doubles_then_caps_with_equal_jitter() {
        let p = RetryPolicy::exponential(10, secs(1.0), secs(10.0));
        assert_eq!(p.delay(1, 0.0), secs(0.5));
        assert_eq!(p.delay(1, 1.0), secs(1.0));
        assert_eq!(p.delay(2, 1.0), secs(2.0));
        assert_eq!(p.delay(3, 0.5), secs(3.0));
        assert_eq!(p.delay(4, 1.0), secs(8.0));
        assert_eq!(p.delay(5, 1.0), secs(10.0));
        assert_eq!(p.delay(60, 0.0), secs(5.0));
        assert_eq!(p.delay(u32::MAX, 1.0), secs(10.0));
    }

    #[test]
    fn schedule_follows_the_list_and_repeats_the_last_entry() {
        let p = RetryPolicy::schedule(vec![secs(5.0), secs(30.0), secs(120.0)]);
        assert_eq!(p.max_attempts, 4);
        assert_eq!(p.delay(1, 1.0), secs(5.0));
        assert_eq!(p.delay(2, 1.0), secs(30.0));
        assert_eq!(p.delay(3, 0.0), secs(108.0));
        assert_eq!(p.delay(9, 1.0), secs(120.0));
        assert_eq!(RetryPolicy::schedule(vec![]).delay(1, 1.0), Duration::ZERO);
    }

    #[test]
    fn attempts_left_honours_the_job_override() {
        let p = RetryPolicy::exponential(3, secs(1.0), secs(1.0));
        assert!(p.has_attempts_left(1, None));
        assert!(p.has_attempts_left(2, None));
        assert!(!p.has_attempts_left(3, None));
        assert!(!p.has_attempts_left(1, Some(1)));
        assert!(!p.has_attempts_left(1, Some(0)));
        assert!(p.has_attempts_left(4, Some(5)));
        assert!(!RetryPolicy::no_retry().has_attempts_left(1, None));
    }
}
