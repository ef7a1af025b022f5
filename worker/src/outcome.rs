//! Classify, then act: the fate of a finished attempt as a pure function.
//! One script applies each disposition (see `acker.rs`).

use std::time::Duration;

use jobstream_core::RetryPolicy;

use crate::job_error::{FailureKind, JobError};

/// Why a job went to the dead-letter stream (the `reason` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadReason {
    /// Every attempt failed.
    Exhausted,
    /// The handler said no retry can help.
    Permanent,
    /// Delivered too often without an outcome (its workers kept dying).
    Abandoned,
    /// The entry or its payload could not be decoded.
    Malformed,
    /// No handler serves the job's type.
    UnknownType,
    /// Not started by its start deadline (`deadline_ms`).
    Expired,
    /// Written in a wire-format version this worker does not know (field
    /// `wire_version`): kept whole for a newer worker, after a replay.
    UnsupportedVersion,
}

impl DeadReason {
    /// The value written into the `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::Exhausted => "exhausted",
            DeadReason::Permanent => "permanent",
            DeadReason::Abandoned => "abandoned",
            DeadReason::Malformed => "malformed",
            DeadReason::UnknownType => "unknown_type",
            DeadReason::Expired => "expired",
            DeadReason::UnsupportedVersion => "unsupported_version",
        }
    }
}

/// What to do with a job after an attempt.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Disposition {
    /// Done: acknowledge and delete.
    Ack,
    /// Drop without retry; counted as discarded.
    Discard,
    /// Drop without retry; counted as cancelled.
    Cancel,
    /// Run again after `delay`, as attempt + 1.
    Retry {
        /// Wait before the next attempt.
        delay: Duration,
    },
    /// Move to the dead-letter stream.
    Dead {
        /// Why.
        reason: DeadReason,
    },
    /// An upstream rate limit ([`JobError::rate_limited`]): hold the job's
    /// key back fleet-wide for `retry_after` and run the job again after
    /// it, as the same attempt (no attempt spent, whatever is left).
    Hold {
        /// How long the key is held.
        retry_after: Duration,
    },
}

/// The disposition of attempt `attempt` (1-based) that ended with `result`,
/// under `policy` and the job's own `max_attempts` override. `unit` is a
/// random number in `[0, 1)` for the jitter.
pub fn disposition(
    result: &Result<(), JobError>,
    attempt: u32,
    job_max_attempts: Option<u32>,
    policy: &RetryPolicy,
    unit: f64,
) -> Disposition {
    let err = match result {
        Ok(()) => return Disposition::Ack,
        Err(e) => e,
    };
    let attempts_left = policy.has_attempts_left(attempt, job_max_attempts);
    match err.kind() {
        FailureKind::Discard => Disposition::Discard,
        FailureKind::Cancelled => Disposition::Cancel,
        FailureKind::RateLimited(retry_after) => Disposition::Hold { retry_after },
        FailureKind::Permanent => Disposition::Dead {
            reason: DeadReason::Permanent,
        },
        FailureKind::Malformed => Disposition::Dead {
            reason: DeadReason::Malformed,
        },
        FailureKind::Retry | FailureKind::RetryAfter(_) if !attempts_left => Disposition::Dead {
            reason: DeadReason::Exhausted,
        },
        FailureKind::RetryAfter(delay) => Disposition::Retry { delay },
        FailureKind::Retry => Disposition::Retry {
            delay: policy.delay(attempt, unit),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::exponential(3, Duration::from_secs(2), Duration::from_secs(60))
    }

    /// Every kind of failure, at every attempt position, with and without a
    /// per-job override.
    #[test]
    fn every_failure_kind_at_every_attempt_position() {
        let kinds = [
            JobError::retry("x"),
            JobError::retry_after(Duration::from_secs(7), "x"),
            JobError::permanent("x"),
            JobError::discard("x"),
            JobError::cancelled(),
            JobError::malformed("x"),
            JobError::timeout(Duration::from_secs(1)),
            JobError::panic("boom".into()),
            JobError::rate_limited(Duration::from_secs(3)),
        ];
        for job_max in [None, Some(1), Some(5)] {
            let max = job_max.unwrap_or(3);
            for attempt in 1..=6 {
                for err in &kinds {
                    let d = disposition(&Err(err.clone()), attempt, job_max, &policy(), 1.0);
                    let left = attempt < max;
                    let expected = match err.kind() {
                        FailureKind::Discard => Disposition::Discard,
                        FailureKind::Cancelled => Disposition::Cancel,
                        // No attempt spent: the same at every position.
                        FailureKind::RateLimited(retry_after) => Disposition::Hold { retry_after },
                        FailureKind::Permanent => Disposition::Dead {
                            reason: DeadReason::Permanent,
                        },
                        FailureKind::Malformed => Disposition::Dead {
                            reason: DeadReason::Malformed,
                        },
                        _ if !left => Disposition::Dead {
                            reason: DeadReason::Exhausted,
                        },
                        FailureKind::RetryAfter(d) => Disposition::Retry { delay: d },
                        FailureKind::Retry => Disposition::Retry {
                            delay: policy().delay(attempt, 1.0),
                        },
                    };
                    assert_eq!(d, expected, "{err} attempt {attempt} override {job_max:?}");
                }
                assert_eq!(
                    disposition(&Ok(()), attempt, job_max, &policy(), 0.3),
                    Disposition::Ack
                );
            }
        }
    }

    #[test]
    fn retry_waits_grow_with_the_attempt() {
        let p = policy();
        let d = |a| match disposition(&Err(JobError::retry("x")), a, Some(10), &p, 1.0) {
            Disposition::Retry { delay } => delay,
            other => panic!("{other:?}"),
        };
        assert_eq!(d(1), Duration::from_secs(2));
        assert_eq!(d(2), Duration::from_secs(4));
        assert_eq!(d(3), Duration::from_secs(8));
    }

    #[test]
    fn timeouts_and_panics_are_retryable_with_their_class() {
        assert_eq!(JobError::timeout(Duration::from_secs(1)).class(), "timeout");
        assert_eq!(JobError::panic("p".into()).class(), "panic");
        assert_eq!(JobError::timeout(Duration::ZERO).kind(), FailureKind::Retry);
    }

    #[test]
    fn anyhow_errors_convert_with_their_cause_chain() {
        fn fails() -> Result<(), JobError> {
            let e = anyhow::anyhow!("disk full").context("writing the report");
            Err(e)?;
            Ok(())
        }
        let e = fails().unwrap_err();
        assert_eq!(e.kind(), FailureKind::Retry);
        assert_eq!(e.message(), "writing the report: disk full");
    }

    #[test]
    fn any_std_error_converts_to_a_retryable_failure() {
        let e: JobError = std::io::Error::other("disk").into();
        assert_eq!(e.kind(), FailureKind::Retry);
        assert!(e.message().contains("disk"));
    }
}
