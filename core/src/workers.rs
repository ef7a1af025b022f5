//! Which workers are alive: every worker writes a heartbeat (every 5 s)
//! into two fleet-wide keys, so `jobstream workers` can list them with
//! when they were last seen, and tell the stale ones (killed, partitioned)
//! from the live ones without relying on the consumer group's idle times
//! (which differ between Redis versions).
//!
//! - `PREFIX:workers`: sorted set, member = consumer name, score = last
//!   heartbeat (server clock, unix ms).
//! - `PREFIX:workers:info`: hash, consumer name → JSON object (this
//!   module's [`WorkerInfo`]).
//!
//! No hash tag: fleet-wide keys, never used in a script with a queue's.

use serde::{Deserialize, Serialize};

use crate::connection::Redis;
use crate::error::{Error, Result};

/// How often a worker writes its heartbeat.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A worker not seen for this long is stale (3 missed heartbeats).
pub const STALE_AFTER_MS: u64 = 15_000;

/// Heartbeats older than this are removed by any worker's heartbeat.
const FORGET_AFTER_MS: u64 = 24 * 3600 * 1000;

/// What a worker says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its consumer name (host name and a random suffix).
    pub name: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// Its slots.
    pub concurrency: usize,
    /// Jobs it held at the last heartbeat.
    pub busy: usize,
    /// When it started, unix ms.
    pub started_at_ms: u64,
    /// Its last heartbeat, unix ms (server clock; filled in when read).
    #[serde(default)]
    pub seen_at_ms: u64,
    /// The rate limits it enforces (set in its code, not stored elsewhere
    /// in Redis): for the dashboard. Absent from older workers' heartbeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimitInfo>,
}

/// One rate limit a worker enforces, as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RateLimitInfo {
    /// The queue.
    pub queue: String,
    /// `queue` (the queue's fleet-wide limit), `type` (per job type) or
    /// `key` (per rate key, each key its own budget).
    pub scope: String,
    /// The job type for `type`; empty otherwise.
    #[serde(default)]
    pub name: String,
    /// Jobs per `per_ms`.
    pub limit: u32,
    /// The period, ms.
    pub per_ms: u64,
    /// Jobs that may start at once after a quiet spell.
    pub burst: u32,
}

impl RateLimitInfo {
    /// The description of `limit` on `queue` for `scope` (`queue`, `type`
    /// or `key`) and `name` (the job type for `type`).
    pub fn new(queue: &str, scope: &str, name: &str, limit: &crate::RateLimit) -> Self {
        Self {
            queue: queue.to_owned(),
            scope: scope.to_owned(),
            name: name.to_owned(),
            limit: limit.limit(),
            per_ms: u64::try_from(limit.per().as_millis()).unwrap_or(u64::MAX),
            burst: limit.burst_size(),
        }
    }
}

impl WorkerInfo {
    /// A worker's description for its heartbeats.
    pub fn new(name: &str, queues: Vec<String>, concurrency: usize, started_at_ms: u64) -> Self {
        Self {
            name: name.to_owned(),
            host: name.rsplit_once('-').map_or(name, |(h, _)| h).to_owned(),
            pid: std::process::id(),
            queues,
            concurrency,
            busy: 0,
            started_at_ms,
            seen_at_ms: 0,
            rate_limits: Vec::new(),
        }
    }

    /// Sets the rate limits it describes.
    pub fn with_rate_limits(mut self, limits: Vec<RateLimitInfo>) -> Self {
        self.rate_limits = limits;
        self
    }
}

/// Writes `info`'s heartbeat at `now_ms`, and forgets workers silent for a
/// day. One pipeline.
pub async fn heartbeat(redis: &Redis, prefix: &str, info: &WorkerInfo, now_ms: u64) -> Result<()> {
    let json = serde_json::to_string(info).map_err(|e| Error::Encode(e.to_string()))?;
    let (set, hash) = (
        format!("{prefix}:workers"),
        format!("{prefix}:workers:info"),
    );
    let cutoff = now_ms.saturating_sub(FORGET_AFTER_MS);
    let mut conn = redis.shared();
    let gone: Vec<String> = redis::cmd("ZRANGEBYSCORE")
        .arg(&set)
        .arg("-inf")
        .arg(format!("({cutoff}"))
        .arg("LIMIT")
        .arg(0)
        .arg(100)
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.error("ZRANGEBYSCORE", e))?;
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg(&set)
        .arg(now_ms)
        .arg(&info.name)
        .ignore();
    pipe.cmd("HSET")
        .arg(&hash)
        .arg(&info.name)
        .arg(json)
        .ignore();
    if !gone.is_empty() {
        pipe.cmd("ZREM").arg(&set).arg(&gone).ignore();
        pipe.cmd("HDEL").arg(&hash).arg(&gone).ignore();
    }
    pipe.query_async::<()>(&mut conn)
        .await
        .map_err(|e| redis.error("heartbeat", e))
}

/// Removes a worker that stopped cleanly.
pub async fn forget(redis: &Redis, prefix: &str, name: &str) -> Result<()> {
    let mut pipe = redis::pipe();
    pipe.cmd("ZREM")
        .arg(format!("{prefix}:workers"))
        .arg(name)
        .ignore();
    pipe.cmd("HDEL")
        .arg(format!("{prefix}:workers:info"))
        .arg(name)
        .ignore();
    let mut conn = redis.shared();
    pipe.query_async::<()>(&mut conn)
        .await
        .map_err(|e| redis.error("forget worker", e))
}

/// Every worker with a heartbeat, most recently seen first.
pub async fn list(redis: &Redis, prefix: &str) -> Result<Vec<WorkerInfo>> {
    let mut conn = redis.shared();
    let seen: Vec<(String, f64)> = redis::cmd("ZREVRANGE")
        .arg(format!("{prefix}:workers"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.error("ZREVRANGE", e))?;
    let mut out = Vec::with_capacity(seen.len());
    for (name, at) in seen {
        let json: Option<String> = redis::cmd("HGET")
            .arg(format!("{prefix}:workers:info"))
            .arg(&name)
            .query_async(&mut conn)
            .await
            .map_err(|e| redis.error("HGET", e))?;
        let mut info = json
            .and_then(|j| serde_json::from_str::<WorkerInfo>(&j).ok())
            .unwrap_or_else(|| WorkerInfo::new(&name, Vec::new(), 0, 0));
        info.seen_at_ms = at as u64;
        out.push(info);
    }
    Ok(out)
}
