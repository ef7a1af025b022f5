//! Failures on purpose, to show that retries are harmless: before the
//! transaction (a plain transient error) and after the commit (the payment
//! is applied, yet the job fails, as when an acknowledgement is lost).

use jobstream::JobError;

/// How often the handler fails on purpose, at each of its two points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    rate: f64,
}

impl Faults {
    /// No failures.
    pub fn none() -> Self {
        Self { rate: 0.0 }
    }

    /// Fails with probability `rate` (clamped to 0..=0.9, so every job
    /// gets through eventually) at each point.
    pub fn with_rate(rate: f64) -> Self {
        let rate = if rate.is_finite() {
            rate.clamp(0.0, 0.9)
        } else {
            0.0
        };
        Self { rate }
    }

    /// The probability of a failure at each point.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// A transient failure before anything is written: the retry simply
    /// does the work.
    pub fn before_transaction(&self) -> Result<(), JobError> {
        self.roll("injected failure before the transaction", "injected_before")
    }

    /// A failure after the commit: the payment is applied, but the job
    /// fails and runs again, as after a crash between commit and ack. The
    /// retry must find the `txn_id` and change nothing.
    pub fn after_commit(&self) -> Result<(), JobError> {
        self.roll(
            "injected failure after the commit (the payment is applied)",
            "injected_after",
        )
    }

    fn roll(&self, message: &'static str, class: &'static str) -> Result<(), JobError> {
        if self.rate > 0.0 && rand::random::<f64>() < self.rate {
            return Err(JobError::retry(message).with_class(class));
        }
        Ok(())
    }
}
