//! The job: apply one payment to an account.

use jobstream::{Job, JobError};
use serde::{Deserialize, Serialize};

/// Longest `txn_id` accepted: it is a primary key and goes into log lines.
pub const MAX_TXN_ID_LEN: usize = 128;

/// Add `amount_cents` to `account`'s balance, once per `txn_id`.
///
/// `txn_id` is the business key: the producer chooses it (an order
/// number, a bank reference) and sends the same one however often it
/// enqueues the payment. The job id cannot serve: a payment enqueued twice
/// (a retried enqueue, a double click) is two jobs with two job ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The payment's own id, unique per payment, chosen by the producer.
    pub txn_id: String,
    /// The account credited (or debited, when the amount is negative).
    pub account: String,
    /// The amount, in cents.
    pub amount_cents: i64,
}

impl Job for Payment {
    const NAME: &'static str = "apply_payment";
    const QUEUE: &'static str = "payments";
    // No options of its own: the worker sets timeout and retries from its
    // command line (`WorkerBuilder::default_options`), so the chaos test
    // can make retries fast.
}

impl Payment {
    /// Refuses what no retry can fix: an empty or overlong `txn_id`, an
    /// empty account. Such a job goes straight to the dead letters.
    pub fn validate(&self) -> Result<(), JobError> {
        if self.txn_id.is_empty() || self.txn_id.len() > MAX_TXN_ID_LEN {
            return Err(
                JobError::permanent(format!("txn_id must be 1 to {MAX_TXN_ID_LEN} bytes"))
                    .with_class("invalid_payment"),
            );
        }
        if self.account.is_empty() {
            return Err(JobError::permanent("no account").with_class("invalid_payment"));
        }
        Ok(())
    }
}
