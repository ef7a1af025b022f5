//! Periodic jobs: cron schedules declared by workers, each tick enqueued
//! once fleet-wide however many workers declare it.
//!
//! - `PREFIX:{Q}:cron`: hash of the target queue, schedule name → the last
//!   tick fired (unix ms). Written only by the script `cron-fire-2`, in the
//!   same atomic step as the job's `XADD` to `PREFIX:{Q}:ready`: a tick is
//!   enqueued only when it is newer than the stored one, so every worker
//!   may try every tick and each tick is enqueued once.
//! - `PREFIX:crons`: fleet-wide hash (no hash tag, never used in a script),
//!   schedule name → JSON [`CronInfo`], written by each worker that
//!   declares the schedule when it starts; read by `jobstream cron list`.
//!
//! A worker without schedules sends none of these commands and runs no
//! task for them. The schedule itself (a cron expression in a time zone)
//! is [`CronSpec`]; what a worker does about ticks that passed while no
//! worker ran is [`Missed`]. See docs/flow-control.md, "Periodic jobs".

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

use crate::connection::Redis;
use crate::error::{Error, Result};
use crate::scripts;
use crate::store::QueueStore;

/// Longest schedule name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// Most missed ticks [`Missed::RunEach`] fires at once.
pub const MAX_RUN_EACH: u32 = 1000;

/// `PREFIX:crons`: the fleet-wide hash of declared schedules.
pub fn crons_key(prefix: &str) -> String {
    format!("{prefix}:crons")
}

/// Checks a schedule name: 1 to 128 characters out of `A-Z a-z 0-9 _ - .`
/// (it is part of every job id the schedule makes, `cron:NAME:TICK`).
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::Config(format!(
            "invalid schedule name {:?}: it must be 1 to {MAX_NAME_LEN} characters long",
            name.chars().take(MAX_NAME_LEN + 8).collect::<String>()
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Error::Config(format!(
            "invalid schedule name {name:?}: only A-Z, a-z, 0-9, '_', '-' and '.' are allowed"
        )));
    }
    Ok(())
}

/// The id of the job a schedule enqueues for one tick: `cron:NAME:TICK`
/// (TICK in unix ms), the same on every worker.
pub fn job_id(name: &str, tick_ms: u64) -> String {
    format!("cron:{name}:{tick_ms}")
}

/// A cron expression read in a time zone: when a schedule ticks.
///
/// Expressions have five fields (minute, hour, day of month, month, day of
/// week) or six with a leading seconds field, and the usual extensions
/// (`*/5`, ranges, lists, names such as `MON-FRI` or `JAN`, `L`, `#`, `W`;
/// day of month and day of week are OR-ed as in Vixie cron). The time zone
/// is an IANA name (`Europe/Paris`, `America/New_York`, `UTC`); ticks
/// follow its daylight-saving changes.
#[derive(Clone)]
pub struct CronSpec {
    expr: String,
    tz: Tz,
    cron: Cron,
}

impl std::fmt::Debug for CronSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CronSpec")
            .field("expr", &self.expr)
            .field("time_zone", &self.tz.name())
            .finish()
    }
}

impl PartialEq for CronSpec {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr && self.tz == other.tz
    }
}

impl CronSpec {
    /// Parses `expr` in `time_zone`. An invalid expression or an unknown
    /// time zone is an [`Error::Config`] that says which.
    pub fn new(expr: &str, time_zone: &str) -> Result<Self> {
        let tz = Tz::from_str(time_zone.trim()).map_err(|e| {
            Error::Config(format!(
                "unknown time zone {time_zone:?} ({e}); use an IANA name such as \"Europe/Paris\" or \"UTC\""
            ))
        })?;
        let expr = expr.trim();
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| Error::Config(format!("invalid cron expression {expr:?}: {e}")))?;
        Ok(Self {
            expr: expr.to_owned(),
            tz,
            cron,
        })
    }

    /// The expression as given (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone's IANA name.
    pub fn time_zone(&self) -> &str {
        self.tz.name()
    }

    fn at(&self, ms: u64) -> Option<DateTime<Tz>> {
        let ms = i64::try_from(ms).ok()?;
        Some(DateTime::<Utc>::from_timestamp_millis(ms)?.with_timezone(&self.tz))
    }

    fn ms(t: &DateTime<Tz>) -> Option<u64> {
        u64::try_from(t.timestamp_millis()).ok()
    }

    /// The first tick strictly after `after_ms` (unix ms), or None when
    /// the expression never matches again (`0 0 30 2 *`).
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let mut from = self.at(after_ms)?;
        // A tick is a whole second; the start may fall within one.
        for _ in 0..4 {
            let t = self.cron.find_next_occurrence(&from, false).ok()?;
            let ms = Self::ms(&t)?;
            if ms > after_ms {
                return Some(ms);
            }
            from = t;
        }
        None
    }

    /// The last tick at or before `at_ms`, if any.
    pub fn last_at_or_before(&self, at_ms: u64) -> Option<u64> {
        let t = self
            .cron
            .find_previous_occurrence(&self.at(at_ms)?, true)
            .ok()?;
        let ms = Self::ms(&t)?;
        if ms <= at_ms {
            Some(ms)
        } else {
            self.before(ms)
        }
    }

    /// The last tick strictly before `ms`.
    fn before(&self, ms: u64) -> Option<u64> {
        let mut from = self.at(ms)?;
        for _ in 0..4 {
            let t = self.cron.find_previous_occurrence(&from, false).ok()?;
            let found = Self::ms(&t)?;
            if found < ms {
                return Some(found);
            }
            from = t;
        }
        None
    }

    /// The latest `max` ticks after `after_ms` and at or before `upto_ms`,
    /// oldest first. Walks back from `upto_ms`, so the work is bounded by
    /// `max` however long ago `after_ms` is.
    pub fn latest_between(&self, after_ms: u64, upto_ms: u64, max: usize) -> Vec<u64> {
        let mut out = Vec::new();
        let mut tick = self.last_at_or_before(upto_ms);
        while let Some(t) = tick {
            if t <= after_ms || out.len() >= max {
                break;
            }
            out.push(t);
            tick = self.before(t);
        }
        out.reverse();
        out
    }
}

/// What a worker does, when it starts (or when Redis comes back after an
/// outage), about the ticks that passed since the schedule last fired:
/// the **missed** ticks. A schedule that never fired has none.
///
/// Every worker applies the same policy and the script accepts only ticks
/// newer than the last one fired, so a fleet that starts at once fires
/// the missed ticks once, not once per worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Missed {
    /// Fire none of them; wait for the next tick (as cron itself does).
    #[default]
    Skip,
    /// Fire the latest missed tick, once.
    RunOnce,
    /// Fire each missed tick, oldest first, but only the latest `max` of
    /// them (1 to [`MAX_RUN_EACH`]).
    RunEach {
        /// Most missed ticks fired.
        max: u32,
    },
}

impl Missed {
    /// The missed ticks to fire, oldest first: those after `last` (the
    /// last tick fired, None when never) and at or before `now_ms`.
    pub fn ticks(&self, spec: &CronSpec, last: Option<u64>, now_ms: u64) -> Vec<u64> {
        let Some(last) = last else {
            return Vec::new();
        };
        match *self {
            Missed::Skip => Vec::new(),
            Missed::RunOnce => spec.latest_between(last, now_ms, 1),
            Missed::RunEach { max } => spec.latest_between(last, now_ms, max as usize),
        }
    }

    /// Checks the policy's bound.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Missed::RunEach { max } if max == 0 || max > MAX_RUN_EACH => {
                Err(Error::Config(format!(
                    "Missed::RunEach {{ max: {max} }}: max must be 1 to {MAX_RUN_EACH} (Missed::Skip fires none)"
                )))
            }
            _ => Ok(()),
        }
    }

    /// `skip`, `run_once` or `run_each`, as in [`CronInfo::missed`].
    pub fn name(&self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
            Missed::RunEach { .. } => "run_each",
        }
    }

    /// Most missed ticks fired: 0, 1, or `max`.
    pub fn max(&self) -> u32 {
        match *self {
            Missed::Skip => 0,
            Missed::RunOnce => 1,
            Missed::RunEach { max } => max,
        }
    }
}

/// A schedule as declared in `PREFIX:crons` (JSON), for tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CronInfo {
    /// The schedule's name (fleet-wide).
    pub name: String,
    /// The queue its jobs go to.
    pub queue: String,
    /// The job type of its jobs.
    pub job_type: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone the expression is read in.
    pub time_zone: String,
    /// The missed-fire policy: `skip`, `run_once` or `run_each`.
    pub missed: String,
    /// Most missed ticks fired (0 for `skip`, 1 for `run_once`).
    pub missed_max: u32,
    /// The consumer name of the worker that declared it last.
    pub worker: String,
    /// When that worker declared it (unix ms, its clock).
    pub declared_at_ms: u64,
}

impl CronInfo {
    /// The declaration of a schedule.
    pub fn new(
        name: &str,
        queue: &str,
        job_type: &str,
        spec: &CronSpec,
        missed: Missed,
        worker: &str,
        declared_at_ms: u64,
    ) -> Self {
        Self {
            name: name.to_owned(),
            queue: queue.to_owned(),
            job_type: job_type.to_owned(),
            cron: spec.expr().to_owned(),
            time_zone: spec.time_zone().to_owned(),
            missed: missed.name().to_owned(),
            missed_max: missed.max(),
            worker: worker.to_owned(),
            declared_at_ms,
        }
    }

    /// The same schedule (worker and declaration time aside)?
    pub fn same_schedule(&self, other: &CronInfo) -> bool {
        (
            &self.queue,
            &self.job_type,
            &self.cron,
            &self.time_zone,
            &self.missed,
            self.missed_max,
        ) == (
            &other.queue,
            &other.job_type,
            &other.cron,
            &other.time_zone,
            &other.missed,
            other.missed_max,
        )
    }
}

/// Writes `info` into `PREFIX:crons`; returns the declaration it replaced
/// (None when new, or when the old one was not readable JSON).
pub async fn declare(redis: &Redis, prefix: &str, info: &CronInfo) -> Result<Option<CronInfo>> {
    let json = serde_json::to_string(info).map_err(|e| Error::Encode(e.to_string()))?;
    let key = crons_key(prefix);
    let mut conn = redis.shared();
    let (old,): (Option<String>,) = redis::pipe()
        .cmd("HGET")
        .arg(&key)
        .arg(&info.name)
        .cmd("HSET")
        .arg(&key)
        .arg(&info.name)
        .arg(json)
        .ignore()
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.error("HSET crons", e))?;
    Ok(old.and_then(|o| serde_json::from_str(&o).ok()))
}

/// Every declared schedule, sorted by name (entries that are not valid
/// JSON are left out).
pub async fn declared(redis: &Redis, prefix: &str) -> Result<Vec<CronInfo>> {
    let mut conn = redis.shared();
    let all: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(crons_key(prefix))
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.error("HGETALL crons", e))?;
    let mut out: Vec<CronInfo> = all
        .into_iter()
        .filter_map(|(_, json)| serde_json::from_str(&json).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Removes a schedule's declaration (`jobstream cron forget`); true when
/// it was there. Its last fired tick (in its queue) is kept.
pub async fn forget(redis: &Redis, prefix: &str, name: &str) -> Result<bool> {
    let mut conn = redis.shared();
    let removed: i64 = redis::cmd("HDEL")
        .arg(crons_key(prefix))
        .arg(name)
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.error("HDEL crons", e))?;
    Ok(removed == 1)
}

/// What `cron-fire-2` did with a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CronFire {
    /// Enqueued: the entry id.
    Enqueued(String),
    /// That tick or a later one was already fired (by any worker).
    AlreadyFired,
    /// The tick is more than 2 s ahead of the server's clock (this host's
    /// clock is fast): refused, nothing changed.
    Early {
        /// The server's time, unix ms.
        server_now_ms: u64,
    },
}

impl QueueStore {
    /// Enqueues the job of tick `tick_ms` of schedule `name` (entry
    /// `fields`) unless that tick, or a later one, was already fired, or
    /// the tick is more than 2 s ahead of the server's clock:
    /// `cron-fire-2`.
    pub async fn cron_fire(
        &self,
        name: &str,
        tick_ms: u64,
        fields: &[(&[u8], &[u8])],
    ) -> Result<CronFire> {
        let (fired, entry): (i64, redis::Value) = self
            .eval(&scripts::CRON_FIRE, |inv| {
                inv.key(self.keys().cron())
                    .key(self.keys().ready())
                    .arg(name)
                    .arg(tick_ms);
                for (k, v) in fields {
                    inv.arg(*k).arg(*v);
                }
            })
            .await?;
        Ok(match (fired, entry) {
            (1, redis::Value::BulkString(b)) => {
                CronFire::Enqueued(String::from_utf8_lossy(&b).into_owned())
            }
            (1, redis::Value::SimpleString(s)) => CronFire::Enqueued(s),
            (1, _) => CronFire::Enqueued(String::new()),
            (2, redis::Value::Int(now)) => CronFire::Early {
                server_now_ms: u64::try_from(now).unwrap_or(0),
            },
            _ => CronFire::AlreadyFired,
        })
    }

    /// The last tick schedule `name` fired on this queue (unix ms), None
    /// when never (or when the stored value is not a number).
    pub async fn cron_last(&self, name: &str) -> Result<Option<u64>> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.keys().cron()).arg(name);
        let at: Option<String> = self.query("HGET", &cmd).await?;
        Ok(at.and_then(|s| s.trim().parse().ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-01-01T00:00:00Z.
    const JAN1: u64 = 1_767_225_600_000;

    #[test]
    fn five_and_six_field_expressions_tick_when_expected() {
        let every_5_min = CronSpec::new("*/5 * * * *", "UTC").unwrap();
        assert_eq!(every_5_min.next_after(JAN1), Some(JAN1 + 300_000));
        assert_eq!(every_5_min.next_after(JAN1 - 1), Some(JAN1));
        let every_s = CronSpec::new("*/1 * * * * *", "UTC").unwrap();
        assert_eq!(every_s.next_after(JAN1 + 500), Some(JAN1 + 1000));
        assert_eq!(every_s.next_after(JAN1), Some(JAN1 + 1000));
        assert_eq!(every_s.last_at_or_before(JAN1 + 1500), Some(JAN1 + 1000));
        assert_eq!(every_s.last_at_or_before(JAN1 + 1000), Some(JAN1 + 1000));
    }

    #[test]
    fn time_zones_move_the_ticks() {
        // 09:00 in Paris is 08:00 UTC in January (CET, UTC+1).
        let paris = CronSpec::new("0 9 * * *", "Europe/Paris").unwrap();
        assert_eq!(paris.next_after(JAN1), Some(JAN1 + 8 * 3_600_000));
        assert_eq!(paris.time_zone(), "Europe/Paris");
        let utc = CronSpec::new("0 9 * * *", "UTC").unwrap();
        assert_eq!(utc.next_after(JAN1), Some(JAN1 + 9 * 3_600_000));
    }

    #[test]
    fn bad_expressions_and_zones_are_clear_errors() {
        for bad in ["", "* * *", "61 * * * *", "not cron", "* * * * * * * *"] {
            let e = CronSpec::new(bad, "UTC").unwrap_err().to_string();
            assert!(e.contains("invalid cron expression"), "{bad:?}: {e}");
        }
        let e = CronSpec::new("* * * * *", "Mars/Olympus")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown time zone \"Mars/Olympus\""), "{e}");
    }

    #[test]
    fn missed_ticks_follow_the_policy() {
        let s = CronSpec::new("*/1 * * * * *", "UTC").unwrap();
        let last = Some(JAN1);
        let now = JAN1 + 3_500; // ticks +1 s, +2 s, +3 s were missed
        assert_eq!(Missed::Skip.ticks(&s, last, now), Vec::<u64>::new());
        assert_eq!(Missed::RunOnce.ticks(&s, last, now), vec![JAN1 + 3000]);
        assert_eq!(
            Missed::RunEach { max: 2 }.ticks(&s, last, now),
            vec![JAN1 + 2000, JAN1 + 3000]
        );
        assert_eq!(
            Missed::RunEach { max: 10 }.ticks(&s, last, now),
            vec![JAN1 + 1000, JAN1 + 2000, JAN1 + 3000]
        );
        // Never fired: nothing was missed.
        assert!(Missed::RunEach { max: 10 }.ticks(&s, None, now).is_empty());
        // Bounded however long ago the last fire was.
        assert_eq!(Missed::RunEach { max: 5 }.ticks(&s, Some(0), now).len(), 5);
        assert!(Missed::RunEach { max: 0 }.validate().is_err());
        assert!(Missed::RunEach { max: 1001 }.validate().is_err());
        assert!(Missed::RunEach { max: 1000 }.validate().is_ok());
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("nightly-report.v2_1").is_ok());
        for bad in ["", "a b", "a:b", "a{b}", &"x".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(job_id("n", 5), "cron:n:5");
    }
}
