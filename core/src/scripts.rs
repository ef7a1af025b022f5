//! The Lua scripts of `scripts/`, embedded at build time, one typed static
//! each. Calls go out as `EVALSHA`; a `NOSCRIPT` reply (Redis restarted, or
//! `SCRIPT FLUSH`) loads the script and repeats the call, inside
//! `redis::Script`.

use std::sync::LazyLock;

/// One atomic operation, as a Lua script.
pub struct JobScript {
    /// File name without `.lua`, e.g. `ack-2`. Used in errors and logs.
    pub name: &'static str,
    /// Number of `KEYS` the script takes (the `N` in `verb-N`).
    pub keys: usize,
    script: LazyLock<redis::Script>,
}

impl std::fmt::Debug for JobScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobScript")
            .field("name", &self.name)
            .field("keys", &self.keys)
            .finish()
    }
}

impl JobScript {
    pub(crate) fn redis(&self) -> &redis::Script {
        &self.script
    }

    /// SHA1 of the script body, as `EVALSHA` wants it.
    pub fn sha1(&self) -> &str {
        self.script.get_hash()
    }
}

macro_rules! job_script {
    ($(#[$doc:meta])* $ident:ident, $name:literal, $keys:literal) => {
        $(#[$doc])*
        pub static $ident: JobScript = JobScript {
            name: $name,
            keys: $keys,
            script: LazyLock::new(|| {
                // `core/scripts` links to the repository's `scripts/`, so
                // the published crate carries the scripts it embeds.
                redis::Script::new(include_str!(concat!("../scripts/", $name, ".lua")))
            }),
        };
    };
}

job_script!(
    /// Acknowledge finished jobs (owner-checked) and delete them from `ready`.
    ACK, "ack-2", 2
);
job_script!(
    /// [`ACK`] with one `XACKDEL` (Redis 8.2+) instead of `XACK` + `XDEL`.
    ACKDEL, "ackdel-2", 2
);
job_script!(
    /// Move a failed job from `ready` to `scheduled` for its next attempt.
    RETRY, "retry-3", 3
);
job_script!(
    /// Move a job from `ready` to `dead` with its failure context.
    DEAD, "dead-3", 3
);
job_script!(
    /// Move due jobs from `scheduled` to `ready`, bounded per call.
    PROMOTE, "promote-4", 4
);
job_script!(
    /// Give fetched but unstarted jobs back to `ready` (shutdown).
    REQUEUE, "requeue-2", 2
);
job_script!(
    /// Refresh the lease (idle time) of running jobs.
    EXTEND, "extend-1", 1
);
job_script!(
    /// Claim jobs of dead workers; dead-letter the ones delivered too often.
    RECLAIM, "reclaim-3", 3
);
job_script!(
    /// Move dead jobs back to `ready`, deleting them from `dead`.
    REPLAY, "replay-3", 3
);
job_script!(
    /// Remove long-idle consumers that hold no pending entries.
    REAP, "reap-1", 1
);

job_script!(
    /// Enqueue a job with a uniqueness key or a record: reserve, add,
    /// record, atomically.
    ENQUEUE, "enqueue-6", 6
);
job_script!(
    /// Start a job with a record or a `queued` uniqueness key.
    START, "start-3", 3
);
job_script!(
    /// Settle an attempt of a tracked job: record, key, chain, batch, group.
    SETTLE, "settle-14", 14
);
job_script!(
    /// Report a running job's progress; refresh its lease.
    PROGRESS, "progress-2", 2
);
job_script!(
    /// Cancel a job by id through its record.
    CANCEL, "cancel-4", 4
);

job_script!(
    /// Cancel a job that keeps no record before any worker fetched it.
    WITHDRAW, "withdraw-4", 4
);
job_script!(
    /// Remove undelivered ready entries, scheduled members or dead letters.
    PURGE, "purge-4", 4
);

job_script!(
    /// Take tokens from a fleet-wide rate limit (GCRA, server clock).
    RATE, "rate-1", 1
);
job_script!(
    /// Let a job start under its type's and key's rate limits and its
    /// key's hold, or defer it (no attempt spent).
    THROTTLE, "throttle-6", 6
);
job_script!(
    /// Hold a key back fleet-wide after an upstream 429 and defer the job.
    HOLD, "hold-4", 4
);
job_script!(
    /// Enqueue jobs on a queue with limits: refuse them, or add them and
    /// shed the oldest undelivered jobs, by the queue's policy.
    ADMIT, "admit-4", 4
);
job_script!(
    /// Enqueue the job of one tick of a cron schedule, once fleet-wide.
    CRON_FIRE, "cron-fire-2", 2
);
job_script!(
    /// Enqueue a job of a group: admit it, or let it wait behind its group.
    GROUP_ENQUEUE, "group-enqueue-6", 6
);
job_script!(
    /// Admit a grouped job at start, or move it behind its group.
    GROUP_START, "group-start-6", 6
);

/// Every script, for tools and tests.
pub fn all() -> [&'static JobScript; 24] {
    [
        &ACK,
        &ACKDEL,
        &RETRY,
        &DEAD,
        &PROMOTE,
        &REQUEUE,
        &EXTEND,
        &RECLAIM,
        &REPLAY,
        &REAP,
        &ENQUEUE,
        &START,
        &SETTLE,
        &PROGRESS,
        &CANCEL,
        &WITHDRAW,
        &PURGE,
        &RATE,
        &ADMIT,
        &CRON_FIRE,
        &GROUP_ENQUEUE,
        &GROUP_START,
        &THROTTLE,
        &HOLD,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names_state_their_key_count_and_headers_document_it() {
        for s in all() {
            assert!(s.name.ends_with(&format!("-{}", s.keys)), "{}", s.name);
            let body = std::fs::read_to_string(format!(
                "{}/../scripts/{}.lua",
                env!("CARGO_MANIFEST_DIR"),
                s.name
            ))
            .unwrap();
            for k in 1..=s.keys {
                assert!(
                    body.contains(&format!("KEYS[{k}]")),
                    "{} lacks KEYS[{k}]",
                    s.name
                );
            }
            assert!(
                !body.contains(&format!("KEYS[{}]", s.keys + 1)),
                "{}",
                s.name
            );
            assert!(body.contains("Returns:"), "{} header lacks Returns", s.name);
            assert_eq!(s.sha1().len(), 40);
        }
    }
}
