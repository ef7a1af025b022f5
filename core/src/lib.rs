//! jobstream-core: the parts of jobstream that every other crate shares.
//!
//! # Layout
//!
//! - [`keys`]: every Redis key of a queue, the hash tag in one place, and
//!   queue-name validation.
//! - [`envelope`]: wire format v1, a job as string fields, and the
//!   MessagePack map used for `scheduled` members.
//! - [`scripts`]: the Lua scripts of `scripts/`, embedded, called by SHA with
//!   reload on `NOSCRIPT`.
//! - [`store`]: every Redis command for one queue, typed; [`QueueStats`] and
//!   the dead-letter reads are in `store_admin.rs`; job-by-job browsing,
//!   withdraw and purge in [`store_browse`].
//! - [`backpressure`]: per-queue limits on backlog and age, and the
//!   `admit-4` enqueue that enforces them ([`QueueLimits`]).
//! - [`cron`]: periodic jobs: cron schedules in time zones, the missed-fire
//!   policy, the fleet-wide dedup (`cron-fire-2`) and the declarations.
//! - [`books`]: do a queue's books balance ([`Books`], `QueueStore::books`).
//! - [`safety`]: Redis settings that lose jobs ([`safety::safety_warnings`]).
//! - [`connection`]: the shared multiplexed connection and the pool of
//!   dedicated connections for blocking reads; reconnect backoff.
//! - [`tls`]: `rediss://` over rustls (feature `tls`), [`TlsOptions`].
//! - [`trace`]: the strict W3C `traceparent` check (a job's trace id).
//! - [`lifecycle`]: uniqueness keys, job records and states.
//! - [`job`]: the [`Job`] trait (typed jobs) and [`JobOptions`].
//! - [`retry`]: retry policy and backoff, pure.
//! - [`config`]: every timing and limit, with defaults.
//! - [`error`]: the infrastructure error type.
//!
//! Users normally depend on `jobstream-producer` and `jobstream-worker`,
//! which re-export what they need from here.

pub mod backpressure;
pub mod books;
pub mod chain;
pub mod config;
pub mod connection;
pub mod cron;
pub mod durability;
pub mod envelope;
pub mod error;
pub mod groups;
pub mod hex;
pub mod history;
pub mod job;
pub mod keys;
pub mod lifecycle;
pub mod pause;
pub mod rate;
mod reply;
pub mod retry;
pub mod safety;
pub mod scripts;
pub mod secret;
pub mod sentinel;
pub mod store;
mod store_admin;
pub mod store_browse;
pub mod store_lifecycle;
pub mod throttle;
pub mod tls;
pub mod trace;
pub mod workers;

pub use backpressure::{Admission, OverflowPolicy, QueueLimits};
pub use books::{Books, BooksStatus};
pub use config::{Limits, Timings};
pub use connection::{BlockingConn, Reconnect, Redis};
pub use durability::Durability;
pub use envelope::Envelope;
pub use error::{Error, RedisFailure, Result};
pub use job::{Job, JobOptions};
pub use keys::{DEFAULT_PREFIX, QueueKeys, QueueName};
pub use lifecycle::{JobRecord, JobState, Uniqueness};
pub use rate::RateLimit;
pub use reply::StreamEntry;
pub use retry::{Backoff, RetryPolicy};
pub use safety::{Fsync, ServerSafety, safety_warnings};
pub use store::{ClaimedEntry, QueueStore, Reclaimed};
pub use store_admin::{QueueStats, known_queues};
pub use tls::TlsOptions;

/// The default consumer group name.
pub const DEFAULT_GROUP: &str = "workers";

/// Current unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
