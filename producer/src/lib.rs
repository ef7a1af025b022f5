//! jobstream-producer: put jobs on jobstream queues.
//!
//! ```no_run
//! # async fn demo() -> Result<(), jobstream_producer::Error> {
//! use jobstream_producer::{Job, NewJob, Producer};
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Serialize, Deserialize)]
//! struct SendEmail { to: String }
//! impl Job for SendEmail {
//!     const NAME: &'static str = "send_email";
//!     const QUEUE: &'static str = "emails";
//! }
//!
//! let producer = Producer::connect("redis://127.0.0.1:6379").await?;
//! // Typed: the type name and queue come from `SendEmail`.
//! let id = producer.enqueue(&SendEmail { to: "a@example.com".into() }).await?;
//! // With options.
//! producer
//!     .push(NewJob::of(&SendEmail { to: "b@example.com".into() })?.delay(Duration::from_secs(30)))
//!     .await?;
//! // By name, for job types without a Rust type (served by another language).
//! producer.enqueue_named("thumbnails", "resize", &(640, 480)).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `lib.rs`: [`Producer`], enqueue one, many, delayed.
//! - `job.rs`: [`NewJob`], a job with its options; the [`Job`] trait
//!   (typed jobs) lives in jobstream-core.
//! - `inspect.rs`: [`inspect::Inspector`], queue stats and dead letters
//!   (list, replay, discard), away from the hot path.
//! - `testing.rs`: [`Producer::recording`] and assertions on what was
//!   enqueued, for users' tests.

mod flows;
pub mod inspect;
mod inspect_console;
mod inspect_cron;
mod inspect_groups;
mod inspect_limits;
mod inspect_pause;
mod job;
mod lifecycle;
mod read_batch;
pub mod testing;
mod trace;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use flows::{Batch, Chain};
pub use job::{MAX_ID_LEN, NewJob};
use jobstream_core::Admission;
pub use jobstream_core::Job;
use jobstream_core::envelope::{field, fields_to_msgpack};
use jobstream_core::groups::GroupedJob;
pub use jobstream_core::groups::partition_of;
pub use jobstream_core::store_lifecycle::BatchSummary;
use jobstream_core::store_lifecycle::{Destination, EnqueueOutcome, UniqueLock};
pub use jobstream_core::{Durability, Error, Limits, QueueName, Result, Timings, TlsOptions};
pub use jobstream_core::{JobRecord, JobState, Uniqueness};
pub use jobstream_core::{OverflowPolicy, QueueLimits};
use jobstream_core::{QueueKeys, QueueStore, Reconnect, Redis};
pub use lifecycle::CancelOutcome;
use serde::Serialize;

/// A job's id: made by the producer before sending (a UUIDv7, or the id
/// given with [`NewJob::with_id`]), written into the job's `id` field.
/// Stable across retries, dead letters and replays.
pub type JobId = String;

/// Largest pipeline sent at once by [`Producer::enqueue_many`].
const PIPELINE_CHUNK: usize = 1000;

/// How long a producer trusts what it read of a queue's limits
/// (`PREFIX:{Q}:limits`) before reading them again: limits set or cleared
/// take effect on a producer within this time.
pub const LIMITS_REFRESH: Duration = Duration::from_secs(2);

/// A queue's limits as last read, and when.
type LimitsCache = std::sync::Arc<Mutex<HashMap<String, (Instant, Option<QueueLimits>)>>>;

/// Enqueues jobs. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Producer {
    backend: Backend,
    prefix: String,
    limits: Limits,
    stores: std::sync::Arc<Mutex<HashMap<String, QueueStore>>>,
    retry_for: Duration,
    timings: Timings,
    /// Queues whose jobs all keep a record, and for how long.
    records: std::sync::Arc<HashMap<String, Duration>>,
    /// Each queue's limits, re-read every [`LIMITS_REFRESH`].
    queue_limits: LimitsCache,
    /// How long an enqueue waits on a full queue with policy `wait`.
    backpressure_wait: Duration,
    /// How durable an enqueue must be before it returns.
    durability: Durability,
}

/// Where a producer's jobs go.
#[derive(Debug, Clone)]
enum Backend {
    /// To Redis.
    Redis(Redis),
    /// Into a test's [`testing::Recorder`] ([`Producer::recording`]).
    Recording(testing::Recorder),
}

/// Options for [`Producer::with_options`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerOptions {
    /// Key prefix, `jobstream` by default.
    pub prefix: String,
    /// Limits (only `max_payload_bytes` matters here).
    pub limits: Limits,
    /// Timeouts and reconnect backoff.
    pub timings: Timings,
    /// How long an enqueue keeps retrying while Redis is unreachable
    /// (reconnecting with backoff) before it returns the error. Zero = fail
    /// at once. A retry after a lost reply can enqueue a job twice: enqueue
    /// is at-least-once, like delivery.
    pub retry_for: Duration,
    /// TLS for a `rediss://` URL (feature `tls`): the CA to trust and a
    /// client certificate. `None` (the default) reads `JOBSTREAM_TLS_CA`,
    /// `JOBSTREAM_TLS_CERT` and `JOBSTREAM_TLS_KEY` ([`TlsOptions::from_env`]).
    pub tls: Option<TlsOptions>,
    /// Queues whose jobs all keep a record, and for how long after they
    /// end ([`NewJob::keep_record`] for each job enqueued on them, unless
    /// it sets its own).
    pub records: HashMap<String, Duration>,
    /// How long an enqueue on a full queue whose limits have policy `wait`
    /// keeps trying (with backoff, 25 ms doubling up to 500 ms) before it
    /// returns [`Error::QueueFull`]. 30 s by default.
    pub backpressure_wait: Duration,
    /// How durable an enqueue must be before it returns: on the master
    /// only (the default), on replicas (`WAIT`) or in the AOF (`WAITAOF`).
    /// [`Producer::durable`] sets it per call. See docs/deployment.md.
    pub durability: Durability,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            prefix: jobstream_core::DEFAULT_PREFIX.to_owned(),
            limits: Limits::default(),
            timings: Timings::default(),
            retry_for: Duration::from_secs(5),
            tls: None,
            records: HashMap::new(),
            backpressure_wait: Duration::from_secs(30),
            durability: Durability::Master,
        }
    }
}

/// Builder methods, one per field, for code outside this crate (the struct
/// is `#[non_exhaustive]`, so it cannot be built with a literal there):
///
/// ```
/// use std::time::Duration;
/// use jobstream_producer::{ProducerOptions, Timings};
///
/// let options = ProducerOptions::default()
///     .prefix("myapp")
///     .timings(Timings::default().response_timeout(Duration::from_secs(2)))
///     .retry_for(Duration::ZERO);
/// # let _ = options;
/// ```
impl ProducerOptions {
    /// Sets `prefix`: the key prefix (`jobstream` by default).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets `limits` (only `max_payload_bytes` matters to a producer).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets `timings`: timeouts and reconnect backoff.
    pub fn timings(mut self, timings: Timings) -> Self {
        self.timings = timings;
        self
    }

    /// Sets `retry_for`: how long an enqueue keeps retrying while Redis is
    /// unreachable before it returns the error (zero = fail at once).
    pub fn retry_for(mut self, retry_for: Duration) -> Self {
        self.retry_for = retry_for;
        self
    }

    /// Every job this producer enqueues on `queue` keeps a record for
    /// `keep` after it ends (unless the job sets its own): records per
    /// queue, where [`Job::KEEP_RECORD`] sets them per type.
    pub fn keep_records(mut self, queue: impl Into<String>, keep: Duration) -> Self {
        self.records.insert(queue.into(), keep);
        self
    }

    /// Sets `backpressure_wait`: how long an enqueue waits on a full queue
    /// with policy `wait` before it returns [`Error::QueueFull`].
    pub fn backpressure_wait(mut self, wait: Duration) -> Self {
        self.backpressure_wait = wait;
        self
    }

    /// Sets `durability`: every enqueue returns only once its jobs are as
    /// durable as this says ([`Durability::replicas`], [`Durability::aof`]).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets `tls`: the CA to trust and the client certificate for a
    /// `rediss://` URL, instead of reading them from the environment.
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }
}

impl Producer {
    /// Connects to `url` and checks that Redis answers.
    pub async fn connect(url: &str) -> Result<Self> {
        let producer = Self::with_options(url, ProducerOptions::default())?;
        if let Backend::Redis(redis) = &producer.backend {
            redis.ping().await?;
        }
        Ok(producer)
    }

    /// Connects to `$REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub async fn from_env() -> Result<Self> {
        Self::connect(&redis_url_from_env()).await
    }

    /// A producer that connects on first use; while Redis is unreachable,
    /// enqueues fail with a transient error and the connection is retried.
    pub fn with_options(url: &str, options: ProducerOptions) -> Result<Self> {
        options.timings.validate()?;
        jobstream_core::keys::check_prefix(&options.prefix)?;
        Ok(Self {
            backend: Backend::Redis(Redis::open_with_tls(
                url,
                &options.timings,
                &options.tls.unwrap_or_else(TlsOptions::from_env),
            )?),
            prefix: options.prefix,
            limits: options.limits,
            stores: Default::default(),
            retry_for: options.retry_for,
            timings: options.timings,
            records: std::sync::Arc::new(options.records),
            queue_limits: Default::default(),
            backpressure_wait: options.backpressure_wait,
            durability: options.durability,
        })
    }

    /// A recording producer with the default options
    /// ([`Producer::recording`]).
    fn recording_into(recorder: testing::Recorder) -> Self {
        let options = ProducerOptions::default();
        Self {
            backend: Backend::Recording(recorder),
            prefix: options.prefix,
            limits: options.limits,
            stores: Default::default(),
            retry_for: Duration::ZERO,
            timings: options.timings,
            records: std::sync::Arc::new(options.records),
            queue_limits: Default::default(),
            backpressure_wait: options.backpressure_wait,
            durability: Durability::Master,
        }
    }

    /// The Redis URL without credentials (`recording (no Redis)` for a
    /// [recording](Producer::recording) producer).
    pub fn display_url(&self) -> &str {
        match &self.backend {
            Backend::Redis(redis) => redis.display_url(),
            Backend::Recording(_) => "recording (no Redis)",
        }
    }

    /// An inspector over the same connection. A
    /// [recording](Producer::recording) producer's inspector answers every
    /// call with an error: inspecting queues needs Redis.
    pub fn inspector(&self) -> inspect::Inspector {
        match &self.backend {
            Backend::Redis(redis) => inspect::Inspector::new(redis.clone(), &self.prefix),
            Backend::Recording(_) => inspect::Inspector::without_redis(&self.prefix),
        }
    }

    /// The store of `queue`, built and registered in `PREFIX:queues` on
    /// first use, then cached: the hot path allocates no key names.
    /// The store of `queue`, not registered in `PREFIX:queues`: for reads
    /// of records, which a read-only ACL user may do.
    fn queue_store(&self, redis: &Redis, queue: &str) -> Result<QueueStore> {
        let name = QueueName::new(queue)?;
        Ok(QueueStore::new(
            redis.clone(),
            QueueKeys::new(&self.prefix, &name),
            jobstream_core::DEFAULT_GROUP,
        ))
    }

    async fn store(&self, redis: &Redis, queue: &str) -> Result<QueueStore> {
        let cached = self.stores.lock().ok().and_then(|m| m.get(queue).cloned());
        if let Some(store) = cached {
            return Ok(store);
        }
        let store = self.queue_store(redis, queue)?;
        store.register().await?;
        if let Ok(mut m) = self.stores.lock() {
            m.insert(queue.to_owned(), store.clone());
        }
        Ok(store)
    }

    /// The queue's limits, as read at most [`LIMITS_REFRESH`] ago: a queue
    /// without limits costs one `HGETALL` per refresh, not one per enqueue.
    async fn queue_limits(&self, store: &QueueStore) -> Result<Option<QueueLimits>> {
        let queue = store.keys().name().as_str();
        let cached = self
            .queue_limits
            .lock()
            .ok()
            .and_then(|m| m.get(queue).cloned());
        if let Some((at, limits)) = cached
            && at.elapsed() < LIMITS_REFRESH
        {
            return Ok(limits);
        }
        let limits = store.limits().await?;
        if let Ok(mut m) = self.queue_limits.lock() {
            m.insert(queue.to_owned(), (Instant::now(), limits.clone()));
        }
        Ok(limits)
    }

    /// Adds jobs to run now to a queue with limits (`admit-4`, all or
    /// none), waiting while it is full under policy `wait`.
    async fn admit(
        &self,
        store: &QueueStore,
        limits: &QueueLimits,
        jobs: &[Fields<'_>],
    ) -> Result<()> {
        let jobs: Vec<&[(&[u8], &[u8])]> = jobs.iter().map(Vec::as_slice).collect();
        let waits = limits.policy == OverflowPolicy::Wait;
        let deadline = Instant::now() + self.backpressure_wait;
        let mut pause = Duration::from_millis(25);
        loop {
            // A waiting producer counts its refusal once, when it gives up.
            let last = !waits || Instant::now() >= deadline;
            let now = store.redis().server_now_ms().await?;
            match store.admit(&jobs, last, now).await? {
                Admission::Admitted { .. } => return Ok(()),
                Admission::Refused {
                    depth,
                    max_ready,
                    oldest_age_ms,
                    max_age_ms,
                    policy,
                } => {
                    let full = || Error::QueueFull {
                        queue: store.keys().name().to_string(),
                        depth,
                        limit: max_ready,
                        oldest_age_ms,
                        max_age_ms,
                    };
                    if last {
                        return Err(full());
                    }
                    // The policy changed since it was read, or the jobs
                    // could never fit however long we wait: refuse now,
                    // counted like any refusal.
                    let never_fits = max_ready.is_some_and(|m| jobs.len() as u64 > m);
                    if policy != OverflowPolicy::Wait || never_fits {
                        store.count_rejected(jobs.len() as u64).await?;
                        return Err(full());
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    fn check_size(&self, job: &NewJob) -> Result<()> {
        let limit = self.limits.max_payload_bytes;
        if job.payload.len() > limit {
            return Err(Error::PayloadTooLarge {
                size: job.payload.len(),
                limit,
            });
        }
        Ok(())
    }

    /// Enqueues the typed job `job` on its queue ([`Job::QUEUE`]) to run
    /// now. For a delay or other options, [`Producer::push`] a
    /// [`NewJob::of`].
    pub async fn enqueue<J: Job>(&self, job: &J) -> Result<JobId> {
        self.push(NewJob::of(job)?).await
    }

    /// Enqueues `job` on its queue ([`NewJob::queue`]), now or when its
    /// delay is due.
    pub async fn push(&self, job: NewJob) -> Result<JobId> {
        let queue = job.queue_name().to_owned();
        self.enqueue_job(&queue, job).await
    }

    /// Enqueues a job of type `job_type` with `payload` on `queue`, to run
    /// now: the string API, for job types that have no Rust type here
    /// (served by a worker in another language, or named at run time).
    pub async fn enqueue_named<T: Serialize + ?Sized>(
        &self,
        queue: &str,
        job_type: &str,
        payload: &T,
    ) -> Result<JobId> {
        self.enqueue_job(queue, NewJob::new(job_type, payload)?)
            .await
    }

    /// Enqueues `job` on `queue` (whatever queue the job names), now or
    /// when its delay is due.
    pub async fn enqueue_job(&self, queue: &str, job: NewJob) -> Result<JobId> {
        let mut ids = self.enqueue_many(queue, vec![job]).await?;
        ids.pop()
            .ok_or_else(|| Error::InvalidJob("enqueue returned no id".into()))
    }

    /// Enqueues many jobs in pipelines of up to 1000 commands: one round
    /// trip per chunk. Returns the ids in the order given. Every job is
    /// checked before anything is sent, so a bad job enqueues nothing. The
    /// jobs go to `queue`, whatever queue they name.
    pub async fn enqueue_many(&self, queue: &str, mut jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        for job in &jobs {
            self.check_size(job)?;
        }
        trace::stamp(&mut jobs);
        if let Some(keep) = self.records.get(queue) {
            for job in jobs.iter_mut().filter(|j| j.record_ms().is_none()) {
                job.set_keep_record(*keep);
            }
        }
        let redis = match &self.backend {
            Backend::Redis(redis) => redis,
            Backend::Recording(recorder) => return recorder.record(queue, &jobs),
        };
        let mut ids = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(PIPELINE_CHUNK) {
            let first = ids.len();
            let deadline = Instant::now() + self.retry_for;
            let mut backoff = Reconnect::new(&self.timings);
            loop {
                let sent = match self.store(redis, queue).await {
                    Ok(store) => self.send_chunk(&store, chunk, &mut ids).await,
                    Err(e) => Err(e),
                };
                match sent {
                    Ok(()) => break,
                    Err(e) if e.is_transient() && Instant::now() < deadline => {
                        ids.truncate(first);
                        // The last try is made at the deadline, not a
                        // backoff step past it: `retry_for` is how long
                        // an outage is ridden out, whatever the steps.
                        let left = deadline.saturating_duration_since(Instant::now());
                        let wait = backoff.next_delay().min(left);
                        if let Some(suppressed) =
                            jobstream_core::throttle::warnings().allow("producer.enqueue")
                        {
                            tracing::warn!(suppressed, error = %e, retry_in_ms = wait.as_millis() as u64, "enqueue failed; retrying");
                        }
                        tokio::time::sleep(wait).await;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(ids)
    }

    /// This producer, with every enqueue made `durability` durable before
    /// it returns: per call,
    /// `producer.durable(Durability::replicas(1, timeout)).enqueue_many(…)`.
    /// The clone shares this producer's connection, and a `WAIT` holds it:
    /// the other commands of both wait behind it (up to its timeout when a
    /// replica is missing). For durable enqueues next to latency-sensitive
    /// ones, use a producer of its own ([`ProducerOptions::durability`]).
    pub fn durable(&self, durability: Durability) -> Producer {
        Producer {
            durability,
            ..self.clone()
        }
    }

    /// Sends one chunk, then waits until it is as durable as asked: the
    /// wait covers every write of the chunk (one shared connection, its
    /// `CLIENT ID` read before and checked after).
    async fn send_chunk(
        &self,
        store: &QueueStore,
        jobs: &[NewJob],
        ids: &mut Vec<JobId>,
    ) -> Result<()> {
        if !self.durability.is_required() {
            return self.send_chunk_now(store, jobs, ids).await;
        }
        store.redis().mark_connection().await?;
        self.send_chunk_now(store, jobs, ids).await?;
        store.redis().wait_durable(&self.durability).await
    }

    async fn send_chunk_now(
        &self,
        store: &QueueStore,
        jobs: &[NewJob],
        ids: &mut Vec<JobId>,
    ) -> Result<()> {
        // Due times come from the server's clock (read once a minute at
        // most); jobs to run now never ask for it.
        let now = match jobs
            .iter()
            .any(|j| j.when.is_some() || j.deadline.is_some() || j.is_tracked())
        {
            true => Some(store.redis().server_now_ms().await?),
            false => None,
        };
        // Start deadlines, by the server's clock: `start_within` counts
        // from when the job is due.
        let deadlines: Vec<Option<String>> = jobs
            .iter()
            .map(|j| {
                let now = now?;
                let due = j.when.map_or(now, |w| w.due_ms(now).max(now));
                Some(j.deadline?.due_ms(due).to_string())
            })
            .collect();
        let mut immediate: Vec<Fields<'_>> = Vec::new();
        let mut delayed: Vec<(u64, Vec<u8>)> = Vec::new();
        // Jobs with a uniqueness key or a record: one `enqueue-6` call
        // each, after the plain ones; a duplicate's id is the holder's.
        let mut tracked = Vec::new();
        // Jobs of a group to run now: through `group-enqueue-6`, in order
        // within each group. (A delayed or tracked job of a group enters
        // its group when a worker fetches it: `group-start-6`.)
        let mut grouped: Vec<(&str, Vec<JobAt<'_>>)> = Vec::new();
        for (i, (job, deadline)) in jobs.iter().zip(&deadlines).enumerate() {
            let deadline = deadline.as_deref();
            if job.is_tracked() {
                tracked.push((i, deadline));
                continue;
            }
            match (job.when, now) {
                (Some(when), Some(now)) if when.due_ms(now) > now => {
                    delayed.push((when.due_ms(now), scheduled_member(job, deadline, now)));
                }
                _ => match job.group_name() {
                    Some(g) => match grouped.iter_mut().find(|(name, _)| *name == g) {
                        Some((_, list)) => list.push((i, deadline)),
                        None => grouped.push((g, vec![(i, deadline)])),
                    },
                    None => immediate.push(stream_fields(job, deadline)),
                },
            }
        }
        // Jobs to run now first: on a queue with limits they may be
        // refused, and then nothing of the chunk is enqueued.
        let limits = if immediate.is_empty() {
            None
        } else {
            self.queue_limits(store).await?
        };
        if let Some(limits) = &limits {
            self.admit(store, limits, &immediate).await?;
        } else if let [fields] = immediate.as_slice() {
            // One job: a plain XADD, no pipeline around it.
            store.add(fields).await?;
        } else if !immediate.is_empty() {
            store.add_many(immediate.iter().map(Vec::as_slice)).await?;
        }
        if !delayed.is_empty() {
            store.schedule(&delayed).await?;
        }
        // Groups side by side (they share the multiplexed connection), each
        // group's jobs one after the other: their order is the group's.
        let sends = grouped.iter().map(|(group, list)| async move {
            let fields: Vec<Fields<'_>> = list
                .iter()
                .map(|(i, deadline)| stream_fields(&jobs[*i], *deadline))
                .collect();
            let batch: Vec<GroupedJob<'_>> = list
                .iter()
                .zip(&fields)
                .map(|((i, _), f)| (jobs[*i].id.as_str(), f.as_slice()))
                .collect();
            store.enqueue_grouped(group, &batch).await.map(|_| ())
        });
        for sent in futures_util::future::join_all(sends).await {
            sent?;
        }
        // The ids were made with the jobs, before anything was sent.
        let first = ids.len();
        ids.extend(jobs.iter().map(|j| j.id.clone()));
        for (i, deadline) in tracked {
            let now = now.unwrap_or(0);
            let outcome = send_tracked(store, &jobs[i], deadline, now).await;
            match outcome {
                Ok(EnqueueOutcome::Enqueued(_)) => {}
                Ok(EnqueueOutcome::Duplicate(holder)) => ids[first + i] = holder,
                Err(e) => {
                    // The jobs before it are enqueued; a retry of the
                    // chunk enqueues plain ones again (at-least-once) and
                    // finds tracked ones already there (their key held by
                    // their own id, or their record live): not twice.
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// A job of a chunk by its index, with its start deadline (unix ms text).
type JobAt<'a> = (usize, Option<&'a str>);

/// Enqueues one job with a uniqueness key or a record (`enqueue-6`).
async fn send_tracked(
    store: &QueueStore,
    job: &NewJob,
    deadline: Option<&str>,
    now: u64,
) -> Result<EnqueueOutcome> {
    let unique = job
        .unique_lock()
        .map(|(key, mode, ttl_ms)| UniqueLock { key, mode, ttl_ms });
    let record_ms = job.record_ms().unwrap_or(0);
    match job.when.map(|w| w.due_ms(now)) {
        Some(due) if due > now => {
            let member = scheduled_member(job, deadline, now);
            let dest = Destination::Scheduled(due, &member);
            store
                .enqueue_tracked(&job.id, &job.job_type, unique, record_ms, now, dest)
                .await
        }
        _ => {
            let fields = stream_fields(job, deadline);
            let dest = Destination::Ready(&fields);
            store
                .enqueue_tracked(&job.id, &job.job_type, unique, record_ms, now, dest)
                .await
        }
    }
}

/// A job's stream fields, borrowed from the job.
type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

fn stream_fields<'a>(job: &'a NewJob, deadline: Option<&'a str>) -> Fields<'a> {
    let mut fields: Fields<'_> = Vec::with_capacity(3 + job.options.len() + job.extra.len());
    fields.push((field::TYPE.as_bytes(), job.job_type.as_bytes()));
    fields.push((field::PAYLOAD.as_bytes(), &job.payload));
    fields.push((field::ID.as_bytes(), job.id.as_bytes()));
    for (k, v) in &job.options {
        fields.push((k.as_bytes(), v.as_bytes()));
    }
    if let Some(d) = deadline {
        fields.push((field::DEADLINE_MS.as_bytes(), d.as_bytes()));
    }
    for (k, v) in &job.extra {
        fields.push((k.as_bytes(), v));
    }
    fields
}

fn scheduled_member(job: &NewJob, deadline: Option<&str>, now: u64) -> Vec<u8> {
    let now = now.to_string();
    let mut fields: Vec<(Vec<u8>, Vec<u8>)> = stream_fields(job, deadline)
        .into_iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    fields.push((field::ENQUEUED_AT.into(), now.into()));
    fields_to_msgpack(&fields)
}

/// An id for a job that has no stream entry yet: time-ordered, random tail.
/// A job id made before sending: a UUIDv7 (RFC 9562), time-ordered with
/// random bits, so ids sort by creation and never collide in practice.
pub(crate) fn generate_id() -> String {
    // The time from this host's clock (ids only need to be unique and
    // roughly ordered), the random bits from the thread-local generator:
    // no system call per id, which `Uuid::now_v7` makes for its randomness.
    let ms = jobstream_core::now_ms();
    let id = uuid::Builder::from_unix_timestamp_millis(ms, &rand::random::<[u8; 10]>()).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

/// `$REDIS_URL`, or `redis://127.0.0.1:6379`.
pub fn redis_url_from_env() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}
