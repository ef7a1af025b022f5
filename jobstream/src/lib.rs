//! jobstream: background jobs for Rust on Redis Streams.
//!
//! One crate to add. Producers put jobs on a stream (this crate, or any
//! language with a Redis client); workers claim them with `XREADGROUP`, run
//! the handler for the job's type and acknowledge after the work is done.
//! The README's example, compiled with this crate:
//!
//! ```no_run
//! use jobstream::{Job, JobContext, JobError, JobResult, Producer, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! /// A job type: the struct is the payload, `NAME` its type on the wire.
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//!
//! impl Job for SendEmail {
//!     const NAME: &'static str = "send_email";
//!     const QUEUE: &'static str = "emails";
//! }
//!
//! async fn send_email(email: SendEmail, job: JobContext) -> JobResult {
//!     if email.to.is_empty() {
//!         return Err(JobError::permanent("no recipient"));
//!     }
//!     println!("job {}: mail to {}", job.id(), email.to);
//!     Ok(())
//! }
//!
//! # async fn demo() -> Result<(), jobstream::Error> {
//! let producer = Producer::connect("redis://127.0.0.1:6379").await?;
//! producer.enqueue(&SendEmail { to: "a@example.com".into() }).await?;
//!
//! Worker::builder("redis://127.0.0.1:6379")
//!     .queue(SendEmail::QUEUE)
//!     .job::<SendEmail>(send_email)
//!     .build()?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! # Features
//!
//! - always: the [`Job`] trait for typed jobs, [`JobOptions`], the
//!   configuration types and [`Error`].
//! - `producer` (default): [`Producer`], [`NewJob`], and [`inspect`] for
//!   queue stats and dead letters.
//! - `worker` (default): [`Worker`] and what handlers see.
//! - [`testing`], with either: run a job through its handler in a unit
//!   test ([`testing::TestJob`]), record what code enqueues
//!   ([`Producer::recording`]), drain queues through a real worker
//!   ([`testing::Drain`]).
//! - `testkit` (off): `jobstream::testkit`, a throwaway `redis-server` for
//!   integration tests; turn it on in `[dev-dependencies]`:
//!   `jobstream = { …, features = ["testkit"] }`.
//! - `tls`: `rediss://` URLs over rustls, with [`TlsOptions`] or the
//!   `JOBSTREAM_TLS_CA`/`_CERT`/`_KEY` environment variables.
//!
//! The user-facing crates behind it, `jobstream-producer` and
//! `jobstream-worker`, are re-exported whole as [`producer`] and
//! [`worker`]. `jobstream-core` (key layout, scripts, the typed Redis
//! operations) is internal: what users need of it is re-exported here.

pub use jobstream_core::{
    Backoff, Error, Job, JobOptions, Limits, RedisFailure, Result, RetryPolicy, Timings, TlsOptions,
};

#[cfg(feature = "producer")]
pub use jobstream_producer as producer;
#[cfg(feature = "producer")]
pub use jobstream_producer::{
    Batch, BatchSummary, CancelOutcome, Chain, JobId, JobRecord, JobState, NewJob, Producer,
    ProducerOptions, Uniqueness, inspect,
};

#[cfg(feature = "worker")]
pub use jobstream_worker as worker;
#[cfg(feature = "worker")]
pub use jobstream_worker::{
    FailureKind, Handler, JobContext, JobError, JobFn, JobResult, Middleware, Missed, Next,
    QueueOptions, QueueOrder, Schedule, ShutdownHandle, Worker, WorkerBuilder, init_logging,
};

/// The web dashboard (feature `dashboard`): `dashboard::Dashboard::router_at`.
#[cfg(feature = "dashboard")]
pub use jobstream_dashboard as dashboard;
/// A throwaway `redis-server` for integration tests (feature `testkit`):
/// [`testkit::RedisServer::start`], [`testkit::unique_queue`].
#[cfg(feature = "testkit")]
pub use jobstream_testkit as testkit;

#[cfg(any(feature = "producer", feature = "worker"))]
pub mod testing {
    //! Test support, per test and never a global mode:
    //!
    //! - unit tests of handlers, no Redis: [`TestJob`] runs one job through
    //!   its handler with the real MessagePack round trip and says what the
    //!   worker would do ([`TestRun`]), or builds its `JobContext`;
    //! - what code enqueued, no Redis: [`Producer::recording`](crate::Producer::recording)
    //!   gives a producer and its [`Recorder`], with
    //!   [`assert_enqueued`](Recorder::assert_enqueued) and friends;
    //! - integration tests against a real Redis: [`Drain`] runs a worker's
    //!   handlers until its queues are empty (scheduled and follow-up jobs
    //!   included), [`enqueued`] reads a queue back; the `testkit` feature
    //!   starts a throwaway server.
    //!
    //! See docs/testing.md in the repository for a walk through.

    #[cfg(feature = "producer")]
    pub use jobstream_producer::testing::{EnqueuedJob, EnqueuedJobs, Recorder, enqueued};
    #[cfg(feature = "worker")]
    pub use jobstream_worker::testing::{
        DeadLetter, DeadReason, Disposition, Drain, DrainError, DrainReport, TestJob, TestRun,
    };
}

/// The README's code example, compiled as a doctest so it stays true.
#[cfg(all(doctest, feature = "producer", feature = "worker"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
