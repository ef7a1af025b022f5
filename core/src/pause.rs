//! Paused queues: `jobstream queue pause Q` stops every worker of the
//! fleet from fetching Q's jobs (within a second), and `resume` starts
//! them again. Jobs already running finish; enqueues, scheduled jobs
//! falling due and dead-letter tools go on as usual, so a paused queue
//! just grows.
//!
//! - `PREFIX:paused`: hash, queue name → when it was paused (server clock,
//!   unix ms). A queue is paused while its field exists.
//!
//! One fleet-wide key (no hash tag, never used in a script) so that a
//! worker reads the state of all its queues with one `HMGET`, four times
//! a second.

use std::collections::HashMap;

use crate::error::Result;
use crate::store::QueueStore;

/// How often workers read the paused queues: a pause takes effect on every
/// worker within this, plus a round trip.
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// A pause time written by hand that is not a number still means paused.
fn since(at: &str) -> u64 {
    at.trim().parse().unwrap_or(0)
}

impl QueueStore {
    /// Pauses this queue fleet-wide. Returns false when it was already
    /// paused (its pause time is kept).
    pub async fn pause(&self) -> Result<bool> {
        let now = self.redis().server_now_ms().await?;
        let mut cmd = redis::cmd("HSETNX");
        cmd.arg(self.keys().paused())
            .arg(self.keys().name().as_str())
            .arg(now);
        let added: i64 = self.query("HSETNX", &cmd).await?;
        Ok(added == 1)
    }

    /// Resumes this queue. Returns false when it was not paused.
    pub async fn resume(&self) -> Result<bool> {
        let mut cmd = redis::cmd("HDEL");
        cmd.arg(self.keys().paused())
            .arg(self.keys().name().as_str());
        let removed: i64 = self.query("HDEL", &cmd).await?;
        Ok(removed == 1)
    }

    /// When this queue was paused (unix ms), or None when it is not.
    pub async fn paused_since(&self) -> Result<Option<u64>> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.keys().paused())
            .arg(self.keys().name().as_str());
        let at: Option<String> = self.query("HGET", &cmd).await?;
        Ok(at.as_deref().map(since))
    }

    /// Which of `queues` (of this store's prefix) are paused, in order:
    /// one `HMGET` of just those fields, however many queues the fleet
    /// has paused.
    pub async fn paused_among(&self, queues: &[&str]) -> Result<Vec<bool>> {
        if queues.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(self.keys().paused()).arg(queues);
        let values: Vec<redis::Value> = self.query("HMGET", &cmd).await?;
        Ok(values
            .iter()
            .map(|v| !matches!(v, redis::Value::Nil))
            .collect())
    }

    /// Every paused queue (of this store's prefix), with when it was
    /// paused (unix ms): one `HGETALL`.
    pub async fn paused_queues(&self) -> Result<HashMap<String, u64>> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys().paused());
        let all: HashMap<String, String> = self.query("HGETALL", &cmd).await?;
        Ok(all.into_iter().map(|(q, at)| (q, since(&at))).collect())
    }
}
