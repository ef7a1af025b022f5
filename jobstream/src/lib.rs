//! jobstream: background jobs for Rust on Redis Streams.
//!
//! One crate to add. Producers put jobs on a stream (this crate, or any
//! language with a Redis client); workers claim them with `XREADGROUP`, run
//! the handler for the job's type and acknowledge after the work is done.
//! The README's example, compiled with this crate:
//!
//! ```no_run
//! use jobstream::{JobContext, JobError, Producer, Worker};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Email { to: String }
//!
//! # async fn demo() -> Result<(), jobstream::Error> {
//! let producer = Producer::connect("redis://127.0.0.1:6379").await?;
//! producer.enqueue("emails", "send_email", &Email { to: "a@example.com".into() }).await?;
//!
//! Worker::builder("redis://127.0.0.1:6379")
//!     .queue("emails")
//!     .handle("send_email", |email: Email, job: JobContext| async move {
//!         if email.to.is_empty() { return Err(JobError::permanent("no recipient")); }
//!         println!("job {}: mail to {}", job.id(), email.to);
//!         Ok(())
//!     })
//!     .build()?
//!     .run()
//!     .await
//! # }
//! ```
//!
//! # Features
//!
//! - `producer` (default): [`Producer`], [`Job`], and [`inspect`] for
//!   queue stats and dead letters.
//! - `worker` (default): [`Worker`] and what handlers see.
//! - `tls`: `rediss://` URLs over rustls, with [`TlsOptions`] or the
//!   `JOBSTREAM_TLS_CA`/`_CERT`/`_KEY` environment variables.
//!
//! The crates behind it (`jobstream-producer`, `jobstream-worker`,
//! `jobstream-core`) are re-exported whole as [`producer`], [`worker`] and
//! [`core`].

pub use jobstream_core as core;
pub use jobstream_core::{Backoff, Error, Limits, RetryPolicy, Timings, TlsOptions};

#[cfg(feature = "producer")]
pub use jobstream_producer as producer;
#[cfg(feature = "producer")]
pub use jobstream_producer::{Job, JobId, Producer, ProducerOptions, inspect};

#[cfg(feature = "worker")]
pub use jobstream_worker as worker;
#[cfg(feature = "worker")]
pub use jobstream_worker::{
    FailureKind, Handler, JobContext, JobError, JobOptions, JobResult, Middleware, Next,
    ShutdownHandle, Worker, WorkerBuilder,
};

/// The README's code example, compiled as a doctest so it stays true.
#[cfg(all(doctest, feature = "producer", feature = "worker"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
