//! Handlers, routed by job type, and what they get to see of a job.

use jobstream_core::{Envelope, JobOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::job_error::{JobError, JobResult};
use crate::tracking::{LaneCtx, Live};
use jobstream_core::store_lifecycle::BatchSummary;

/// A job as a handler sees it, with the worker's shared state `S` (set
/// with [`WorkerBuilder::state`](crate::WorkerBuilder::state); `()` when
/// there is none). Cheap to clone when `S` is.
///
/// ```no_run
/// use jobstream_worker::{JobContext, JobResult, Worker};
///
/// #[derive(Clone)]
/// struct App {
///     greeting: std::sync::Arc<str>,
/// }
///
/// async fn greet(name: String, ctx: JobContext<App>) -> JobResult {
///     println!("{} {name} (job {})", ctx.state().greeting, ctx.id());
///     Ok(())
/// }
///
/// let worker = Worker::builder("redis://127.0.0.1:6379")
///     .state(App { greeting: "hello".into() })
///     .handle("greet", greet)
///     .build();
/// # let _ = worker;
/// ```
#[derive(Clone)]
pub struct JobContext<S = ()> {
    pub(crate) envelope: Arc<Envelope>,
    pub(crate) entry_id: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) deliveries: u64,
    pub(crate) max_attempts: u32,
    pub(crate) state: S,
    /// The line back to the worker, for progress, lease, cancellation and
    /// the result; `None` in a context a test built.
    pub(crate) live: Option<Arc<Live>>,
    /// Its lane: lease and progress; `None` in a context a test built.
    pub(crate) lane: Option<Arc<LaneCtx>>,
}

/// Shows the job, not the state.
impl<S> std::fmt::Debug for JobContext<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id())
            .field("entry_id", &self.entry_id)
            .field("job_type", &self.job_type())
            .field("queue", &self.queue)
            .field("attempt", &self.attempt())
            .field("deliveries", &self.deliveries)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// This context with `state` attached.
    pub(crate) fn with_state<S>(self, state: S) -> JobContext<S> {
        JobContext {
            envelope: self.envelope,
            entry_id: self.entry_id,
            queue: self.queue,
            deliveries: self.deliveries,
            max_attempts: self.max_attempts,
            state,
            live: self.live,
            lane: self.lane,
        }
    }
}

impl<S> JobContext<S> {
    /// The worker's shared state (a connection pool, a client, config).
    pub fn state(&self) -> &S {
        &self.state
    }
    /// Reports progress (percent, capped at 100, and a short message, cut
    /// at 256 bytes) into the job's record, where
    /// `Producer::job` and `jobstream job show` read it, and refreshes the
    /// job's lease. A job without a record only has its lease refreshed.
    /// Never fails the job: a write that fails is logged.
    pub async fn progress(&self, percent: u8, message: &str) {
        if let Some(lane) = &self.lane {
            lane.progress(&self.entry_id, self.id(), percent.min(100), message)
                .await;
        }
    }

    /// Refreshes the job's lease now (the worker also does it on its own
    /// every `lease_refresh`): for a handler that blocks its task for long
    /// stretches. False when the lease is lost: another worker has the job.
    pub async fn extend_lease(&self) -> bool {
        match &self.lane {
            Some(lane) => lane.extend_lease(&self.entry_id, self.id()).await,
            // A context built by a test: no lease to lose.
            None => true,
        }
    }

    /// True once cancellation of this job was asked for
    /// (`Producer::cancel`, `jobstream job cancel`). Only jobs with a
    /// record can be cancelled; the signal reaches the worker within
    /// about a second. Stopping is up to the handler: return
    /// [`JobError::cancelled`] to end the job as `cancelled`.
    pub fn is_cancelled(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.cancel.is_cancelled())
    }

    /// Resolves when cancellation of this job is asked for (never, for a
    /// job without a record): `select!` on it next to the work.
    pub async fn cancelled(&self) {
        match &self.live {
            Some(live) => live.cancel.cancelled().await,
            None => std::future::pending().await,
        }
    }

    /// Keeps `value` as the job's result in its record (for handlers
    /// registered with `handle`; a typed handler just returns its value).
    /// Ignored for a job without a record; a value above 64 KiB of
    /// MessagePack is dropped with a warning.
    pub fn set_result<R: Serialize + ?Sized>(&self, value: &R) {
        let Some(live) = &self.live else { return };
        match rmp_serde::to_vec_named(value) {
            Ok(bytes) => live.set_result_bytes(bytes),
            Err(e) => {
                tracing::warn!(job_id = %self.id(), error = %e, "job result could not be encoded; dropped")
            }
        }
    }

    /// The previous step's result, on a step of a chain after the first
    /// (`None` when that step returned nothing).
    pub fn previous_result<T: DeserializeOwned>(&self) -> Result<Option<T>, JobError> {
        match self.envelope.prev_result() {
            None => Ok(None),
            Some(bytes) => rmp_serde::from_slice(bytes).map(Some).map_err(|e| {
                JobError::malformed(format!(
                    "previous step's result does not decode: {}",
                    without_values(&e.to_string())
                ))
            }),
        }
    }

    /// On a batch's completion job: how the batch's members ended
    /// (`None` on any other job, or when the batch's record expired).
    pub async fn batch(&self) -> Result<Option<BatchSummary>, JobError> {
        let (Some(lane), Some(id)) = (&self.lane, self.envelope.batch_done.as_deref()) else {
            return Ok(None);
        };
        lane.store
            .batch_summary(id)
            .await
            .map_err(|e| JobError::retry(format!("could not read the batch: {e}")))
    }

    /// The job's group (field `group`), if it has one: at most the
    /// queue's group concurrency of its jobs run at once, fleet-wide.
    pub fn group(&self) -> Option<&str> {
        self.envelope.group.as_deref()
    }

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
    /// The job's rate key (`rate_key`), if any: its bucket of the queue's
    /// per-key rate limit, and what [`JobError::rate_limited`](crate::JobError::rate_limited)
    /// holds back.
    pub fn rate_key(&self) -> Option<&str> {
        self.envelope.rate_key.as_deref()
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

/// A handler function: `async fn(payload: T, ctx: JobContext<S>) ->
/// JobResult`, or a closure of that shape. Implemented for every such
/// function; you never implement it yourself.
///
/// The function may return a value instead of `()`: `Ok(receipt)`. For a
/// job that keeps a record it is stored there (MessagePack, at most 64
/// KiB) for `Producer::wait_for` and `Producer::job`; otherwise it is
/// dropped.
pub trait JobFn<T, S>: Fn(T, JobContext<S>) -> Self::Future + Send + Sync + 'static {
    /// What the function returns on success.
    type Value: Serialize + Send + 'static;
    /// The future the function returns.
    type Future: Future<Output = Result<Self::Value, JobError>> + Send + 'static;
}

impl<T, S, F, Fut, R> JobFn<T, S> for F
where
    F: Fn(T, JobContext<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, JobError>> + Send + 'static,
    R: Serialize + Send + 'static,
{
    type Value = R;
    type Future = Fut;
}

/// Adapter for a [`JobFn`] with a typed payload and the worker's state.
pub(crate) struct TypedFn<T, S, F> {
    f: F,
    state: S,
    _payload: PhantomData<fn() -> T>,
}

impl<T, S, F> TypedFn<T, S, F> {
    pub(crate) fn new(f: F, state: S) -> Self {
        Self {
            f,
            state,
            _payload: PhantomData,
        }
    }
}

impl<T, S, F> Handler for TypedFn<T, S, F>
where
    T: DeserializeOwned + Send + 'static,
    S: Clone + Send + Sync + 'static,
    F: JobFn<T, S>,
{
    async fn handle(&self, job: JobContext) -> JobResult {
        let payload = job.payload::<T>()?;
        let live = job.live.clone();
        let value = (self.f)(payload, job.with_state(self.state.clone())).await?;
        if let Some(live) = live.filter(|l| l.keep_result) {
            match rmp_serde::to_vec_named(&value) {
                Ok(bytes) => live.set_result_bytes(bytes),
                Err(e) => {
                    tracing::warn!(job_id = %live.job_id, error = %e, "job result could not be encoded; dropped")
                }
            }
        }
        Ok(())
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
