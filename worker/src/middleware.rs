//! Middleware: code that runs around every job — an error tracker, a
//! custom span, timing. One small trait; the first registered runs
//! outermost. Middleware runs inside the job's timeout and panic capture,
//! so a panicking or hanging middleware fails the attempt like a handler
//! would.

use std::future::Future;
use std::sync::Arc;

use crate::handler::{BoxFuture, DynHandler, JobContext};
use crate::job_error::JobResult;

/// Code around every job. Implement it with a plain `async fn`; call
/// `next.run(job)` to go on (or return without calling it to stop the job
/// with your own result).
///
/// ```
/// use jobstream_worker::{JobContext, JobResult, Middleware, Next};
///
/// struct Timing;
///
/// impl Middleware for Timing {
///     async fn around(&self, job: JobContext, next: Next<'_>) -> JobResult {
///         let started = std::time::Instant::now();
///         let job_type = job.job_type().to_owned();
///         let result = next.run(job).await;
///         println!("{job_type} took {:?}: ok={}", started.elapsed(), result.is_ok());
///         result
///     }
/// }
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Runs around one job: before, `next.run(job)`, after.
    fn around(&self, job: JobContext, next: Next<'_>) -> impl Future<Output = JobResult> + Send;
}

/// The rest of the chain: the middleware registered after this one, then
/// the handler.
pub struct Next<'a> {
    rest: &'a [Arc<dyn DynMiddleware>],
    handler: &'a dyn DynHandler,
}

impl std::fmt::Debug for Next<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Next")
            .field("middleware_left", &self.rest.len())
            .finish_non_exhaustive()
    }
}

impl<'a> Next<'a> {
    /// Runs the rest of the chain for `job` and returns its result.
    pub fn run(self, job: JobContext) -> BoxFuture<'a, JobResult> {
        match self.rest.split_first() {
            Some((m, rest)) => m.around_boxed(
                job,
                Next {
                    rest,
                    handler: self.handler,
                },
            ),
            None => self.handler.handle_boxed(job),
        }
    }
}

/// The object-safe form of [`Middleware`] the registry keeps.
pub(crate) trait DynMiddleware: Send + Sync + 'static {
    fn around_boxed<'a>(&'a self, job: JobContext, next: Next<'a>) -> BoxFuture<'a, JobResult>;
}

impl<M: Middleware> DynMiddleware for M {
    fn around_boxed<'a>(&'a self, job: JobContext, next: Next<'a>) -> BoxFuture<'a, JobResult> {
        Box::pin(self.around(job, next))
    }
}

/// Runs `job` through `middleware`, then `handler`. Without middleware
/// this is the handler's own future: no cost for a feature not used.
pub(crate) fn run<'a>(
    middleware: &'a [Arc<dyn DynMiddleware>],
    handler: &'a dyn DynHandler,
    job: JobContext,
) -> BoxFuture<'a, JobResult> {
    Next {
        rest: middleware,
        handler,
    }
    .run(job)
}
