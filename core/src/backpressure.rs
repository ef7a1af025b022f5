//! Backpressure and load shedding: per-queue limits on the undelivered
//! backlog and on the age of the oldest undelivered job, kept in Redis
//! (`PREFIX:{Q}:limits`) so every producer of the fleet, in any language,
//! sees the same ones, and enforced at enqueue by the script `admit-4` in
//! one atomic step. See docs/flow-control.md.

use redis::Value;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::reply;
use crate::scripts;
use crate::store::QueueStore;

/// What a queue with limits does with jobs that would break them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Refuse the jobs: the producer returns [`Error::QueueFull`] with the
    /// current depth.
    #[default]
    Reject,
    /// Admit the jobs and drop the oldest undelivered ones (never one a
    /// worker holds), counted in `shed`; kept in `dead` with reason `shed`
    /// when `shed_to_dead` is set.
    Shed,
    /// Refuse like `reject`; the Rust producer retries with backoff for up
    /// to `ProducerOptions::backpressure_wait`, then returns
    /// [`Error::QueueFull`].
    Wait,
}

impl OverflowPolicy {
    /// The name written in the `policy` field.
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowPolicy::Reject => "reject",
            OverflowPolicy::Shed => "shed",
            OverflowPolicy::Wait => "wait",
        }
    }

    /// Parses a `policy` field (`reject`, `shed` or `wait`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "reject" => Some(OverflowPolicy::Reject),
            "shed" => Some(OverflowPolicy::Shed),
            "wait" => Some(OverflowPolicy::Wait),
            _ => None,
        }
    }
}

impl std::fmt::Display for OverflowPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The limits of one queue, as `PREFIX:{Q}:limits` holds them.
///
/// ```
/// use std::time::Duration;
/// use jobstream_core::backpressure::{OverflowPolicy, QueueLimits};
///
/// let limits = QueueLimits::default()
///     .max_ready(10_000)
///     .max_age(Duration::from_secs(300))
///     .policy(OverflowPolicy::Shed)
///     .shed_to_dead(true);
/// assert_eq!(limits.max_age_ms, Some(300_000));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct QueueLimits {
    /// Most undelivered jobs in `ready` (field `max_ready`).
    pub max_ready: Option<u64>,
    /// Oldest undelivered job's greatest age, ms (field `max_age_ms`).
    pub max_age_ms: Option<u64>,
    /// What happens to jobs over a limit (field `policy`).
    pub policy: OverflowPolicy,
    /// Shed jobs are kept in `dead` with reason `shed` (field
    /// `shed_to_dead` = `1`) instead of dropped.
    pub shed_to_dead: bool,
}

impl QueueLimits {
    /// Sets `max_ready`: the most undelivered jobs.
    pub fn max_ready(mut self, n: u64) -> Self {
        self.max_ready = Some(n);
        self
    }

    /// Sets `max_age_ms`: the oldest undelivered job's greatest age.
    pub fn max_age(mut self, age: std::time::Duration) -> Self {
        self.max_age_ms = Some(u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the policy.
    pub fn policy(mut self, policy: OverflowPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets `shed_to_dead`.
    pub fn shed_to_dead(mut self, keep: bool) -> Self {
        self.shed_to_dead = keep;
        self
    }

    /// Refuses limits that cannot work: none set, or a limit of 0.
    pub fn validate(&self) -> Result<()> {
        if self.max_ready.is_none() && self.max_age_ms.is_none() {
            return Err(Error::Config(
                "queue limits need max_ready or max_age (or clear them)".into(),
            ));
        }
        if self.max_ready == Some(0) || self.max_age_ms == Some(0) {
            return Err(Error::Config(
                "max_ready and max_age must be at least 1 (use pause to stop a queue)".into(),
            ));
        }
        Ok(())
    }

    /// Reads the fields of a `limits` hash; `None` when it sets no limit.
    /// Unknown fields are ignored; an unknown policy reads as `reject`
    /// (what `admit-4` does with it). A limit is read only when it is 1 to
    /// 15 decimal digits, exactly as `admit-4` reads it (`1000.0`, `1e3`,
    /// `0x10`, ` 10`, `+5`, `-1` are no limit on both sides).
    pub fn from_fields(fields: &[(String, String)]) -> Option<Self> {
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let num = |k: &str| {
            get(k)
                .filter(|v| !v.is_empty() && v.len() <= 15 && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let limits = Self {
            max_ready: num("max_ready"),
            max_age_ms: num("max_age_ms"),
            policy: get("policy")
                .and_then(OverflowPolicy::parse)
                .unwrap_or_default(),
            shed_to_dead: get("shed_to_dead") == Some("1"),
        };
        (limits.max_ready.is_some() || limits.max_age_ms.is_some()).then_some(limits)
    }

    fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut f = Vec::new();
        if let Some(n) = self.max_ready {
            f.push(("max_ready", n.to_string()));
        }
        if let Some(ms) = self.max_age_ms {
            f.push(("max_age_ms", ms.to_string()));
        }
        f.push(("policy", self.policy.as_str().to_owned()));
        f.push((
            "shed_to_dead",
            if self.shed_to_dead { "1" } else { "0" }.into(),
        ));
        f
    }
}

/// What one `admit-4` call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The jobs were added.
    Admitted {
        /// Their `ready` entry ids, in order.
        entry_ids: Vec<String>,
        /// Entries shed by this call (policy `shed`).
        shed: u64,
    },
    /// The jobs were refused; nothing was added.
    Refused {
        /// The undelivered backlog.
        depth: u64,
        /// `max_ready`, if set.
        max_ready: Option<u64>,
        /// The oldest undelivered job's age, ms.
        oldest_age_ms: u64,
        /// `max_age_ms`, if set.
        max_age_ms: Option<u64>,
        /// The queue's policy (`reject` or `wait`).
        policy: OverflowPolicy,
    },
}

impl QueueStore {
    /// The queue's limits; `None` when it has none.
    pub async fn limits(&self) -> Result<Option<QueueLimits>> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys().limits());
        let fields: Vec<(String, String)> = self.query("HGETALL", &cmd).await?;
        Ok(QueueLimits::from_fields(&fields))
    }

    /// Whether the queue has a limits hash (`EXISTS`): the producer's
    /// cheap check, cached, before it takes the `admit-4` path.
    pub async fn has_limits(&self) -> Result<bool> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.keys().limits());
        let n: i64 = self.query("EXISTS", &cmd).await?;
        Ok(n > 0)
    }

    /// Replaces the queue's limits (`DEL` + `HSET` in one `MULTI`).
    pub async fn set_limits(&self, limits: &QueueLimits) -> Result<()> {
        limits.validate()?;
        let key = self.keys().limits();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("DEL").arg(key).ignore();
        let hset = pipe.cmd("HSET").arg(key);
        for (k, v) in limits.to_fields() {
            hset.arg(k).arg(v);
        }
        hset.ignore();
        let mut conn = self.redis().shared();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.redis().error("set limits", e))
    }

    /// Removes the queue's limits; true when it had some.
    pub async fn clear_limits(&self) -> Result<bool> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.keys().limits());
        let n: i64 = self.query("DEL", &cmd).await?;
        Ok(n > 0)
    }

    /// Counts `n` refused jobs in `rejected` (a refusal `admit-4` was told
    /// not to count).
    pub async fn count_rejected(&self, n: u64) -> Result<()> {
        let mut cmd = redis::cmd("HINCRBY");
        cmd.arg(self.keys().stats()).arg("rejected").arg(n);
        self.query::<i64>("HINCRBY", &cmd).await.map(|_| ())
    }

    /// Adds jobs to run now through `admit-4`, which enforces the queue's
    /// limits: all of them admitted (shedding old ones under `shed`), or
    /// none. A refusal counts in `rejected` only when `count_refusal`.
    /// `now_ms` is the server's time (ages are measured against entry ids,
    /// which the server stamps). At most 1000 jobs per call.
    pub async fn admit(
        &self,
        jobs: &[&[(&[u8], &[u8])]],
        count_refusal: bool,
        now_ms: u64,
    ) -> Result<Admission> {
        let keys = self.keys();
        let op = scripts::ADMIT.name;
        let v: Value = self
            .eval(&scripts::ADMIT, |inv| {
                inv.key(keys.ready())
                    .key(keys.dead())
                    .key(keys.stats())
                    .key(keys.limits())
                    .arg(keys.name().as_str())
                    .arg(if count_refusal { "1" } else { "0" })
                    .arg(now_ms)
                    .arg(jobs.len());
                for fields in jobs {
                    inv.arg(fields.len());
                    for (k, v) in *fields {
                        inv.arg(*k).arg(*v);
                    }
                }
            })
            .await?;
        let items = reply::array(op, v)?;
        let int = |i: usize| -> Result<i64> {
            items
                .get(i)
                .ok_or_else(|| Error::protocol(op, "reply too short"))
                .and_then(|v| reply::int(op, v))
        };
        let opt = |n: i64| u64::try_from(n).ok();
        if int(0)? == 1 {
            let shed = int(1)?.max(0) as u64;
            let entry_ids = items
                .iter()
                .skip(2)
                .map(|v| reply::string(op, v.clone()))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Admission::Admitted { entry_ids, shed });
        }
        let policy = items
            .get(5)
            .and_then(|v| reply::string(op, v.clone()).ok())
            .and_then(|p| OverflowPolicy::parse(&p))
            .unwrap_or_default();
        Ok(Admission::Refused {
            depth: int(1)?.max(0) as u64,
            max_ready: opt(int(2)?),
            oldest_age_ms: int(3)?.max(0) as u64,
            max_age_ms: opt(int(4)?),
            policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_round_trip_through_their_fields() {
        let l = QueueLimits::default()
            .max_ready(5)
            .max_age(std::time::Duration::from_secs(2))
            .policy(OverflowPolicy::Shed)
            .shed_to_dead(true);
        let fields: Vec<(String, String)> = l
            .to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(QueueLimits::from_fields(&fields), Some(l));
        assert_eq!(QueueLimits::from_fields(&[]), None);
        assert!(QueueLimits::default().validate().is_err());
        assert!(QueueLimits::default().max_ready(0).validate().is_err());
    }
}
