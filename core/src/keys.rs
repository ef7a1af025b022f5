//! Every Redis key of a queue, built in one place.
//!
//! All keys of one queue carry the queue name as a Redis Cluster hash tag
//! (`PREFIX:{Q}:...`), so every script touches a single slot. The tag is
//! written by [`QueueKeys::new`] only; nothing else formats key names.

use crate::error::Error;

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "jobstream";

/// Longest queue name accepted.
pub const MAX_QUEUE_NAME_LEN: usize = 128;

/// A validated queue name: 1 to 128 characters out of `A-Z a-z 0-9 _ - . :`.
///
/// Braces are refused because they would change the cluster hash tag, and
/// spaces or control characters because they make keys hard to type in
/// `redis-cli`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QueueName(String);

impl QueueName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, Error> {
        let invalid = |reason: &'static str| Error::InvalidQueueName {
            name: name.chars().take(MAX_QUEUE_NAME_LEN + 8).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid("it is empty"));
        }
        if name.len() > MAX_QUEUE_NAME_LEN {
            return Err(invalid("it is longer than 128 bytes"));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')))
        {
            return Err(match bad {
                '{' | '}' => invalid("braces would break the Redis Cluster hash tag"),
                _ => invalid("only A-Z, a-z, 0-9, '_', '-', '.' and ':' are allowed"),
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for QueueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The keys of one queue. Cheap to clone; build once per queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    name: QueueName,
    base: String,
    ready: String,
    scheduled: String,
    dead: String,
    stats: String,
    meta: String,
    limits: String,
    registry: String,
    paused: String,
}

/// Checks a key prefix: 1 to 128 bytes, no braces (a brace would move the
/// Redis Cluster hash tag off the queue name, and scripts would touch
/// keys in several slots), no whitespace or control characters.
pub fn check_prefix(prefix: &str) -> Result<(), Error> {
    let bad = |why: &str| Err(Error::Config(format!("key prefix {prefix:?}: {why}")));
    if prefix.is_empty() || prefix.len() > 128 {
        return bad("must be 1 to 128 bytes");
    }
    if prefix.contains(['{', '}']) {
        return bad("must not contain braces (they would change the hash tag)");
    }
    if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain whitespace or control characters");
    }
    Ok(())
}

impl QueueKeys {
    /// Keys for `queue` under `prefix` (normally [`DEFAULT_PREFIX`]).
    pub fn new(prefix: &str, queue: &QueueName) -> Self {
        // The one place the hash tag is written.
        let base = format!("{prefix}:{{{}}}", queue.as_str());
        Self {
            name: queue.clone(),
            ready: format!("{base}:ready"),
            scheduled: format!("{base}:scheduled"),
            dead: format!("{base}:dead"),
            stats: format!("{base}:stats"),
            meta: format!("{base}:meta"),
            limits: format!("{base}:limits"),
            registry: format!("{prefix}:queues"),
            paused: format!("{prefix}:paused"),
            base,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &QueueName {
        &self.name
    }
    /// `PREFIX:{Q}:ready`: stream of jobs to run (consumer group inside).
    pub fn ready(&self) -> &str {
        &self.ready
    }
    /// `PREFIX:{Q}:scheduled`: zset of delayed and retry-waiting jobs.
    pub fn scheduled(&self) -> &str {
        &self.scheduled
    }
    /// `PREFIX:{Q}:dead`: stream of dead-lettered jobs.
    pub fn dead(&self) -> &str {
        &self.dead
    }
    /// `PREFIX:{Q}:stats`: hash of counters (processed, retried, dead, ...).
    pub fn stats(&self) -> &str {
        &self.stats
    }
    /// `PREFIX:{Q}:meta`: hash of per-queue settings and flags.
    pub fn meta(&self) -> &str {
        &self.meta
    }
    /// `PREFIX:{Q}:limits`: hash of the queue's backpressure limits
    /// (`max_ready`, `max_age_ms`, `policy`, `shed_to_dead`); absent when
    /// the queue has none. See docs/flow-control.md.
    pub fn limits(&self) -> &str {
        &self.limits
    }
    /// `PREFIX:{Q}:unique:KEY`: enqueue-time dedup reservation.
    pub fn unique(&self, key: &str) -> String {
        format!("{}:unique:{key}", self.base)
    }
    /// `PREFIX:{Q}:job:ID`: optional job state record.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.base)
    }
    /// `PREFIX:{Q}:done:ID`: list pushed once when a recorded job is
    /// final, for waiters (`BLMOVE` onto itself, so every waiter sees it).
    /// Its own namespace: under `job:` it could be another job's record
    /// (job `x`'s list would be the record of job `x:done`).
    pub fn job_done(&self, id: &str) -> String {
        format!("{}:done:{id}", self.base)
    }
    /// `PREFIX:{Q}:batch:B`: hash of batch `B` (counts, completion job).
    pub fn batch(&self, id: &str) -> String {
        format!("{}:batch:{id}", self.base)
    }
    /// `PREFIX:{Q}:batch:B:members`: set of member ids not yet final.
    pub fn batch_members(&self, id: &str) -> String {
        format!("{}:batch:{id}:members", self.base)
    }
    /// `PREFIX:{Q}:batch:B:failed`: set of member ids that did not complete.
    pub fn batch_failed(&self, id: &str) -> String {
        format!("{}:batch:{id}:failed", self.base)
    }
    /// `PREFIX:{Q}:rate`: the queue's fleet-wide rate limiter (`rate-1`).
    pub fn rate(&self) -> String {
        format!("{}:rate", self.base)
    }
    /// `PREFIX:{Q}:groups`: hash, group → number of its jobs admitted
    /// (see [`crate::groups`]).
    pub fn groups(&self) -> String {
        format!("{}:groups", self.base)
    }
    /// `PREFIX:{Q}:grouped`: hash, job id → group, for every admitted job
    /// of a group.
    pub fn grouped(&self) -> String {
        format!("{}:grouped", self.base)
    }
    /// `PREFIX:{Q}:group:G`: stream of group `G`'s waiting jobs.
    pub fn group(&self, group: &str) -> String {
        format!("{}:group:{group}", self.base)
    }
    /// `PREFIX:{Q}:rate:type:T`: the fleet-wide bucket of job type `T`'s
    /// rate limit (`throttle-6`): hash {`tat`, `next`}, unix µs.
    pub fn rate_type(&self, job_type: &str) -> String {
        format!("{}:rate:type:{job_type}", self.base)
    }
    /// `PREFIX:{Q}:rate:key:K`: the fleet-wide bucket of rate key `K`
    /// (`throttle-6`). `K` is a job's `rate_key` (1–256 bytes of text);
    /// braces in it cannot change the slot: the hash tag `{Q}` closes
    /// before it.
    pub fn rate_key(&self, key: &str) -> String {
        format!("{}:rate:key:{key}", self.base)
    }
    /// `PREFIX:{Q}:holds`: hash of held keys, hold field (`key:K` or
    /// `type:T`) → until (unix ms, server clock); set by `hold-4`, read
    /// by every worker of the queue every 250 ms.
    pub fn holds(&self) -> String {
        format!("{}:holds", self.base)
    }
    /// `PREFIX:{Q}:cancels`: zset of running jobs asked to cancel.
    pub fn cancels(&self) -> String {
        format!("{}:cancels", self.base)
    }
    /// `PREFIX:{Q}:cron`: hash of the cron schedules that enqueue into
    /// this queue, schedule name → last tick fired (unix ms); written by
    /// `cron-fire-2` only (see [`crate::cron`]).
    pub fn cron(&self) -> String {
        format!("{}:cron", self.base)
    }
    /// `PREFIX:{Q}:history`: stream of counter samples (one entry per
    /// interval, id = the interval's start, unix ms), written by the
    /// dashboard for its processed/failed rates (see [`crate::history`]).
    pub fn history(&self) -> String {
        format!("{}:history", self.base)
    }
    /// `PREFIX:queues`: set of known queue names (no hash tag: never used
    /// in a script together with a queue's keys).
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// `PREFIX:paused`: hash of paused queues, name → when paused (unix
    /// ms). Fleet-wide (no hash tag): see [`crate::pause`].
    pub fn paused(&self) -> &str {
        &self.paused
    }
    /// Every key of this queue that carries the hash tag, for tests and tools.
    pub fn all_tagged(&self) -> Vec<String> {
        vec![
            self.ready.clone(),
            self.scheduled.clone(),
            self.dead.clone(),
            self.stats.clone(),
            self.meta.clone(),
            self.limits.clone(),
            self.unique("k"),
            self.job("1-0"),
            self.job_done("1-0"),
            self.cancels(),
            self.rate(),
            self.rate_type("t"),
            self.rate_key("k}{x"),
            self.holds(),
            self.cron(),
            self.history(),
            self.batch("b"),
            self.batch_members("b"),
            self.batch_failed("b"),
            self.groups(),
            self.grouped(),
            self.group("g}{x"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC16/XMODEM as Redis Cluster uses it (CLUSTER KEYSLOT).
    fn crc16(data: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in data {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    /// The cluster slot of a key, honouring the first `{...}` hash tag.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let hashed = match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
                _ => bytes,
            },
            None => bytes,
        };
        crc16(hashed) % 16384
    }

    #[test]
    fn crc16_matches_redis_reference_value() {
        // From the Redis Cluster specification: CRC16 of "123456789" is 0x31C3.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    #[test]
    fn every_key_of_a_queue_lands_in_one_cluster_slot() {
        for q in ["emails", "a", "reports.daily", "x:y", "Q-1_2"] {
            let keys = QueueKeys::new(DEFAULT_PREFIX, &QueueName::new(q).unwrap());
            let slots: Vec<u16> = keys.all_tagged().iter().map(|k| slot(k)).collect();
            assert!(slots.iter().all(|s| *s == slots[0]), "{q}: {slots:?}");
            assert_eq!(slots[0], slot(&format!("{{{q}}}")));
        }
    }

    #[test]
    fn different_queues_usually_land_in_different_slots() {
        let a = QueueKeys::new("p", &QueueName::new("emails").unwrap());
        let b = QueueKeys::new("p", &QueueName::new("reports").unwrap());
        assert_ne!(slot(a.ready()), slot(b.ready()));
    }

    #[test]
    fn keys_have_the_documented_layout() {
        let keys = QueueKeys::new("jobstream", &QueueName::new("emails").unwrap());
        assert_eq!(keys.ready(), "jobstream:{emails}:ready");
        assert_eq!(keys.scheduled(), "jobstream:{emails}:scheduled");
        assert_eq!(keys.dead(), "jobstream:{emails}:dead");
        assert_eq!(keys.stats(), "jobstream:{emails}:stats");
        assert_eq!(keys.meta(), "jobstream:{emails}:meta");
        assert_eq!(keys.limits(), "jobstream:{emails}:limits");
        assert_eq!(keys.unique("u1"), "jobstream:{emails}:unique:u1");
        assert_eq!(keys.job("7-0"), "jobstream:{emails}:job:7-0");
        assert_eq!(keys.cron(), "jobstream:{emails}:cron");
        assert_eq!(keys.rate_type("geo"), "jobstream:{emails}:rate:type:geo");
        assert_eq!(keys.rate_key("c-1"), "jobstream:{emails}:rate:key:c-1");
        assert_eq!(keys.holds(), "jobstream:{emails}:holds");
        assert_eq!(keys.registry(), "jobstream:queues");
        assert_eq!(keys.paused(), "jobstream:paused");
    }

    #[test]
    fn queue_names_are_validated_with_a_reason() {
        for bad in ["", "a b", "a{b", "b}", "é", "x\n", &"q".repeat(129)] {
            let err = QueueName::new(bad).unwrap_err().to_string();
            assert!(err.contains("invalid queue name"), "{bad:?}: {err}");
        }
        assert!(QueueName::new(&"q".repeat(128)).is_ok());
        assert!(
            QueueName::new("a{b")
                .unwrap_err()
                .to_string()
                .contains("hash tag")
        );
    }
}
