//! Typed jobs: a Rust type that is a job's payload and names its job type,
//! so producer and worker agree on both at compile time.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::retry::RetryPolicy;

/// A job type as a Rust type: the type is the payload (MessagePack, maps
/// keep their field names) and [`Job::NAME`] is the `type` field on the
/// wire. Enqueue it with `Producer::enqueue(&job)`, serve it with
/// `WorkerBuilder::job::<MyJob>(handler)`: a typo in a job type, or a
/// payload of the wrong shape, no longer compiles.
///
/// ```
/// use jobstream_core::{Job, JobOptions};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Serialize, Deserialize)]
/// struct SendEmail {
///     to: String,
/// }
///
/// impl Job for SendEmail {
///     const NAME: &'static str = "send_email";
///     const QUEUE: &'static str = "emails";
///     fn options() -> Option<JobOptions> {
///         Some(JobOptions::new().timeout(Duration::from_secs(30)).max_attempts(5))
///     }
/// }
/// ```
///
/// Producers in other languages write the same job as `type = NAME` and a
/// MessagePack payload of the same shape (see docs/wire-format.md); the
/// string API (`Producer::enqueue_named`, `WorkerBuilder::handle`) stays
/// for types that have no Rust struct.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The job type on the wire (the `type` field). Keep it stable: jobs
    /// already enqueued carry it.
    const NAME: &'static str;
    /// The queue a job of this type goes to unless told otherwise.
    const QUEUE: &'static str = "default";
    /// Keep a record of every job of this type for this long after it
    /// ends (state, attempts, progress, result; `None`, the default, keeps
    /// none). The producer writes it into each job (`record_ms`).
    const KEEP_RECORD: Option<std::time::Duration> = None;
    /// Timeout and retry policy on the worker; `None` (the default) takes
    /// the worker's defaults.
    fn options() -> Option<JobOptions> {
        None
    }
}

/// How one job type runs: timeout and retry policy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobOptions {
    /// Longest a handler may run before the attempt fails with class
    /// `timeout`. A job's `timeout_ms` field overrides it.
    pub timeout: Duration,
    /// Attempts and backoff.
    pub retry: RetryPolicy,
}

impl Default for JobOptions {
    /// 5 minutes timeout, [`RetryPolicy::default`].
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(300),
            retry: RetryPolicy::default(),
        }
    }
}

impl JobOptions {
    /// The defaults: 5 minutes timeout, [`RetryPolicy::default`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Longest a handler may run before the attempt fails with class
    /// `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts and backoff.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Handler runs allowed in all, the first included (1 = never retry);
    /// the backoff stays as it is.
    pub fn max_attempts(mut self, max_attempts: u32) -> Self {
        self.retry.max_attempts = max_attempts;
        self
    }
}
