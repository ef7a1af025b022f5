//! The chaos job: what it does, and the keys where runs are recorded.

use serde::{Deserialize, Serialize};

/// Payload of a `chaos` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChaosJob {
    /// The harness's own id for the job (also in the `chaos_id` field).
    pub chaos_id: u64,
    /// Fail transiently on the first k attempts.
    pub fail_attempts: u32,
    /// Fail permanently.
    pub permanent: bool,
    /// Simulated work, ms.
    pub work_ms: u64,
}

/// Hash `<chaos_id>:<attempt>` → number of runs of that attempt.
pub fn exec_key(run: &str) -> String {
    format!("chaos:{run}:exec")
}

/// Hash `<chaos_id>` → 1 once a run of the job succeeded.
pub fn done_key(run: &str) -> String {
    format!("chaos:{run}:done")
}
