//! jobstream-worker: run jobs from jobstream queues.
//!
//! ```no_run
//! use jobstream_worker::{JobContext, JobError, Worker};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Email { to: String }
//!
//! # async fn demo() -> Result<(), jobstream_worker::Error> {
//! Worker::builder("redis://127.0.0.1:6379")
//!     .queue("emails")
//!     .concurrency(50)
//!     .handle("send_email", |email: Email, job: JobContext| async move {
//!         if email.to.is_empty() {
//!             return Err(JobError::permanent("no recipient"));
//!         }
//!         println!("sending job {} to {}", job.id(), email.to);
//!         Ok(())
//!     })
//!     .build()?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! # Layout
//!
//! One file per duty, each a `run(self, shutdown)` loop; `runtime.rs`
//! composes them and owns the shutdown order.
//! - `fetcher.rs`: one per queue (lane): `XREADGROUP`, sized to the slots
//!   the pool gives it.
//! - `processor.rs`: decode, route, run with timeout and panic capture, classify.
//! - `outcome.rs`: the pure classification of an attempt's result.
//! - `acker.rs`: writes outcomes, acks coalesced per flush.
//! - `lease.rs`: refreshes the lease of running jobs.
//! - `reclaimer.rs`: takes over jobs of dead workers; reaps idle consumers.
//! - `promoter.rs`: moves due jobs from `scheduled` to `ready`.
//! - `cron.rs`: periodic jobs ([`Schedule`]): one task per schedule,
//!   each tick enqueued once fleet-wide (`cron-fire-2`).
//! - `handler.rs`, `job_error.rs`: the API handlers see.
//! - `queues.rs`, `slots.rs`: the queues a worker serves and how they
//!   share its slots (weighted or strict, per-queue caps).
//! - `trace.rs`: a job's span continues its producer's trace (W3C
//!   `traceparent`); `otel.rs` (feature `otel`) exports spans over OTLP.
//! - `events.rs`: what happens to jobs, reported once to sinks (the log
//!   today, metrics later).

mod acker;
mod cron;
mod events;
mod fetcher;
mod handler;
mod holds;
mod http;
mod inflight;
mod job_error;
mod lease;
mod logging;
mod metrics;
mod middleware;
#[cfg(feature = "otel")]
pub mod otel;
pub mod outcome;
mod pause;
mod processor;
mod promote_only;
mod promoter;
mod queues;
mod reclaimer;
mod runtime;
mod shutdown;
mod slots;
mod startup;
pub mod testing;
mod trace;
mod tracking;

use std::future::Future;
use std::sync::Arc;

pub use cron::{Missed, Schedule};
pub use handler::{BoxFuture, Handler, JobContext, JobFn};
pub use http::serve_queue_metrics;
pub use job_error::{FailureKind, JobError, JobResult};
pub use jobstream_core::store_lifecycle::BatchSummary;
pub use jobstream_core::{
    Backoff, Error, Job, JobOptions, Limits, RateLimit, RetryPolicy, Timings, TlsOptions,
};
pub use logging::init_logging;
pub use middleware::{Middleware, Next};
pub use promote_only::run_promoter;
pub use queues::QueueOptions;
use serde::de::DeserializeOwned;
pub use shutdown::{ShutdownHandle, signal};
pub use slots::QueueOrder;

use crate::handler::{DynHandler, Registry, TypedFn};

/// Configures a [`Worker`]. `S` is the shared state handlers receive
/// ([`WorkerBuilder::state`]); `()` until one is set.
pub struct WorkerBuilder<S = ()> {
    url: String,
    queues: Vec<(String, QueueOptions)>,
    order: QueueOrder,
    group: String,
    prefix: String,
    concurrency: usize,
    timings: Timings,
    limits: Limits,
    defaults: JobOptions,
    routes: Vec<(String, Arc<dyn DynHandler>, Option<JobOptions>)>,
    middleware: Vec<Arc<dyn middleware::DynMiddleware>>,
    tls: Option<TlsOptions>,
    state: S,
    /// Typed jobs served, with the queue producers put them on
    /// (`Job::QUEUE`): a worker that does not serve it is warned about.
    typed: Vec<(&'static str, &'static str)>,
    /// Where `/metrics`, `/livez` and `/readyz` are served, if anywhere.
    http: Option<std::net::SocketAddr>,
    /// Periodic jobs this worker fires (with the rest of the fleet).
    schedules: Vec<Schedule>,
}

/// Shows the configuration, never the password in the URL.
impl<S> std::fmt::Debug for WorkerBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("url", &jobstream_core::connection::redact_url(&self.url))
            .field("queues", &self.queues)
            .field("order", &self.order)
            .field("group", &self.group)
            .field("prefix", &self.prefix)
            .field("concurrency", &self.concurrency)
            .field(
                "job_types",
                &self
                    .routes
                    .iter()
                    .map(|(t, _, _)| t.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<S: Clone + Send + Sync + 'static> WorkerBuilder<S> {
    /// Shared state for handlers registered after this call (a database
    /// pool, an HTTP client, configuration): each job's
    /// [`JobContext::state`] is a clone of it, so make it cheap to clone
    /// (pools usually are; otherwise wrap it in an `Arc`). The state's type
    /// is checked at compile time: a handler that takes `JobContext<App>`
    /// is accepted only once `.state(app)` was given:
    ///
    /// ```compile_fail
    /// # use jobstream_worker::{JobContext, JobResult, Worker};
    /// #[derive(Clone)]
    /// struct App;
    /// async fn greet(_name: String, _ctx: JobContext<App>) -> JobResult { Ok(()) }
    /// // error: expected `JobContext<()>`, found `JobContext<App>`
    /// let builder = Worker::builder("redis://127.0.0.1:6379").handle("greet", greet);
    /// ```
    pub fn state<S2: Clone + Send + Sync + 'static>(self, state: S2) -> WorkerBuilder<S2> {
        WorkerBuilder {
            url: self.url,
            queues: self.queues,
            order: self.order,
            group: self.group,
            prefix: self.prefix,
            concurrency: self.concurrency,
            timings: self.timings,
            limits: self.limits,
            defaults: self.defaults,
            routes: self.routes,
            middleware: self.middleware,
            tls: self.tls,
            state,
            typed: self.typed,
            http: self.http,
            schedules: self.schedules,
        }
    }

    /// Serves the typed job `J` with `handler`, an `async fn(J,
    /// JobContext<S>) -> JobResult` (or a closure of that shape), under
    /// `J`'s own options ([`Job::options`]) or else the worker's defaults.
    /// The payload arrives as `J`; one that does not decode sends the job
    /// to dead as `malformed`.
    ///
    /// This serves the job type; which queues the worker reads is set by
    /// [`queue`](Self::queue) (`J::QUEUE` is where producers put it).
    pub fn job<J: Job>(mut self, handler: impl JobFn<J, S>) -> Self {
        let options = J::options();
        let state = self.state.clone();
        self.typed.push((J::NAME, J::QUEUE));
        self.route(J::NAME, Arc::new(TypedFn::new(handler, state)), options)
    }

    /// Serves `job_type` with an async function taking the decoded payload
    /// and the job's context, `async fn(T, JobContext<S>) -> JobResult`.
    /// For job types without a Rust type of their own (produced by other
    /// languages); prefer [`job`](Self::job) for typed jobs. A payload that
    /// does not decode into `T` sends the job to dead as `malformed`.
    pub fn handle<T: DeserializeOwned + Send + 'static>(
        self,
        job_type: &str,
        f: impl JobFn<T, S>,
    ) -> Self {
        let state = self.state.clone();
        self.route(job_type, Arc::new(TypedFn::new(f, state)), None)
    }

    /// [`WorkerBuilder::handle`] with the job type's own options.
    pub fn handle_with<T: DeserializeOwned + Send + 'static>(
        self,
        job_type: &str,
        options: JobOptions,
        f: impl JobFn<T, S>,
    ) -> Self {
        let state = self.state.clone();
        self.route(job_type, Arc::new(TypedFn::new(f, state)), Some(options))
    }

    fn route(
        mut self,
        job_type: &str,
        handler: Arc<dyn DynHandler>,
        options: Option<JobOptions>,
    ) -> Self {
        self.routes.push((job_type.to_owned(), handler, options));
        self
    }

    /// Serves `queue` too, with weight 1 and no cap of its own. A worker
    /// that adds no queue serves `default`.
    ///
    /// ```
    /// # use jobstream_worker::{QueueOptions, Worker};
    /// let builder = Worker::builder("redis://127.0.0.1:6379")
    ///     .queue_with("critical", QueueOptions::new().weight(6))
    ///     .queue_with("default", QueueOptions::new().weight(3))
    ///     .queue_with("low", QueueOptions::new().weight(1).max_concurrency(2));
    /// # let _ = builder;
    /// ```
    pub fn queue(self, queue: &str) -> Self {
        self.queue_with(queue, QueueOptions::new())
    }

    /// Serves `queue` with its weight and concurrency cap. All queues share
    /// one pool of [`concurrency`](Self::concurrency) slots and one Redis
    /// client; [`queue_order`](Self::queue_order) says how.
    pub fn queue_with(mut self, queue: &str, options: QueueOptions) -> Self {
        self.queues.push((queue.to_owned(), options));
        self
    }

    /// How the queues share the slots: by weight (the default) or in strict
    /// priority, in the order they were added.
    pub fn queue_order(mut self, order: QueueOrder) -> Self {
        self.order = order;
        self
    }

    /// Most jobs run at once, over all queues (default 10).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Consumer group (default `workers`).
    pub fn group(mut self, group: &str) -> Self {
        group.clone_into(&mut self.group);
        self
    }

    /// Key prefix (default `jobstream`).
    pub fn prefix(mut self, prefix: &str) -> Self {
        prefix.clone_into(&mut self.prefix);
        self
    }

    /// Timings (see docs/configuration.md).
    pub fn timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// TLS for a `rediss://` URL (feature `tls`): the CA to trust and a
    /// client certificate. Without it, `JOBSTREAM_TLS_CA`,
    /// `JOBSTREAM_TLS_CERT` and `JOBSTREAM_TLS_KEY` are read when the worker
    /// starts ([`TlsOptions::from_env`]).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Limits (see docs/configuration.md).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Timeout and retry policy for job types registered without their own.
    pub fn default_options(mut self, options: JobOptions) -> Self {
        self.defaults = options;
        self
    }

    /// Runs `middleware` around every job (error trackers, spans,
    /// timing); the first added runs outermost.
    pub fn middleware(mut self, middleware: impl Middleware) -> Self {
        self.middleware.push(Arc::new(middleware));
        self
    }

    /// Serves `job_type` with a [`Handler`] (a type that implements it,
    /// holding its own state).
    pub fn handler(self, job_type: &str, handler: impl Handler) -> Self {
        self.route(job_type, Arc::new(handler), None)
    }

    /// Serves `job_type` with a [`Handler`] and its own options.
    pub fn handler_with(self, job_type: &str, options: JobOptions, handler: impl Handler) -> Self {
        self.route(job_type, Arc::new(handler), Some(options))
    }

    /// Serves Prometheus metrics at `/metrics` and Kubernetes probes at
    /// `/livez` and `/readyz` on `addr` (e.g. `0.0.0.0:9464`); off unless
    /// set. The metrics are listed in docs/metrics.md; without this, the
    /// worker counts nothing for them.
    pub fn serve_http(mut self, addr: std::net::SocketAddr) -> Self {
        self.http = Some(addr);
        self
    }

    /// Fires `schedule` on this worker: at each tick, the schedule's job
    /// is enqueued on its queue, once for the whole fleet however many
    /// workers declare the same schedule (see [`Schedule`]). The queue
    /// need not be one this worker serves. Without schedules a worker
    /// runs no task and sends no command for them.
    ///
    /// `build` fails on a schedule without a job to enqueue, on two
    /// schedules with one name, and on a bad [`Missed`] bound.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.schedules.push(schedule);
        self
    }

    /// Checks the configuration and prepares the worker (nothing connects
    /// until [`Worker::run`]).
    pub fn build(self) -> Result<Worker, Error> {
        let queues = queues::check(self.queues, self.concurrency)?;
        self.timings.validate()?;
        self.limits.validate()?;
        if self.concurrency == 0 {
            return Err(Error::Config("concurrency must be at least 1".into()));
        }
        if self.group.is_empty() {
            return Err(Error::Config("group must not be empty".into()));
        }
        jobstream_core::keys::check_prefix(&self.prefix)?;
        let mut registry = Registry::default();
        for (job_type, handler, options) in self.routes {
            if job_type.is_empty() {
                return Err(Error::Config("job type must not be empty".into()));
            }
            let added = registry.insert(
                &job_type,
                handler,
                options.unwrap_or_else(|| self.defaults.clone()),
            );
            if !added {
                return Err(Error::Config(format!(
                    "job type {job_type:?} is registered twice; each job type has one handler"
                )));
            }
        }
        registry.middleware = self.middleware;
        let mut names = std::collections::HashSet::new();
        for schedule in &self.schedules {
            schedule.check()?;
            if !names.insert(schedule.name()) {
                return Err(Error::Config(format!(
                    "schedule {:?} is declared twice; each schedule has one name",
                    schedule.name()
                )));
            }
        }
        if registry.is_empty() {
            return Err(Error::Config("register at least one handler".into()));
        }
        // Only checked here: connections are made by `run`, so `build`
        // needs no Tokio runtime.
        jobstream_core::Redis::check_url(&self.url)?;
        let unserved = self
            .typed
            .iter()
            .filter(|(_, q)| !queues.iter().any(|s| s.name.as_str() == *q))
            .copied()
            .collect();
        let (handle, shutdown) = shutdown::channel();
        Ok(Worker {
            url: self.url,
            unserved,
            queues,
            order: self.order,
            group: self.group,
            prefix: self.prefix,
            concurrency: self.concurrency,
            timings: self.timings,
            limits: self.limits,
            tls: self.tls,
            http: self.http,
            registry,
            schedules: self.schedules,
            consumer: consumer_name(),
            handle,
            shutdown,
        })
    }
}

/// A worker process's runtime: one pool of slots serving one or more
/// queues.
pub struct Worker {
    url: String,
    /// Typed jobs served whose own queue (`Job::QUEUE`) this worker does
    /// not read: logged at start.
    unserved: Vec<(&'static str, &'static str)>,
    queues: Vec<queues::QueueSpec>,
    order: QueueOrder,
    group: String,
    prefix: String,
    concurrency: usize,
    timings: Timings,
    limits: Limits,
    tls: Option<TlsOptions>,
    http: Option<std::net::SocketAddr>,
    registry: Registry,
    schedules: Vec<Schedule>,
    consumer: String,
    handle: ShutdownHandle,
    shutdown: shutdown::Shutdown,
}

/// Shows the queue and the consumer, never the password in the URL.
impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("url", &jobstream_core::connection::redact_url(&self.url))
            .field(
                "queues",
                &self
                    .queues
                    .iter()
                    .map(|q| q.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("consumer", &self.consumer)
            .field("concurrency", &self.concurrency)
            .field("job_types", &self.registry.types())
            .field(
                "schedules",
                &self
                    .schedules
                    .iter()
                    .map(Schedule::name)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Starts configuring a worker for Redis at `url`.
    pub fn builder(url: &str) -> WorkerBuilder {
        WorkerBuilder {
            url: url.to_owned(),
            queues: Vec::new(),
            order: QueueOrder::default(),
            group: jobstream_core::DEFAULT_GROUP.to_owned(),
            prefix: jobstream_core::DEFAULT_PREFIX.to_owned(),
            concurrency: 10,
            timings: Timings::default(),
            limits: Limits::default(),
            defaults: JobOptions::default(),
            routes: Vec::new(),
            middleware: Vec::new(),
            tls: None,
            state: (),
            typed: Vec::new(),
            http: None,
            schedules: Vec::new(),
        }
    }

    /// This worker's consumer name: host name plus a random suffix.
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// A handle that starts a graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Runs until SIGTERM or SIGINT (or the shutdown handle), then shuts
    /// down gracefully: within `shutdown_grace` + `shutdown_flush`, even
    /// with Redis unreachable. A second SIGTERM or SIGINT stops at once;
    /// unfinished jobs stay pending and are reclaimed after the visibility
    /// timeout, so nothing is lost.
    ///
    /// Returns an error when Redis cannot be used as configured (wrong
    /// password, ACL, unsupported server, a foreign key in the way): the
    /// message names the server and the fix. Exit non-zero on it.
    pub async fn run(self) -> Result<(), Error> {
        let graceful = self.handle.clone();
        let (immediate, mut now) = shutdown::channel();
        let signals = tokio::spawn(shutdown::watch_signals(graceful, immediate));
        let result = tokio::select! {
            r = self.run_until_stopped() => r,
            _ = now.wait() => {
                tracing::warn!("second signal: stopping now; unfinished jobs stay pending and are reclaimed after the visibility timeout");
                Ok(())
            }
        };
        signals.abort();
        result
    }

    /// Runs until the shutdown handle is used (no signal handling).
    pub async fn run_until_stopped(self) -> Result<(), Error> {
        runtime::run(self).await
    }

    /// Runs until `stop` completes (or the shutdown handle is used), then
    /// shuts down gracefully, as on SIGTERM; no signal handling. For
    /// embedding the worker in an application that has its own lifecycle
    /// (an HTTP server's shutdown, a test's end).
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let handle = self.handle.clone();
        let watcher = tokio::spawn(async move {
            stop.await;
            handle.shutdown();
        });
        let result = runtime::run(self).await;
        watcher.abort();
        result
    }
}

/// `HOSTNAME-xxxxxx`: unique per process even when pods share a name.
fn consumer_name() -> String {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(64)
        .collect();
    let host = if host.is_empty() {
        "worker".to_owned()
    } else {
        host
    };
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_type_registered_twice_is_refused_by_build() {
        let err = Worker::builder("redis://127.0.0.1:1")
            .handle("send", |_: u32, _| async { Ok(()) })
            .handle_with(
                "send",
                JobOptions::new().max_attempts(3),
                |_: u32, _| async { Ok(()) },
            )
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("\"send\" is registered twice"), "{err}");
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let b = Worker::builder("redis://jobs:s3cret@127.0.0.1:6379/0")
            .handle("send", |_: u32, _| async { Ok(()) });
        let shown = format!("{b:?}");
        assert!(
            shown.contains("127.0.0.1:6379") && !shown.contains("s3cret"),
            "{shown}"
        );
        let w = b.build().unwrap();
        let shown = format!("{w:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("send"),
            "{shown}"
        );
    }

    #[test]
    fn job_options_have_builder_methods() {
        let o = JobOptions::new()
            .timeout(std::time::Duration::from_secs(5))
            .max_attempts(7);
        assert_eq!(o.timeout, std::time::Duration::from_secs(5));
        assert_eq!(o.retry.max_attempts, 7);
        let o = o.retry(RetryPolicy::no_retry());
        assert_eq!(o.retry.max_attempts, 1);
    }
}
