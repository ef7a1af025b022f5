//! The job lifecycle beyond one attempt: uniqueness keys, job records
//! (state, attempts, progress, result) and what a waiter gets back.
//! The scripts that write them: `enqueue-6`, `start-3`, `settle-14`,
//! `progress-2`, `cancel-4` (scripts/README.md).

use std::collections::HashMap;
use std::time::Duration;

/// Longest uniqueness key accepted, in bytes.
pub const MAX_UNIQUE_KEY_LEN: usize = 256;

/// Largest result a handler may leave in its job's record (MessagePack
/// bytes); a larger one is not stored, and the record says so.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Longest keep time of a record and lifetime of a uniqueness key, ms
/// (about ten years): longer ones are lowered to it, so `PX`/`PEXPIRE`
/// never refuse them half-way through a script.
pub const MAX_KEEP_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// Longest progress message kept, in bytes (cut at a character boundary).
pub const MAX_PROGRESS_MSG_LEN: usize = 256;

/// How long a job's uniqueness key is held: while it waits, until it is
/// done, or for a fixed time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Uniqueness {
    /// Released when a worker starts the job: one job of the key waits at
    /// a time, and a new one may be enqueued while it runs (wire:
    /// `unique_for` = `queued`).
    WhileQueued,
    /// Released when the job is final: completed, dead, discarded,
    /// expired or cancelled. Not released by a retry (`done`).
    UntilDone,
    /// Held for this long from the enqueue, whatever the job does (`ttl`).
    For(Duration),
}

impl Uniqueness {
    /// The `unique_for` value on the wire.
    pub fn wire_mode(self) -> &'static str {
        match self {
            Uniqueness::WhileQueued => "queued",
            Uniqueness::UntilDone => "done",
            Uniqueness::For(_) => "ttl",
        }
    }
}

/// A job's uniqueness key and mode, as read from its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueKey {
    /// The key (without the queue's prefix).
    pub key: String,
    /// When the key is released: `queued`, `done` or `ttl`.
    pub mode: UniqueMode,
}

/// The `unique_for` field of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueMode {
    /// `queued`: released at start.
    Queued,
    /// `done`: released when final.
    Done,
    /// `ttl`: never released, expires.
    Ttl,
}

impl UniqueMode {
    /// Parses a `unique_for` value.
    pub fn parse(value: &[u8]) -> Option<Self> {
        match value {
            b"queued" => Some(UniqueMode::Queued),
            b"done" => Some(UniqueMode::Done),
            b"ttl" => Some(UniqueMode::Ttl),
            _ => None,
        }
    }
}

/// Where a job is in its life, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for its due time.
    Scheduled,
    /// In the ready stream, waiting for a worker.
    Ready,
    /// A handler is running it.
    Active,
    /// An attempt failed; waiting for the next one.
    Retrying,
    /// A handler succeeded.
    Completed,
    /// In the dead-letter stream.
    Dead,
    /// A handler discarded it.
    Discarded,
    /// Not started by its start deadline, and dropped.
    Expired,
    /// Cancelled before it ran (or while running, if its handler stopped).
    Cancelled,
}

impl JobState {
    /// Parses a record's `state` field.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "scheduled" => JobState::Scheduled,
            "ready" => JobState::Ready,
            "active" => JobState::Active,
            "retrying" => JobState::Retrying,
            "completed" => JobState::Completed,
            "dead" => JobState::Dead,
            "discarded" => JobState::Discarded,
            "expired" => JobState::Expired,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// The name written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Ready => "ready",
            JobState::Active => "active",
            JobState::Retrying => "retrying",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
            JobState::Discarded => "discarded",
            JobState::Expired => "expired",
            JobState::Cancelled => "cancelled",
        }
    }

    /// No further move will happen to the job.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed
                | JobState::Dead
                | JobState::Discarded
                | JobState::Expired
                | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job's record: what the scripts that moved it wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobRecord {
    /// The job's id.
    pub id: String,
    /// The job's type.
    pub job_type: String,
    /// Its state. A `scheduled` or `retrying` job whose `run_at` has
    /// passed is in the ready stream (the promotion does not touch
    /// records); [`JobRecord::state_at`] tells.
    pub state: JobState,
    /// Attempts started (0 before the first).
    pub attempt: u32,
    /// Enqueue time, unix ms (server clock).
    pub enqueued_at_ms: Option<u64>,
    /// When it is (or was) due, unix ms.
    pub run_at_ms: Option<u64>,
    /// When the last attempt started, unix ms.
    pub started_at_ms: Option<u64>,
    /// When it became final, unix ms.
    pub finished_at_ms: Option<u64>,
    /// The worker that ran the last attempt.
    pub worker: Option<String>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// The last failure's class (`retryable`, `timeout`, `panic`, ...).
    pub last_error_class: Option<String>,
    /// Progress reported by the handler, percent.
    pub progress: Option<u8>,
    /// The handler's progress message.
    pub progress_message: Option<String>,
    /// The handler's result (MessagePack), if it returned one.
    pub result: Option<Vec<u8>>,
    /// When cancellation of the running job was asked for, unix ms.
    pub cancel_requested_at_ms: Option<u64>,
    /// How long the record is kept after a final state.
    pub keep: Duration,
}

impl JobRecord {
    /// Builds a record from the hash's fields; `None` when the hash is
    /// empty (no record) or has no valid state.
    pub fn from_fields(fields: HashMap<String, Vec<u8>>) -> Option<Self> {
        let text = |k: &str| {
            fields
                .get(k)
                .and_then(|v| std::str::from_utf8(v).ok())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let num = |k: &str| text(k).and_then(|s| s.parse::<u64>().ok());
        let state = JobState::parse(&text("state")?)?;
        Some(Self {
            id: text("id").unwrap_or_default(),
            job_type: text("type").unwrap_or_default(),
            state,
            attempt: num("attempt").unwrap_or(0).min(u32::MAX as u64) as u32,
            enqueued_at_ms: num("enqueued_at"),
            run_at_ms: num("run_at"),
            started_at_ms: num("started_at"),
            finished_at_ms: num("finished_at"),
            worker: text("worker"),
            last_error: text("last_error"),
            last_error_class: text("last_error_class"),
            progress: num("progress").map(|p| p.min(100) as u8),
            progress_message: text("progress_msg"),
            result: fields.get("result").filter(|v| !v.is_empty()).cloned(),
            cancel_requested_at_ms: num("cancel_requested"),
            keep: Duration::from_millis(num("keep_ms").unwrap_or(0)),
        })
    }

    /// The handler's result decoded as `T`; `None` when it returned none
    /// (or `()`).
    pub fn result<T: serde::de::DeserializeOwned>(&self) -> crate::Result<Option<T>> {
        match &self.result {
            None => Ok(None),
            Some(bytes) => {
                rmp_serde::from_slice(bytes)
                    .map(Some)
                    .map_err(|e| crate::Error::Decode {
                        what: "job result",
                        detail: e.to_string(),
                    })
            }
        }
    }

    /// The state as of `now_ms`: `ready` for a scheduled or retrying job
    /// that is due (it has been, or is about to be, promoted).
    pub fn state_at(&self, now_ms: u64) -> JobState {
        match self.state {
            JobState::Scheduled | JobState::Retrying
                if self.run_at_ms.is_some_and(|t| t <= now_ms) =>
            {
                JobState::Ready
            }
            s => s,
        }
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
pub fn truncate_to(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pairs: &[(&str, &str)]) -> Option<JobRecord> {
        JobRecord::from_fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn a_record_reads_back_its_fields() {
        let r = rec(&[
            ("id", "j1"),
            ("type", "t"),
            ("state", "retrying"),
            ("attempt", "2"),
            ("run_at", "100"),
            ("progress", "250"),
            ("keep_ms", "5000"),
        ])
        .unwrap();
        assert_eq!(r.state, JobState::Retrying);
        assert_eq!(r.attempt, 2);
        assert_eq!(r.progress, Some(100), "progress is capped at 100");
        assert_eq!(r.state_at(99), JobState::Retrying);
        assert_eq!(r.state_at(100), JobState::Ready);
        assert_eq!(r.keep, Duration::from_secs(5));
    }

    #[test]
    fn garbage_is_no_record_not_a_panic() {
        assert!(rec(&[]).is_none());
        assert!(rec(&[("state", "exploded")]).is_none());
        let r = rec(&[("state", "active"), ("attempt", "-3"), ("started_at", "x")]).unwrap();
        assert_eq!((r.attempt, r.started_at_ms), (0, None));
    }

    #[test]
    fn every_state_round_trips_and_only_final_ones_are_final() {
        for s in [
            "scheduled",
            "ready",
            "active",
            "retrying",
            "completed",
            "dead",
            "discarded",
            "expired",
            "cancelled",
        ] {
            let st = JobState::parse(s).unwrap();
            assert_eq!(st.as_str(), s);
            let fin = matches!(
                s,
                "completed" | "dead" | "discarded" | "expired" | "cancelled"
            );
            assert_eq!(st.is_final(), fin, "{s}");
        }
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate_to("héllo", 2), "h");
        assert_eq!(truncate_to("abc", 10), "abc");
    }
}
