//! A job to enqueue: type, encoded payload, queue and options.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobstream_core::envelope::{
    MAX_ATTEMPTS_CAP, MAX_FIELDS, MAX_RATE_KEY_LEN, MAX_TIMEOUT_MS, field, reserved_names,
};
use jobstream_core::lifecycle::{MAX_KEEP_MS, MAX_UNIQUE_KEY_LEN};
use jobstream_core::{Error, Job, Result, Uniqueness};
use serde::Serialize;

/// Longest job id [`NewJob::with_id`] accepts, in bytes: an id is copied
/// into every retry, dead letter and log line of its job.
pub const MAX_ID_LEN: usize = 256;

/// A job ready to be enqueued, with its options (delay, attempts, timeout,
/// idempotency key, extra fields). The payload is encoded when the job is
/// made, so a payload that cannot be serialized fails here, not in Redis.
///
/// ```
/// use jobstream_producer::{Job, NewJob};
/// use serde::{Deserialize, Serialize};
/// use std::time::Duration;
///
/// #[derive(Serialize, Deserialize)]
/// struct SendEmail { to: String }
/// impl Job for SendEmail {
///     const NAME: &'static str = "send_email";
///     const QUEUE: &'static str = "emails";
/// }
///
/// let job = NewJob::of(&SendEmail { to: "a@example.com".into() })
///     .unwrap()
///     .delay(Duration::from_secs(30))
///     .idempotency_key("welcome-42");
/// assert_eq!(job.queue_name(), "emails");
/// // Then: producer.push(job).await?
/// ```
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) id: String,
    pub(crate) job_type: String,
    pub(crate) queue: Option<String>,
    pub(crate) payload: Vec<u8>,
    pub(crate) when: Option<When>,
    /// Start deadline: absolute, or relative to when the job is due.
    pub(crate) deadline: Option<When>,
    pub(crate) options: Vec<(&'static str, String)>,
    pub(crate) extra: Vec<(String, Vec<u8>)>,
}

impl NewJob {
    /// A typed job: its type name is [`Job::NAME`], its queue
    /// [`Job::QUEUE`] (change it with [`NewJob::queue`]).
    pub fn of<J: Job>(job: &J) -> Result<Self> {
        let new = Self::new(J::NAME, job)?.queue(J::QUEUE);
        Ok(match J::KEEP_RECORD {
            Some(keep) => new.keep_record(keep),
            None => new,
        })
    }

    /// A job of type `job_type` with `payload` encoded as MessagePack (maps
    /// keep their field names, so producers in other languages see the same
    /// shape).
    pub fn new<T: Serialize + ?Sized>(job_type: &str, payload: &T) -> Result<Self> {
        // Most payloads are small: one allocation instead of a few regrowths.
        let mut buf = Vec::with_capacity(128);
        rmp_serde::encode::write_named(&mut buf, payload)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let payload = buf;
        // Encoded here, so it is well-formed: no need to check it again.
        Self::unchecked(job_type, payload)
    }

    /// A job whose payload is already MessagePack bytes (it is checked).
    pub fn from_msgpack(job_type: &str, payload: Vec<u8>) -> Result<Self> {
        if job_type.is_empty() {
            return Err(Error::InvalidJob("job type is empty".into()));
        }
        jobstream_core::envelope::check_msgpack(&payload).map_err(|detail| Error::Decode {
            what: "payload",
            detail,
        })?;
        Self::unchecked(job_type, payload)
    }

    fn unchecked(job_type: &str, payload: Vec<u8>) -> Result<Self> {
        if job_type.is_empty() {
            return Err(Error::InvalidJob("job type is empty".into()));
        }
        Ok(Self {
            id: crate::generate_id(),
            job_type: job_type.to_owned(),
            queue: None,
            payload,
            when: None,
            deadline: None,
            options: Vec::new(),
            extra: Vec::new(),
        })
    }

    /// The job's id, made when the job was (a UUIDv7: time-ordered,
    /// unique), before anything is sent: it is the id every enqueue call
    /// returns, and it stays the job's id through retries, dead letters and
    /// replays. Know it before enqueueing to store it next to your own
    /// records.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Uses `id` as the job's id instead of a generated one (your own
    /// unique key, e.g. `order-42-receipt`); it must be unique within the
    /// queue, not empty, and at most [`MAX_ID_LEN`] bytes.
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(Error::InvalidJob(format!(
                "a job id must be 1 to {MAX_ID_LEN} bytes long (this one is {})",
                id.len()
            )));
        }
        self.id = id;
        Ok(self)
    }

    /// The queue [`Producer::push`](crate::Producer::push) puts it on
    /// (`default` unless set).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// The queue it goes to with [`Producer::push`](crate::Producer::push).
    pub fn queue_name(&self) -> &str {
        self.queue.as_deref().unwrap_or("default")
    }

    /// The job type.
    pub fn job_type(&self) -> &str {
        &self.job_type
    }

    /// The encoded payload (MessagePack).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Run no sooner than `delay` from when it is enqueued, by the Redis
    /// server's clock (this host's clock may be off).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.when = (!delay.is_zero()).then_some(When::After(delay));
        self
    }

    /// Run no sooner than `at` (compared with the Redis server's clock).
    pub fn run_at(mut self, at: SystemTime) -> Self {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.when = Some(When::At(ms));
        self
    }

    /// Override the handler's maximum attempts for this job; at most
    /// [`MAX_ATTEMPTS_CAP`] (larger values are lowered to it) and at
    /// least 1.
    pub fn max_attempts(self, n: u32) -> Self {
        let n = n.clamp(1, MAX_ATTEMPTS_CAP);
        self.option(field::MAX_ATTEMPTS, n.to_string())
    }

    /// Override the handler's timeout for this job; at most 24 h
    /// ([`MAX_TIMEOUT_MS`]), at least 1 ms.
    pub fn timeout(self, timeout: Duration) -> Self {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TIMEOUT_MS);
        self.option(field::TIMEOUT_MS, ms.to_string())
    }

    /// Start it within `window` of when it is due (now, or after its
    /// delay), by the Redis server's clock, or not at all: a worker that
    /// fetches it later sends it to dead with reason `expired` (or drops it,
    /// with [`NewJob::discard_after_deadline`]). For work that is pointless
    /// when late (a one-time code, a price quote).
    pub fn start_within(mut self, window: Duration) -> Self {
        self.deadline = Some(When::After(window));
        self
    }

    /// Start it no later than `at` (compared with the Redis server's clock),
    /// or not at all; see [`NewJob::start_within`].
    pub fn start_by(mut self, at: SystemTime) -> Self {
        let ms = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.deadline = Some(When::At(ms));
        self
    }

    /// Past its start deadline the job is discarded (counted as `expired`)
    /// instead of sent to dead.
    pub fn discard_after_deadline(self) -> Self {
        self.option(field::ON_DEADLINE, "discard".to_owned())
    }

    /// A stable business key the handler can use to make its effect
    /// idempotent (e.g. an order number).
    pub fn idempotency_key(self, key: impl Into<String>) -> Self {
        self.option(field::IDEMPOTENCY_KEY, key.into())
    }

    /// The job's rate key (a customer id, an upstream API name): on a
    /// queue whose workers declare a per-key rate limit
    /// (`QueueOptions::key_rate_limit`), every distinct key gets its own
    /// fleet-wide bucket; and when a handler returns
    /// `JobError::rate_limited`, jobs with this key are held back
    /// fleet-wide (without a key, their job type is held). It must be 1 to
    /// [`MAX_RATE_KEY_LEN`] bytes.
    ///
    /// ```
    /// use jobstream_producer::NewJob;
    /// let job = NewJob::new("geocode", &"Main St 1")?.rate_key("customer-42")?;
    /// # Ok::<(), jobstream_producer::Error>(())
    /// ```
    pub fn rate_key(self, key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        if key.is_empty() || key.len() > MAX_RATE_KEY_LEN {
            return Err(Error::InvalidJob(format!(
                "a rate key must be 1 to {MAX_RATE_KEY_LEN} bytes long (this one is {})",
                key.len()
            )));
        }
        Ok(self.option(field::RATE_KEY, key))
    }

    /// Makes the job unique by `key` within its queue: while another job
    /// holds the key, enqueueing this one enqueues nothing and returns the
    /// holder's id (counted in `duplicates`); see [`Uniqueness`] for when
    /// the key is released. The key is reserved atomically with the
    /// enqueue (script `enqueue-6`). It must be 1 to
    /// [`MAX_UNIQUE_KEY_LEN`] bytes, and a `For` duration at least 1 ms.
    ///
    /// ```
    /// use jobstream_producer::{NewJob, Uniqueness};
    /// let job = NewJob::new("sync_account", &42)?
    ///     .unique("account-42", Uniqueness::WhileQueued)?;
    /// # Ok::<(), jobstream_producer::Error>(())
    /// ```
    pub fn unique(self, key: impl Into<String>, mode: Uniqueness) -> Result<Self> {
        let key = key.into();
        if key.is_empty() || key.len() > MAX_UNIQUE_KEY_LEN {
            return Err(Error::InvalidJob(format!(
                "a uniqueness key must be 1 to {MAX_UNIQUE_KEY_LEN} bytes long (this one is {})",
                key.len()
            )));
        }
        let job = self
            .option(field::UNIQUE_KEY, key)
            .option(field::UNIQUE_FOR, mode.wire_mode().to_owned());
        Ok(match mode {
            Uniqueness::For(d) => {
                let ms = u64::try_from(d.as_millis())
                    .unwrap_or(u64::MAX)
                    .clamp(1, MAX_KEEP_MS);
                job.option(field::UNIQUE_TTL_MS, ms.to_string())
            }
            _ => job,
        })
    }

    /// Puts the job in a group (a customer, a tenant, an account): at most
    /// the queue's group concurrency of one group's jobs run at once,
    /// fleet-wide (1 by default: one at a time, in enqueue order, retries
    /// included), and groups take turns, so one group's backlog does not
    /// hold up another's jobs. A job to run now is enqueued through the
    /// script `group-enqueue-6`. The group must be 1 to
    /// [`MAX_GROUP_LEN`](jobstream_core::envelope::MAX_GROUP_LEN) bytes.
    /// See docs/flow-control.md.
    ///
    /// ```
    /// use jobstream_producer::NewJob;
    /// let job = NewJob::new("sync_account", &42)?.group("account-42")?;
    /// # Ok::<(), jobstream_producer::Error>(())
    /// ```
    pub fn group(self, group: impl Into<String>) -> Result<Self> {
        let group = group.into();
        let max = jobstream_core::envelope::MAX_GROUP_LEN;
        if group.is_empty() || group.len() > max {
            return Err(Error::InvalidJob(format!(
                "a group must be 1 to {max} bytes long (this one is {})",
                group.len()
            )));
        }
        Ok(self.option(field::GROUP, group))
    }

    /// Its group, if it has one.
    pub(crate) fn group_name(&self) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| *n == field::GROUP)
            .map(|(_, v)| v.as_str())
    }

    /// Keeps a record of the job (state, attempts, times, progress, last
    /// error, result) for `keep` after it ends (at least 1 ms): read it
    /// with [`Producer::job`](crate::Producer::job), wait for it with
    /// [`Producer::wait_for`](crate::Producer::wait_for), cancel the job
    /// with [`Producer::cancel`](crate::Producer::cancel). Costs a few
    /// Redis commands per job (docs/benchmarks.md).
    pub fn keep_record(mut self, keep: Duration) -> Self {
        self.set_keep_record(keep);
        self
    }

    /// [`NewJob::keep_record`] in place.
    pub(crate) fn set_keep_record(&mut self, keep: Duration) {
        let ms = u64::try_from(keep.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_KEEP_MS);
        self.options.retain(|(n, _)| *n != field::RECORD_MS);
        self.options.push((field::RECORD_MS, ms.to_string()));
    }

    /// The uniqueness key, its mode and lifetime (ms, 0 = until released).
    pub(crate) fn unique_lock(&self) -> Option<(&str, &str, u64)> {
        let get = |name: &str| {
            self.options
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        let key = get(field::UNIQUE_KEY)?;
        let mode = get(field::UNIQUE_FOR).unwrap_or("done");
        let ttl = get(field::UNIQUE_TTL_MS).and_then(|v| v.parse().ok());
        Some((key, mode, ttl.unwrap_or(0)))
    }

    /// It has a uniqueness key or keeps a record: enqueued by script.
    pub(crate) fn is_tracked(&self) -> bool {
        self.options
            .iter()
            .any(|(n, _)| *n == field::UNIQUE_KEY || *n == field::RECORD_MS)
    }

    /// Sets a wire-format field that the producer itself manages (chain,
    /// batch), replacing one already there.
    pub(crate) fn set_internal(&mut self, name: &str, value: Vec<u8>) {
        self.extra.retain(|(n, _)| n != name);
        self.extra.push((name.to_owned(), value));
    }

    /// How long the record is kept (ms), if the job keeps one.
    pub(crate) fn record_ms(&self) -> Option<u64> {
        self.options
            .iter()
            .find(|(n, _)| *n == field::RECORD_MS)
            .and_then(|(_, v)| v.parse().ok())
    }

    /// The W3C trace context (`traceparent`, e.g.
    /// `00-<trace-id>-<span-id>-01`) the job carries to its worker, whose
    /// span for the job continues that trace. With the `otel` feature a job
    /// enqueued inside a span gets that span's context without this; a
    /// context set here wins. A value the worker finds malformed is ignored
    /// there (the job runs in a trace of its own).
    pub fn traceparent(self, traceparent: impl Into<String>) -> Self {
        self.option(field::TRACEPARENT, traceparent.into())
    }

    /// The W3C `tracestate` (vendor entries, e.g. `congo=t61rcWkgMzE`)
    /// that goes with [`NewJob::traceparent`].
    pub fn tracestate(self, tracestate: impl Into<String>) -> Self {
        self.option(field::TRACESTATE, tracestate.into())
    }

    /// Whether the job carries a `traceparent` already.
    #[cfg_attr(not(feature = "otel"), allow(dead_code))]
    pub(crate) fn has_traceparent(&self) -> bool {
        self.options.iter().any(|(n, _)| *n == field::TRACEPARENT)
    }

    /// Sets the trace context the producer found (feature `otel`).
    #[cfg(feature = "otel")]
    pub(crate) fn set_trace(&mut self, traceparent: &str, tracestate: Option<&str>) {
        // A tracestate belongs to its traceparent: one set alone is dropped.
        self.options.retain(|(n, _)| *n != field::TRACESTATE);
        self.options
            .push((field::TRACEPARENT, traceparent.to_owned()));
        if let Some(state) = tracestate {
            self.options.push((field::TRACESTATE, state.to_owned()));
        }
    }

    /// An extra field, carried through retries and into `dead` unchanged.
    /// Names of wire-format fields are refused, and so is a field beyond
    /// the wire format's limit ([`MAX_FIELDS`] in all, a few of which
    /// jobstream keeps for itself).
    pub fn field(mut self, name: &str, value: impl Into<Vec<u8>>) -> Result<Self> {
        if name.is_empty() || reserved_names().any(|r| r == name) {
            return Err(Error::InvalidJob(format!(
                "field name {name:?} is reserved by the wire format"
            )));
        }
        let reserved = reserved_names().count();
        if self.extra.len() + reserved >= MAX_FIELDS {
            return Err(Error::InvalidJob(format!(
                "a job has at most {} extra fields",
                MAX_FIELDS - reserved
            )));
        }
        self.extra.push((name.to_owned(), value.into()));
        Ok(self)
    }

    /// The encoded payload size in bytes.
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    fn option(mut self, name: &'static str, value: String) -> Self {
        self.options.retain(|(n, _)| *n != name);
        self.options.push((name, value));
        self
    }
}

/// When a delayed job is due.
#[derive(Debug, Clone, Copy)]
pub(crate) enum When {
    /// This long after it is enqueued, by the server's clock.
    After(Duration),
    /// At this unix ms.
    At(u64),
}

impl When {
    /// The due time, given the server's "now".
    pub(crate) fn due_ms(self, server_now_ms: u64) -> u64 {
        match self {
            When::After(d) => {
                server_now_ms.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            When::At(ms) => ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_gets_a_time_ordered_uuid_v7_before_it_is_sent() {
        let ids: Vec<String> = (0..1000)
            .map(|i| NewJob::new("t", &i).unwrap().id().to_owned())
            .collect();
        let unique: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7, "{id}");
        }
        // Time-ordered across milliseconds.
        let first = NewJob::new("t", &0).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let later = NewJob::new("t", &0).unwrap();
        assert!(first.id() < later.id());
    }

    #[test]
    fn a_rate_key_is_checked() {
        let job = NewJob::new("t", &1).unwrap();
        assert!(job.clone().rate_key("").is_err());
        let err = job.clone().rate_key("k".repeat(257)).unwrap_err();
        assert!(err.to_string().contains("1 to 256 bytes"), "{err}");
        assert!(job.rate_key("k".repeat(256)).is_ok());
    }

    #[test]
    fn an_id_of_your_own_is_checked() {
        let job = NewJob::new("t", &1).unwrap();
        assert_eq!(job.clone().with_id("order-42").unwrap().id(), "order-42");
        assert!(job.clone().with_id("").is_err());
        assert!(job.clone().with_id("x".repeat(MAX_ID_LEN)).is_ok());
        assert!(job.with_id("x".repeat(MAX_ID_LEN + 1)).is_err());
    }
}
