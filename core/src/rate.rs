//! Fleet-wide rate limits: at most `limit` jobs of a queue start per
//! `per`, across every worker, with a `burst` that may start at once after
//! a quiet spell. Enforced in Redis by `rate-1` (GCRA on the server's
//! clock): a worker takes tokens before it fetches and fetches no more
//! than it was granted, so a job held back by the limit simply waits in
//! the queue: it is not a failure and spends no attempt.
//!
//! Limits per job type and per rate key, and holds (a key held back after
//! an upstream 429), are checked after a job is read, by `throttle-6`: the
//! job runs, or is deferred to `scheduled` with its fields unchanged (no
//! attempt spent, counted `throttled`). `hold-4` sets a hold and defers
//! the job that met the 429 (counted `held`). See docs/flow-control.md.

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

/// Longest hold, ms (a day): a longer `retry_after` holds for this long.
pub const MAX_HOLD_MS: u64 = 24 * 3600 * 1000;

/// The hold field of a job in `PREFIX:{Q}:holds`: `key:<K>` for a job
/// with a rate key `K`, else `type:<T>` for its job type `T`.
pub fn hold_field(rate_key: Option<&str>, job_type: &str) -> String {
    match rate_key {
        Some(k) => format!("key:{k}"),
        None => format!("type:{job_type}"),
    }
}

/// What `throttle-6` decided for one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Throttled {
    /// Run it now: a token was taken from each of its buckets.
    Run,
    /// Deferred to `scheduled`, due at `due_ms` (unix ms, server clock);
    /// `held` when by a hold of its key, else by a limit.
    Deferred {
        /// When it is due again, unix ms.
        due_ms: u64,
        /// Deferred by a hold (not by a limit).
        held: bool,
    },
    /// The entry is not pending on this consumer (lease lost): nothing
    /// changed.
    Lost,
}

/// One job to check with [`QueueStore::throttle`].
#[derive(Debug, Clone, Copy)]
pub struct ThrottleJob<'a> {
    /// This worker's consumer name.
    pub consumer: &'a str,
    /// The job's entry id in `ready`.
    pub entry_id: &'a str,
    /// The job's id (its `id` field, else the entry id): its token
    /// reservations are kept under it while it is deferred.
    pub job_id: &'a str,
    /// Its `scheduled` member if deferred (`fields_to_msgpack` of
    /// [`Envelope::deferred`](crate::envelope::Envelope::deferred)).
    pub member: &'a [u8],
    /// Its job type.
    pub job_type: &'a str,
    /// Its rate key, if any.
    pub rate_key: Option<&'a str>,
    /// Check the hold of its key ([`hold_field`]).
    pub check_hold: bool,
    /// The limit of its job type, if the queue has one.
    pub type_limit: Option<&'a RateLimit>,
    /// The per-key limit of the queue, if the job has a rate key.
    pub key_limit: Option<&'a RateLimit>,
    /// A random number in 0..1_000_000: where in the spread it lands if
    /// deferred.
    pub spread: u32,
}

impl QueueStore {
    /// Script `throttle-6`: lets the job run, or defers it (its hold, its
    /// type's and its key's buckets; see the script).
    pub async fn throttle(&self, job: &ThrottleJob<'_>) -> Result<Throttled> {
        let k = self.keys();
        let type_key = if job.type_limit.is_some() {
            k.rate_type(job.job_type)
        } else {
            k.rate()
        };
        let key_key = match (job.key_limit, job.rate_key) {
            (Some(_), Some(rk)) => k.rate_key(rk),
            _ => k.rate(),
        };
        let field = if job.check_hold {
            hold_field(job.rate_key, job.job_type)
        } else {
            String::new()
        };
        let key_limit = job.key_limit.filter(|_| job.rate_key.is_some());
        let (code, due): (i64, u64) = self
            .eval(&scripts::THROTTLE, |inv| {
                inv.key(k.ready())
                    .key(k.scheduled())
                    .key(k.stats())
                    .key(k.holds())
                    .key(type_key)
                    .key(key_key)
                    .arg(self.group())
                    .arg(job.consumer)
                    .arg(job.entry_id)
                    .arg(job.member)
                    .arg(field)
                    .arg(job.type_limit.map_or(0, RateLimit::interval_us))
                    .arg(job.type_limit.map_or(1, |l| l.burst))
                    .arg(key_limit.map_or(0, RateLimit::interval_us))
                    .arg(key_limit.map_or(1, |l| l.burst))
                    .arg(job.spread.min(999_999))
                    .arg(job.job_id);
            })
            .await?;
        Ok(match code {
            0 => Throttled::Run,
            1 | 2 => Throttled::Deferred {
                due_ms: due,
                held: code == 2,
            },
            _ => Throttled::Lost,
        })
    }

    /// Script `hold-4`: holds the hold field `field` back fleet-wide for
    /// `hold` (at most [`MAX_HOLD_MS`]; never shortening a longer hold) and defers the job (entry
    /// `entry_id`, `member` as for [`QueueStore::throttle`]) to the hold's
    /// end plus a spread (`spread` in 0..1_000_000). Returns whether the job
    /// was moved (false: not pending on this consumer, left alone) and the
    /// hold's end (unix ms, server clock).
    pub async fn hold(
        &self,
        consumer: &str,
        entry_id: &str,
        member: &[u8],
        field: &str,
        hold: Duration,
        spread: u32,
    ) -> Result<(bool, u64)> {
        let k = self.keys();
        let hold_ms = u64::try_from(hold.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_HOLD_MS);
        let (moved, until, _due): (i64, u64, u64) = self
            .eval(&scripts::HOLD, |inv| {
                inv.key(k.ready())
                    .key(k.scheduled())
                    .key(k.stats())
                    .key(k.holds())
                    .arg(self.group())
                    .arg(consumer)
                    .arg(entry_id)
                    .arg(member)
                    .arg(field)
                    .arg(hold_ms)
                    .arg(spread.min(999_999));
            })
            .await?;
        Ok((moved == 1, until))
    }

    /// The queue's held keys: hold field → until (unix ms, server clock),
    /// one `HGETALL` of `PREFIX:{Q}:holds` (expired fields included; the
    /// scripts remove them as they meet them).
    pub async fn holds(&self) -> Result<std::collections::HashMap<String, u64>> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.keys().holds());
        // Bytes, so a field written by hand that is not UTF-8 (or a value
        // that is not a number) is skipped rather than failing the read.
        let all: std::collections::HashMap<Vec<u8>, Vec<u8>> = self.query("HGETALL", &cmd).await?;
        Ok(all
            .into_iter()
            .filter_map(|(f, u)| {
                let until = std::str::from_utf8(&u).ok()?.trim().parse().ok()?;
                Some((String::from_utf8(f).ok()?, until))
            })
            .collect())
    }
}

/// The paused flags of `stores` (as [`QueueStore::paused_among`]) and each
/// one's held keys (as [`QueueStore::holds`]), in one round trip: one
/// pipeline of an `HMGET` of `PREFIX:paused` and an `HGETALL` of each
/// queue's `PREFIX:{Q}:holds`. All stores must share one connection and
/// prefix (one worker's).
pub async fn paused_and_holds(
    stores: &[QueueStore],
) -> Result<(Vec<bool>, Vec<std::collections::HashMap<String, u64>>)> {
    let Some(first) = stores.first() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let names: Vec<&str> = stores.iter().map(|s| s.keys().name().as_str()).collect();
    let mut pipe = redis::pipe();
    pipe.cmd("HMGET").arg(first.keys().paused()).arg(&names);
    for s in stores {
        pipe.cmd("HGETALL").arg(s.keys().holds());
    }
    let mut conn = first.redis().shared();
    let (paused, holds): (Vec<redis::Value>, Vec<redis::Value>) = {
        let mut all: Vec<redis::Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| first.redis().error("HMGET+HGETALL (pipeline)", e))?;
        if all.len() != stores.len() + 1 {
            return Err(Error::protocol(
                "HMGET+HGETALL (pipeline)",
                format!("{} replies to {} commands", all.len(), stores.len() + 1),
            ));
        }
        let holds = all.split_off(1);
        let paused = match all.pop() {
            Some(redis::Value::Array(v)) => v,
            _ => Vec::new(),
        };
        (paused, holds)
    };
    let flags = (0..stores.len())
        .map(|i| {
            paused
                .get(i)
                .is_some_and(|v| !matches!(v, redis::Value::Nil))
        })
        .collect();
    Ok((flags, holds.iter().map(decode_holds).collect()))
}

/// Hold fields and their ends from an `HGETALL` reply (RESP2 array or
/// RESP3 map); a field that is not UTF-8 or a value that is not a number
/// (written by hand) is skipped, never an error.
fn decode_holds(v: &redis::Value) -> std::collections::HashMap<String, u64> {
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let pairs: Vec<(&redis::Value, &redis::Value)> = match v {
        redis::Value::Array(items) => items.chunks_exact(2).map(|c| (&c[0], &c[1])).collect(),
        redis::Value::Map(items) => items.iter().map(|(k, v)| (k, v)).collect(),
        _ => Vec::new(),
    };
    pairs
        .into_iter()
        .filter_map(|(f, u)| Some((text(f)?, text(u)?.trim().parse().ok()?)))
        .collect()
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
