//! The worker the runner plays cases against: a real `jobstream-worker`
//! with the handlers conformance/README.md lists, recording every attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jobstream_worker::{
    Backoff, Handler, JobContext, JobError, JobOptions, JobResult, RetryPolicy, Worker,
};
use serde::Deserialize;

/// What a handler saw on one attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The job's type.
    pub job_type: String,
    /// `JobContext::attempt`.
    pub attempt: u32,
    /// When the handler started.
    pub started: Instant,
    /// The payload's bytes.
    pub payload: Vec<u8>,
    /// `JobContext::idempotency_key`.
    pub idempotency_key: Option<String>,
    /// Every field's bytes, by name (the first of duplicates).
    pub fields: HashMap<String, Vec<u8>>,
    /// Whether the handler returned success.
    pub succeeded: bool,
}

/// Attempts by job id, shared by the handlers and the runner.
#[derive(Debug, Clone, Default)]
pub struct Seen(Arc<Mutex<HashMap<String, Vec<Attempt>>>>);

impl Seen {
    fn push(&self, id: &str, attempt: Attempt) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(id.to_owned()).or_default().push(attempt);
    }

    /// The attempts of job `id`, in the order they started.
    pub fn of(&self, id: &str) -> Vec<Attempt> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(id).cloned().unwrap_or_default()
    }

    /// Ids of every job a handler saw.
    pub fn ids(&self) -> Vec<String> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.keys().cloned().collect()
    }
}

/// Field names the runner shows the vectors' `seen.fields`.
const SEEN_FIELDS: &[&str] = &[
    "type",
    "payload",
    "id",
    "attempt",
    "enqueued_at",
    "max_attempts",
    "timeout_ms",
    "idempotency_key",
    "deadline_ms",
    "on_deadline",
    "traceparent",
    "tracestate",
    "unique_key",
    "unique_for",
    "unique_ttl_ms",
    "record_ms",
    "group",
    "rate_key",
    "wire_version",
    "tenant",
    "x-request-id",
    "last_error",
    "last_error_class",
];

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Ok,
    FailOnce,
    Fail,
    Permanent,
    Slow,
    Typed,
}

struct Conformance {
    behaviour: Behaviour,
    seen: Seen,
}

/// The payload `conformance.typed` expects.
#[derive(Debug, Deserialize)]
struct Typed {
    #[allow(dead_code)] // decoded to check its shape, not used
    to: String,
    #[allow(dead_code)]
    n: u32,
}

impl Handler for Conformance {
    async fn handle(&self, job: JobContext) -> JobResult {
        let started = Instant::now();
        let result = match self.behaviour {
            Behaviour::Ok => Ok(()),
            Behaviour::FailOnce if job.attempt() <= 1 => {
                Err(JobError::retry("conformance: first attempt fails"))
            }
            Behaviour::FailOnce => Ok(()),
            Behaviour::Fail => Err(JobError::retry("conformance: always fails")),
            Behaviour::Permanent => Err(JobError::permanent("conformance: permanent")),
            Behaviour::Slow => {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                Ok(())
            }
            Behaviour::Typed => job.payload::<Typed>().map(drop),
        };
        let fields = SEEN_FIELDS
            .iter()
            .filter_map(|name| job.field(name).map(|v| ((*name).to_owned(), v.to_vec())))
            .collect();
        self.seen.push(
            job.id(),
            Attempt {
                job_type: job.job_type().to_owned(),
                attempt: job.attempt(),
                started,
                payload: job.payload_bytes().to_vec(),
                idempotency_key: job.idempotency_key().map(str::to_owned),
                fields,
                succeeded: result.is_ok(),
            },
        );
        result
    }
}

/// A worker serving `queue` with the conformance handlers.
pub fn worker(url: &str, queue: &str, seen: &Seen) -> anyhow::Result<Worker> {
    let options = JobOptions::new().timeout(Duration::from_secs(10)).retry(
        RetryPolicy::exponential(3, Duration::from_millis(50), Duration::from_millis(50))
            .backoff(Backoff::Fixed(Duration::from_millis(50))),
    );
    let mut builder = Worker::builder(url).queue(queue).concurrency(16);
    for (name, behaviour) in [
        ("conformance.ok", Behaviour::Ok),
        ("conformance.fail_once", Behaviour::FailOnce),
        ("conformance.fail", Behaviour::Fail),
        ("conformance.permanent", Behaviour::Permanent),
        ("conformance.slow", Behaviour::Slow),
        ("conformance.typed", Behaviour::Typed),
    ] {
        builder = builder.handler_with(
            name,
            options.clone(),
            Conformance {
                behaviour,
                seen: seen.clone(),
            },
        );
    }
    Ok(builder.build()?)
}
