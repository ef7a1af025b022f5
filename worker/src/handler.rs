//! Handlers, routed by job type, and what they get to see of a job.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use jobstream_core::{Envelope, RetryPolicy};
use serde::de::DeserializeOwned;

use crate::job_error::{JobError, JobResult};

/// A job as a handler sees it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub(crate) envelope: Arc<Envelope>,
    pub(crate) entry_id: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) deliveries: u64,
    pub(crate) max_attempts: u32,
}

impl JobContext {
    /// The job id, stable across retries and replays. Use it (or the
    /// idempotency key) to make a handler's effect happen once.
    pub fn id(&self) -> &str {
        self.envelope.job_id(&self.entry_id)
    }
    /// The stream entry id of this delivery (changes on every retry).
    pub fn entry_id(&self) -> &str {
        &self.entry_id
    }
    /// The job type.
    pub fn job_type(&self) -> &str {
        &self.envelope.job_type
    }
    /// The queue.
    pub fn queue(&self) -> &str {
        &self.queue
    }
    /// This attempt, 1-based.
    pub fn attempt(&self) -> u32 {
        self.envelope.attempt
    }
    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    /// How often this attempt has been delivered (above 1 after a worker
    /// died while running it).
    pub fn deliveries(&self) -> u64 {
        self.deliveries
    }
    /// First enqueue time, unix ms.
    pub fn enqueued_at_ms(&self) -> Option<u64> {
        self.envelope.enqueued_at(&self.entry_id)
    }
    /// The caller's idempotency key, if any.
    pub fn idempotency_key(&self) -> Option<&str> {
        self.envelope.idempotency_key.as_deref()
    }
    /// W3C traceparent, if the producer sent one.
    pub fn traceparent(&self) -> Option<&str> {
        self.envelope.traceparent.as_deref()
    }
    /// The error of the previous attempt, if this is a retry.
    pub fn last_error(&self) -> Option<&str> {
        self.envelope.last_error.as_deref()
    }
    /// A field of the job by name, as the producer wrote it (the first
    /// occurrence); meant for extra (non wire-format) fields.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.envelope
            .fields()
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
    /// The raw MessagePack payload.
    pub fn payload_bytes(&self) -> &[u8] {
        self.envelope.payload()
    }
    /// The payload decoded into `T`; a mismatch is a malformed job.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        rmp_serde::from_slice(self.envelope.payload()).map_err(|e| {
            JobError::malformed(format!(
                "payload does not decode: {}",
                without_values(&e.to_string())
            ))
        })
    }
}

/// `msg` with every quoted value (`` `…` `` or `"…"`) replaced by `…`:
/// serde's messages quote the offending payload value, and payloads never
/// go into logs or dead letters.
fn without_values(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut quote: Option<char> = None;
    for c in msg.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '`' || c == '"' => {
                quote = Some(c);
                out.push('…');
            }
            None => out.push(c),
        }
    }
    out
}

/// Runs jobs of one type. Implement it with a plain `async fn`, no macro:
///
/// ```
/// use jobstream_worker::{Handler, JobContext, JobResult};
///
/// struct Resize;
///
/// impl Handler for Resize {
///     async fn handle(&self, job: JobContext) -> JobResult {
///         let (w, h): (u32, u32) = job.payload()?;
///         println!("resizing to {w}x{h}");
///         Ok(())
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Runs one job. Return `Ok(())` when done, or a [`JobError`] that says
    /// how to treat the failure.
    fn handle(&self, job: JobContext) -> impl Future<Output = JobResult> + Send;
}

/// The object-safe form of [`Handler`] the registry keeps: the future boxed.
pub(crate) trait DynHandler: Send + Sync + 'static {
    fn handle_boxed(&self, job: JobContext) -> BoxFuture<'_, JobResult>;
}

impl<H: Handler> DynHandler for H {
    fn handle_boxed(&self, job: JobContext) -> BoxFuture<'_, JobResult> {
        Box::pin(self.handle(job))
    }
}

/// A boxed, sendable future: what the registry runs.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Adapter for `async fn(T, JobContext) -> JobResult` closures with a typed
/// payload.
pub(crate) struct TypedFn<T, F> {
    f: F,
    _payload: PhantomData<fn() -> T>,
}

impl<T, F> TypedFn<T, F> {
    pub(crate) fn new(f: F) -> Self {
        Self {
            f,
            _payload: PhantomData,
        }
    }
}

impl<T, F, Fut> Handler for TypedFn<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = JobResult> + Send + 'static,
{
    async fn handle(&self, job: JobContext) -> JobResult {
        let payload = job.payload::<T>()?;
        (self.f)(payload, job).await
    }
}

/// How one job type runs: timeout and retry policy.
#[derive(Debug, Clone)]
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

pub(crate) struct Route {
    pub(crate) handler: Arc<dyn DynHandler>,
    pub(crate) options: JobOptions,
}

/// Handlers by job type.
#[derive(Default)]
pub(crate) struct Registry {
    routes: HashMap<String, Route>,
    /// Around every job, outermost first.
    pub(crate) middleware: Vec<Arc<dyn crate::middleware::DynMiddleware>>,
}

impl Registry {
    /// Registers `job_type`; false when it was registered already (the
    /// first registration is kept).
    pub(crate) fn insert(
        &mut self,
        job_type: &str,
        handler: Arc<dyn DynHandler>,
        options: JobOptions,
    ) -> bool {
        if self.routes.contains_key(job_type) {
            return false;
        }
        self.routes
            .insert(job_type.to_owned(), Route { handler, options });
        true
    }

    pub(crate) fn get(&self, job_type: &str) -> Option<&Route> {
        self.routes.get(job_type)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub(crate) fn types(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        t.sort();
        t
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_payload_values_are_left_out_of_decode_errors() {
        assert_eq!(
            super::without_values("invalid type: integer `123456789`, expected a string"),
            "invalid type: integer …, expected a string"
        );
        assert_eq!(
            super::without_values("unknown variant \"secret\", expected `A` or `B`"),
            "unknown variant …, expected … or …"
        );
    }
}
