//! Do the books balance? Every entry ever added to a queue's `ready` stream
//! must be either still in it or removed by a script that counted it.
//!
//! Adds to `ready`: producers' `XADD`, `admit-4`, `promote-4`, `requeue-2`
//! (the new entry) and `replay-3`. Removals, each counted in
//! `PREFIX:{Q}:stats` by the script that makes it: `processed`, `discarded`
//! and `expired` (`ack-2`, `settle-14`; `discarded` also `purge-4` and
//! `admit-4` shedding), `cancelled` (`ack-2`,
//! `settle-14`, `withdraw-4`), `retried`
//! (`retry-3`, `settle-14`), `requeued` (`requeue-2`, the old entry),
//! `throttled` and `held` (`throttle-6`, `hold-4`: deferred to `scheduled`
//! by a rate limit or a hold) and `dead`
//! (`dead-3`, `settle-14`, `reclaim-3`, `admit-4` shedding to dead) minus the dead letters that never were in `ready`
//! (`dead_scheduled`: scheduled members `promote-4` could not decode), and
//! `group_parked` (`group-start-6`: a job of a full group moved out of
//! `ready` to wait behind its group; it comes back as a new add). So
//!
//! ```text
//! entries_added == XLEN ready + processed + discarded + expired + cancelled
//!                  + retried + requeued + throttled + held
//!                  + (dead - dead_scheduled) + group_parked
//! ```
//!
//! `entries_added` is the stream's lifetime add count (`XINFO STREAM` →
//! `entries-added`, Redis 7.0 and later): `XDEL`/`XTRIM` do not lower it.
//! Every script moves and counts in one atomic step, so the equation holds at
//! every instant, under any load. A difference means something outside
//! jobstream deleted entries (`XDEL`, `XTRIM`, `XADD … MAXLEN` by hand:
//! positive) or deleted the stream or changed counters (negative).

use redis::Value;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::reply;
use crate::store::QueueStore;

/// The counters of `PREFIX:{Q}:stats` the books read, in this order.
const COUNTERS: [&str; 13] = [
    "processed",
    "discarded",
    "expired",
    "cancelled",
    "retried",
    "requeued",
    "throttled",
    "held",
    "dead",
    "dead_scheduled",
    "dead_trimmed",
    "replayed",
    "group_parked",
];

/// Whether a queue's books balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BooksStatus {
    /// Every entry added to `ready` is accounted for.
    Ok,
    /// `difference` is not 0: entries were deleted outside jobstream
    /// (positive), or the stream was deleted or counters changed (negative).
    Mismatch,
    /// The server does not report `entries-added` (Redis before 7.0): the
    /// books cannot be checked.
    CannotCheck,
}

/// One queue's books: what was added to `ready` against where it went.
///
/// Counters are signed and unclamped on purpose: a counter someone set to a
/// negative value by hand shows up as it is, never hidden as 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Books {
    /// Queue name.
    pub name: String,
    /// Entries ever added to `ready` (`XINFO STREAM` → `entries-added`);
    /// `None` when the server does not report it. 0 when `ready` does not
    /// exist.
    pub entries_added: Option<i64>,
    /// Entries in `ready` now, delivered or not (`XINFO STREAM` → `length`).
    pub in_stream: i64,
    /// Counter `processed`: acknowledged as done (`ack-2`).
    pub processed: i64,
    /// Counter `discarded`: dropped by a handler (`ack-2`).
    pub discarded: i64,
    /// Counter `expired`: not started by their deadline, discarded
    /// (`ack-2`; those sent to dead count in `dead`).
    pub expired: i64,
    /// Counter `cancelled`: cancelled before they ran, or stopped by their
    /// handler on cancellation (`ack-2`, `settle-14`).
    pub cancelled: i64,
    /// Counter `retried`: moved to `scheduled` for another attempt (`retry-3`).
    pub retried: i64,
    /// Counter `requeued`: old entries handed back at shutdown (`requeue-2`;
    /// the new entry is an add).
    pub requeued: i64,
    /// Counter `throttled`: deferred to `scheduled` by a rate limit of
    /// its type or key, or by its key's hold, before it ran (`throttle-6`).
    pub throttled: i64,
    /// Counter `held`: deferred to `scheduled` after its handler met an
    /// upstream 429 (`hold-4`).
    pub held: i64,
    /// Counter `dead`: moved to `dead`, from `ready` or from `scheduled`.
    pub dead: i64,
    /// Counter `dead_scheduled`: of `dead`, the scheduled members that were
    /// dead-lettered by `promote-4` and never were in `ready`.
    pub dead_scheduled: i64,
    /// Counter `dead_trimmed`: dead letters dropped by the `dead_max_len`
    /// cap. Not part of the equation (`dead` counts them when they died);
    /// shown because those jobs are gone.
    pub dead_trimmed: i64,
    /// Counter `replayed`: dead jobs sent back to `ready` (each one an add).
    /// Not part of the equation.
    pub replayed: i64,
    /// Counter `group_parked`: jobs of a full group moved out of `ready`
    /// to wait behind their group (`group-start-6`).
    pub group_parked: i64,
    /// `in_stream + processed + discarded + expired + cancelled + retried +
    /// requeued + throttled + held + dead - dead_scheduled + group_parked`.
    pub accounted: i64,
    /// `entries_added - accounted`: positive = entries added to `ready`
    /// that are not accounted for; negative = more accounted for than were
    /// ever added. `None` when the books cannot be checked.
    pub difference: Option<i64>,
    /// The verdict.
    pub status: BooksStatus,
}

impl Books {
    /// Books from `entries-added` (if the server reports it), the stream
    /// length and the counters (missing ones are 0).
    pub fn new(
        name: &str,
        entries_added: Option<i64>,
        in_stream: i64,
        counter: impl Fn(&str) -> i64,
    ) -> Self {
        let (processed, discarded, retried, requeued) = (
            counter("processed"),
            counter("discarded"),
            counter("retried"),
            counter("requeued"),
        );
        let (dead, dead_scheduled) = (counter("dead"), counter("dead_scheduled"));
        let (expired, cancelled) = (counter("expired"), counter("cancelled"));
        let (throttled, held) = (counter("throttled"), counter("held"));
        let accounted = in_stream
            .saturating_add(processed)
            .saturating_add(discarded)
            .saturating_add(expired)
            .saturating_add(cancelled)
            .saturating_add(retried)
            .saturating_add(requeued)
            .saturating_add(throttled)
            .saturating_add(held)
            .saturating_add(dead.saturating_sub(dead_scheduled))
            .saturating_add(counter("group_parked"));
        let difference = entries_added.map(|added| added.saturating_sub(accounted));
        let status = match difference {
            None => BooksStatus::CannotCheck,
            Some(0) => BooksStatus::Ok,
            Some(_) => BooksStatus::Mismatch,
        };
        Self {
            name: name.to_owned(),
            entries_added,
            in_stream,
            processed,
            discarded,
            expired,
            cancelled,
            retried,
            requeued,
            throttled,
            held,
            dead,
            dead_scheduled,
            dead_trimmed: counter("dead_trimmed"),
            replayed: counter("replayed"),
            group_parked: counter("group_parked"),
            accounted,
            difference,
            status,
        }
    }

    /// True when every entry added to `ready` is accounted for.
    pub fn balances(&self) -> bool {
        self.status == BooksStatus::Ok
    }

    /// One line for people: `OK`, `MISMATCH: …` or `cannot check: …`.
    pub fn verdict(&self) -> String {
        match self.difference {
            None => "cannot check: server lacks XINFO entries-added (Redis 7.0 or later needed)"
                .to_owned(),
            Some(0) => "OK".to_owned(),
            Some(d) if d > 0 => format!(
                "MISMATCH: {d} entries added to ready are not accounted for \
                 (deleted outside jobstream?)"
            ),
            Some(d) => format!(
                "MISMATCH: {} more entries are accounted for than were ever added to ready \
                 (stream deleted and recreated, or counters changed by hand?)",
                d.unsigned_abs()
            ),
        }
    }
}

impl QueueStore {
    /// Reads the queue's [`Books`]: `XINFO STREAM ready` and the counters.
    pub async fn books(&self) -> Result<Books> {
        const OP: &str = "books";
        let k = self.keys();
        // One MULTI/EXEC, so no script runs between the stream read and the
        // counter read. With two reads, a job acked in between would be both
        // still in the stream and already counted, a false difference on any
        // busy queue (worker/tests/books.rs catches that); a plain pipeline
        // is no guarantee either, as Redis may serve other clients between
        // two pipelined commands. A transaction rather than a read-only Lua
        // script because it takes only read commands: a monitoring user with
        // `+@read +multi +exec` can run it, on a primary or a replica, without
        // EVAL rights and with no script to load. Both keys share the queue's
        // hash tag: one slot in a cluster. `ignore_errors`: a missing stream
        // makes XINFO fail inside EXEC, and the counters are still wanted.
        let mut pipe = redis::pipe();
        pipe.atomic().ignore_errors();
        pipe.cmd("XINFO").arg("STREAM").arg(k.ready());
        pipe.cmd("HMGET").arg(k.stats()).arg(&COUNTERS[..]);
        let mut conn = self.redis().shared();
        let replies: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.redis().error(OP, e))?;
        let mut it = replies.into_iter();
        let (Some(info), Some(counters)) = (it.next(), it.next()) else {
            return Err(Error::protocol(OP, "expected two replies from EXEC"));
        };
        let (entries_added, in_stream) = match info {
            Value::ServerError(e) => {
                let err = redis::RedisError::from(e);
                if err.to_string().contains("no such key") {
                    // Never created, or deleted: nothing added since.
                    (Some(0), 0)
                } else {
                    return Err(self.redis().error("XINFO STREAM", err));
                }
            }
            other => {
                let info = reply::info_map(OP, other)?;
                let get = |name: &str| {
                    info.iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| reply::int(OP, v))
                        .transpose()
                };
                let length = get("length")?
                    .ok_or_else(|| Error::protocol(OP, "XINFO STREAM without length"))?;
                (get("entries-added")?, length)
            }
        };
        let counters = match counters {
            Value::ServerError(e) => return Err(self.redis().error("HMGET", e.into())),
            other => reply::array(OP, other)?,
        };
        if counters.len() != COUNTERS.len() {
            return Err(Error::protocol(OP, "HMGET returned the wrong count"));
        }
        let values = counters
            .iter()
            .map(|v| match v {
                Value::Nil => Ok(0),
                v => reply::int(OP, v),
            })
            .collect::<Result<Vec<i64>>>()?;
        let counter = |name: &str| {
            COUNTERS
                .iter()
                .position(|c| *c == name)
                .map_or(0, |i| values[i])
        };
        Ok(Books::new(
            k.name().as_str(),
            entries_added,
            in_stream,
            counter,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters<'a>(pairs: &'a [(&'a str, i64)]) -> impl Fn(&str) -> i64 + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map_or(0, |(_, v)| *v)
        }
    }

    #[test]
    fn every_bucket_counts_and_dead_letters_from_scheduled_do_not() {
        let c = [
            ("processed", 10),
            ("discarded", 2),
            ("expired", 7),
            ("cancelled", 8),
            ("retried", 3),
            ("requeued", 4),
            ("throttled", 9),
            ("held", 11),
            ("dead", 6),
            ("dead_scheduled", 1),
            ("dead_trimmed", 100),
            ("replayed", 50),
        ];
        let b = Books::new("q", Some(65), 6, counters(&c));
        assert_eq!(b.accounted, 6 + 10 + 2 + 7 + 8 + 3 + 4 + 9 + 11 + 5);
        assert_eq!((b.difference, b.status), (Some(0), BooksStatus::Ok));
        assert_eq!(b.verdict(), "OK");
    }

    #[test]
    fn missing_and_extra_entries_are_mismatches_with_their_count() {
        let b = Books::new("q", Some(10), 7, counters(&[("processed", 2)]));
        assert_eq!((b.difference, b.status), (Some(1), BooksStatus::Mismatch));
        assert!(
            b.verdict()
                .starts_with("MISMATCH: 1 entries added to ready")
        );
        let b = Books::new("q", Some(0), 0, counters(&[("processed", 5)]));
        assert_eq!(b.difference, Some(-5));
        assert!(b.verdict().starts_with("MISMATCH: 5 more entries"));
    }

    #[test]
    fn a_server_without_entries_added_cannot_be_checked() {
        let b = Books::new("q", None, 3, counters(&[]));
        assert_eq!((b.difference, b.status), (None, BooksStatus::CannotCheck));
        assert!(!b.balances());
        assert!(b.verdict().contains("lacks XINFO entries-added"));
    }
}
