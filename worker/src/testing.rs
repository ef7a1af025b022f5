//! Test your handlers without Redis: build a [`JobContext`] for a unit
//! test, or run one job through a handler with the real MessagePack round
//! trip and get what the worker would do with the result.
//!
//! ```
//! use jobstream_worker::testing::{DeadReason, Disposition, TestJob};
//! use jobstream_worker::{Job, JobContext, JobError, JobResult};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//!
//! impl Job for SendEmail {
//!     const NAME: &'static str = "send_email";
//! }
//!
//! async fn send_email(email: SendEmail, _job: JobContext) -> JobResult {
//!     if email.to.is_empty() {
//!         return Err(JobError::permanent("no recipient"));
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let run = TestJob::of(&SendEmail { to: String::new() })
//!     .unwrap()
//!     .run_job(send_email)
//!     .await;
//! assert_eq!(run.disposition, Disposition::Dead { reason: DeadReason::Permanent });
//! # }
//! ```
//!
//! A handler that takes the worker's shared state runs with
//! [`TestJob::run_job_with_state`]; [`TestJob::context_with_state`] builds
//! the `JobContext<S>` for code that takes one. To run jobs through a real
//! worker and Redis instead, see [`Drain`].

mod drain;

use std::sync::Arc;

use jobstream_core::envelope::{Envelope, field};
use jobstream_core::{Error, Job, JobOptions, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::handler::{Handler, JobContext, JobFn, TypedFn};
use crate::job_error::JobResult;
use crate::outcome::disposition;
pub use crate::outcome::{DeadReason, Disposition};
pub use drain::{DeadLetter, Drain, DrainError, DrainReport};

/// A job as a worker would receive it, built in a test.
#[derive(Debug, Clone)]
pub struct TestJob {
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    entry_id: String,
    queue: String,
    deliveries: u64,
}

/// What a test run produced: the handler's result, and what the worker
/// would do with it under the given options (ack, retry after a delay,
/// dead with a reason, discard).
#[derive(Debug)]
#[non_exhaustive]
pub struct TestRun {
    /// The handler's result.
    pub result: JobResult,
    /// What the worker would do next.
    pub disposition: Disposition,
}

impl TestJob {
    /// A job of `job_type` whose payload is `payload` encoded as the
    /// producer encodes it (MessagePack with field names).
    pub fn new<T: Serialize + ?Sized>(job_type: &str, payload: &T) -> Result<Self> {
        let payload = rmp_serde::to_vec_named(payload).map_err(|e| Error::Encode(e.to_string()))?;
        Ok(Self {
            fields: vec![
                (field::TYPE.into(), job_type.into()),
                (field::PAYLOAD.into(), payload),
            ],
            entry_id: "1700000000000-0".to_owned(),
            queue: "default".to_owned(),
            deliveries: 1,
        })
    }

    /// A job of the typed job `J`, as `Producer::enqueue(&job)` writes
    /// it: type [`Job::NAME`], queue [`Job::QUEUE`], the payload encoded
    /// as the producer encodes it.
    pub fn of<J: Job>(job: &J) -> Result<Self> {
        Ok(Self::new(J::NAME, job)?.queue(J::QUEUE))
    }

    /// This attempt (1 = the first run).
    pub fn attempt(self, attempt: u32) -> Self {
        self.set(field::ATTEMPT, attempt.to_string())
    }

    /// The job id (default: the entry id, `1700000000000-0`).
    pub fn id(self, id: &str) -> Self {
        self.set(field::ID, id.to_owned())
    }

    /// The idempotency key.
    pub fn idempotency_key(self, key: &str) -> Self {
        self.set(field::IDEMPOTENCY_KEY, key.to_owned())
    }

    /// The job's own `max_attempts` override.
    pub fn max_attempts(self, n: u32) -> Self {
        self.set(field::MAX_ATTEMPTS, n.to_string())
    }

    /// An extra field, as a producer in another language might send.
    pub fn field(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// The queue (default `default`).
    pub fn queue(mut self, queue: &str) -> Self {
        queue.clone_into(&mut self.queue);
        self
    }

    /// How often this attempt was delivered (above 1 after a worker died).
    pub fn deliveries(mut self, deliveries: u64) -> Self {
        self.deliveries = deliveries.max(1);
        self
    }

    fn set(mut self, name: &str, value: String) -> Self {
        self.fields.retain(|(k, _)| k != name.as_bytes());
        self.fields.push((name.into(), value.into()));
        self
    }

    /// The context a handler receives for this job, decoded the way the
    /// worker decodes a stream entry (a malformed job is an error here).
    pub fn context(&self, options: &JobOptions) -> Result<JobContext> {
        self.context_with_state((), options)
    }

    /// [`TestJob::context`] with the worker's shared state attached, for
    /// code that takes a `JobContext<S>`
    /// ([`WorkerBuilder::state`](crate::WorkerBuilder::state)).
    pub fn context_with_state<S>(&self, state: S, options: &JobOptions) -> Result<JobContext<S>> {
        let envelope = Envelope::decode(self.fields.clone()).map_err(|(bad, _)| Error::Decode {
            what: "test job",
            detail: bad.detail,
        })?;
        let max_attempts = envelope.max_attempts.unwrap_or(options.retry.max_attempts);
        Ok(JobContext {
            envelope: Arc::new(envelope),
            entry_id: Arc::from(self.entry_id.as_str()),
            queue: Arc::from(self.queue.as_str()),
            deliveries: self.deliveries,
            max_attempts,
            state,
            live: None,
            lane: None,
        })
    }

    /// Runs the job through `handler` (no timeout, no middleware) and says
    /// what the worker would do with the result under `options`.
    pub async fn run(&self, handler: &impl Handler, options: &JobOptions) -> TestRun {
        let ctx = match self.context(options) {
            Ok(ctx) => ctx,
            Err(e) => {
                let result = Err(crate::JobError::malformed(e.to_string()));
                let disposition = disposition(&result, 1, None, &options.retry, 1.0);
                return TestRun {
                    result,
                    disposition,
                };
            }
        };
        let (attempt, job_max) = (ctx.attempt(), ctx.envelope.max_attempts);
        let result = handler.handle(ctx).await;
        // Jitter at its top: the longest wait the policy can give.
        let disposition = disposition(&result, attempt, job_max, &options.retry, 1.0);
        TestRun {
            result,
            disposition,
        }
    }

    /// [`TestJob::run`] for a handler written as an async function or
    /// closure taking the typed payload, as registered with
    /// `WorkerBuilder::handle`.
    pub async fn run_fn<T>(&self, f: impl JobFn<T, ()>, options: &JobOptions) -> TestRun
    where
        T: DeserializeOwned + Send + 'static,
    {
        self.run(&TypedFn::new(f, ()), options).await
    }

    /// [`TestJob::run_fn`] for a handler that takes the worker's shared
    /// state (`JobContext<S>`), with `state` as the worker would pass it.
    pub async fn run_with_state<T, S>(
        &self,
        f: impl JobFn<T, S>,
        state: S,
        options: &JobOptions,
    ) -> TestRun
    where
        T: DeserializeOwned + Send + 'static,
        S: Clone + Send + Sync + 'static,
    {
        self.run(&TypedFn::new(f, state), options).await
    }

    /// Runs the job through a handler of the typed job `J`, as registered
    /// with `WorkerBuilder::job::<J>`, under `J`'s own options
    /// ([`Job::options`]; when it has none, [`JobOptions::default`], which
    /// is what a worker uses unless its builder set `default_options`).
    pub async fn run_job<J: Job>(&self, f: impl JobFn<J, ()>) -> TestRun {
        self.run_job_with_state(f, ()).await
    }

    /// [`TestJob::run_job`] for a handler that takes the worker's shared
    /// state (`JobContext<S>`), with `state` as the worker would pass it.
    pub async fn run_job_with_state<J: Job, S>(&self, f: impl JobFn<J, S>, state: S) -> TestRun
    where
        S: Clone + Send + Sync + 'static,
    {
        let options = J::options().unwrap_or_default();
        self.run(&TypedFn::new(f, state), &options).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::outcome::DeadReason;
    use crate::{JobError, RetryPolicy};

    async fn flaky(n: u32, job: JobContext) -> JobResult {
        if job.attempt() <= n {
            return Err(JobError::retry("busy"));
        }
        assert_eq!(job.idempotency_key(), Some("order-7"));
        Ok(())
    }

    #[tokio::test]
    async fn a_handler_runs_with_the_real_round_trip_and_says_what_comes_next() {
        let options = JobOptions::new().retry(RetryPolicy::exponential(
            3,
            Duration::from_secs(2),
            Duration::from_secs(60),
        ));
        let job = TestJob::new("flaky", &1u32)
            .unwrap()
            .idempotency_key("order-7");
        let first = job.clone().run_fn(flaky, &options).await;
        assert_eq!(
            first.disposition,
            Disposition::Retry {
                delay: Duration::from_secs(2)
            }
        );
        let second = job.clone().attempt(2).run_fn(flaky, &options).await;
        assert_eq!(second.disposition, Disposition::Ack);
        let last = TestJob::new("flaky", &9u32)
            .unwrap()
            .attempt(3)
            .run_fn(flaky, &options)
            .await;
        assert_eq!(
            last.disposition,
            Disposition::Dead {
                reason: DeadReason::Exhausted
            }
        );
        // A payload of the wrong shape is malformed, as in a worker.
        let wrong = TestJob::new("flaky", "not a number")
            .unwrap()
            .run_fn(flaky, &options)
            .await;
        assert_eq!(
            wrong.disposition,
            Disposition::Dead {
                reason: DeadReason::Malformed
            }
        );
    }

    #[tokio::test]
    async fn a_context_for_unit_tests_carries_what_was_set() {
        let ctx = TestJob::new("t", &"x")
            .unwrap()
            .id("job-1")
            .attempt(2)
            .max_attempts(4)
            .queue("emails")
            .field("tenant", "acme")
            .context(&JobOptions::new())
            .unwrap();
        assert_eq!(
            (ctx.id(), ctx.attempt(), ctx.max_attempts(), ctx.queue()),
            ("job-1", 2, 4, "emails")
        );
        assert_eq!(ctx.field("tenant"), Some(&b"acme"[..]));
        assert_eq!(ctx.payload::<String>().unwrap(), "x");
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Charge {
        cents: i64,
    }

    impl Job for Charge {
        const NAME: &'static str = "charge";
        const QUEUE: &'static str = "payments";
        fn options() -> Option<JobOptions> {
            Some(JobOptions::new().max_attempts(2))
        }
    }

    #[derive(Clone)]
    struct App {
        limit: i64,
    }

    async fn charge(job: Charge, ctx: JobContext<App>) -> JobResult {
        assert_eq!((ctx.job_type(), ctx.queue()), ("charge", "payments"));
        if job.cents > ctx.state().limit {
            return Err(JobError::retry("over the limit"));
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_typed_job_runs_under_its_own_name_queue_and_options() {
        let app = App { limit: 100 };
        let job = TestJob::of(&Charge { cents: 5 }).unwrap();
        let ok = job.run_job_with_state(charge, app.clone()).await;
        assert_eq!(ok.disposition, Disposition::Ack);
        // The type's options allow 2 attempts: the first failure retries,
        // the second is the last.
        let over = TestJob::of(&Charge { cents: 500 }).unwrap();
        let first = over.run_job_with_state(charge, app.clone()).await;
        assert!(matches!(first.disposition, Disposition::Retry { .. }));
        let last = over
            .clone()
            .attempt(2)
            .run_job_with_state(charge, app.clone())
            .await;
        assert_eq!(
            last.disposition,
            Disposition::Dead {
                reason: DeadReason::Exhausted
            }
        );
        let ctx = job.context_with_state(app, &JobOptions::new()).unwrap();
        assert_eq!(ctx.state().limit, 100);
        assert_eq!(ctx.queue(), "payments");
        assert_eq!(ctx.payload::<Charge>().unwrap().cents, 5);
    }

    #[tokio::test]
    async fn a_typed_job_without_options_gets_the_defaults() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct Ping;
        impl Job for Ping {
            const NAME: &'static str = "ping";
        }
        async fn ping(_: Ping, ctx: JobContext) -> JobResult {
            assert_eq!(ctx.max_attempts(), JobOptions::default().retry.max_attempts);
            Err(JobError::retry("again"))
        }
        let run = TestJob::of(&Ping).unwrap().run_job(ping).await;
        assert!(matches!(run.disposition, Disposition::Retry { .. }));
    }
}
