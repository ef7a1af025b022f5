//! Assert what your code enqueued, per test: a recording [`Producer`]
//! keeps its jobs in memory instead of sending them, so no Redis is
//! needed. It is a value the test owns, never a global mode: hand the
//! producer to the code under test (it is a plain `Producer`), keep the
//! [`Recorder`], and assert on what it saw.
//!
//! ```
//! use jobstream_producer::{Job, Producer};
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
//! /// The code under test.
//! async fn sign_up(producer: &Producer, email: &str) -> jobstream_producer::Result<()> {
//!     producer.enqueue(&SendEmail { to: email.into() }).await?;
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let (producer, enqueued) = Producer::recording();
//! sign_up(&producer, "a@example.com").await.unwrap();
//!
//! let job = enqueued.assert_enqueued::<SendEmail>(|e| e.to == "a@example.com");
//! assert_eq!(job.queue, "emails");
//! assert_eq!(job.delay, None);
//! enqueued.refute_enqueued::<SendEmail>(|e| e.to == "b@example.com");
//! assert_eq!(enqueued.jobs::<SendEmail>().len(), 1);
//! # }
//! ```
//!
//! What a recording producer checks is what the real one checks before
//! anything is sent: a valid queue name, a payload under
//! `max_payload_bytes`, a well-formed job. Its
//! [`inspector`](Producer::inspector) answers every call with an error:
//! inspecting queues needs Redis.
//!
//! For integration tests against a real Redis, [`enqueued`] reads what is
//! in a queue (its `ready` stream and `scheduled` set) into the same
//! [`EnqueuedJobs`], with the same assertions.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobstream_core::envelope::{field, msgpack_to_fields, reserved_names};
use jobstream_core::{Error, Job, QueueKeys, QueueName, QueueStore, Redis, Result, Timings};
use serde::de::DeserializeOwned;

use crate::job::{NewJob, When};
use crate::{JobId, Producer};

/// One job as it was enqueued: where to, what, and with which options.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EnqueuedJob {
    /// The job id the enqueue returned (for a job read from Redis: its
    /// `id` field, or else its entry id).
    pub id: JobId,
    /// The queue it went to.
    pub queue: String,
    /// The job type (`type` on the wire; [`Job::NAME`] for typed jobs).
    pub job_type: String,
    /// The encoded payload (MessagePack); see [`EnqueuedJob::decode`].
    pub payload: Vec<u8>,
    /// To run this long after the enqueue ([`NewJob::delay`]); `None`
    /// for a job to run now or at a time ([`EnqueuedJob::run_at`]).
    pub delay: Option<Duration>,
    /// To run at this time ([`NewJob::run_at`]; for a job read from
    /// Redis, its due time in `scheduled`).
    pub run_at: Option<SystemTime>,
    /// The job's own `max_attempts` ([`NewJob::max_attempts`]).
    pub max_attempts: Option<u32>,
    /// The job's own timeout ([`NewJob::timeout`]).
    pub timeout: Option<Duration>,
    /// The idempotency key ([`NewJob::idempotency_key`]).
    pub idempotency_key: Option<String>,
    /// The W3C trace context ([`NewJob::traceparent`]; with the `otel`
    /// feature, the span's the job was enqueued in).
    pub traceparent: Option<String>,
    /// The W3C trace state ([`NewJob::tracestate`]).
    pub tracestate: Option<String>,
    /// Extra fields ([`NewJob::field`]), in order.
    pub fields: Vec<(String, Vec<u8>)>,
}

impl EnqueuedJob {
    /// Whether this is a job of the typed job `J` (its type is
    /// [`Job::NAME`]).
    pub fn is<J: Job>(&self) -> bool {
        self.job_type == J::NAME
    }

    /// The payload decoded into `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T> {
        rmp_serde::from_slice(&self.payload).map_err(|e| Error::Decode {
            what: "payload",
            detail: e.to_string(),
        })
    }

    /// The payload as a `J`, if this is a job of type `J` whose payload
    /// decodes into it.
    pub fn job<J: Job>(&self) -> Option<J> {
        if self.is::<J>() {
            self.decode().ok()
        } else {
            None
        }
    }

    /// An extra field by name (the first one).
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    /// Whether it runs later rather than now.
    pub fn is_scheduled(&self) -> bool {
        self.delay.is_some() || self.run_at.is_some()
    }

    pub(crate) fn from_new_job(queue: &str, job: &NewJob) -> Self {
        let (delay, run_at) = match job.when {
            None => (None, None),
            Some(When::After(d)) => (Some(d), None),
            Some(When::At(ms)) => (None, Some(UNIX_EPOCH + Duration::from_millis(ms))),
        };
        let option = |name: &str| {
            job.options
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        Self {
            id: job.id.clone(),
            queue: queue.to_owned(),
            job_type: job.job_type.clone(),
            payload: job.payload.clone(),
            delay,
            run_at,
            max_attempts: option(field::MAX_ATTEMPTS).and_then(|v| v.parse().ok()),
            timeout: option(field::TIMEOUT_MS)
                .and_then(|v| v.parse().ok())
                .map(Duration::from_millis),
            idempotency_key: option(field::IDEMPOTENCY_KEY).map(str::to_owned),
            traceparent: option(field::TRACEPARENT).map(str::to_owned),
            tracestate: option(field::TRACESTATE).map(str::to_owned),
            fields: job.extra.clone(),
        }
    }

    /// A job read back from Redis: stream entry fields or a `scheduled`
    /// member's, due at `due_ms` for a scheduled one.
    fn from_fields(
        queue: &str,
        entry_id: String,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        due_ms: Option<u64>,
    ) -> Self {
        let mut job = Self {
            id: entry_id,
            queue: queue.to_owned(),
            job_type: String::new(),
            payload: Vec::new(),
            delay: None,
            run_at: due_ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            max_attempts: None,
            timeout: None,
            idempotency_key: None,
            traceparent: None,
            tracestate: None,
            fields: Vec::new(),
        };
        for (name, value) in fields {
            let name = String::from_utf8_lossy(&name).into_owned();
            let text = || String::from_utf8_lossy(&value).into_owned();
            match name.as_str() {
                field::TYPE => job.job_type = text(),
                field::ID => job.id = text(),
                field::MAX_ATTEMPTS => job.max_attempts = text().parse().ok(),
                field::TIMEOUT_MS => {
                    job.timeout = text().parse().ok().map(Duration::from_millis);
                }
                field::IDEMPOTENCY_KEY => job.idempotency_key = Some(text()),
                field::TRACEPARENT => job.traceparent = Some(text()),
                field::TRACESTATE => job.tracestate = Some(text()),
                field::PAYLOAD => job.payload = value,
                // What the worker writes (attempt, last error, ...).
                n if reserved_names().any(|r| r == n) => {}
                _ => job.fields.push((name, value)),
            }
        }
        job
    }

    /// One line for failure messages: queue, type, payload as text, when.
    fn describe(&self) -> String {
        let mut line = format!(
            "{} on {:?}: {}",
            self.job_type,
            self.queue,
            show_payload(&self.payload)
        );
        if let Some(d) = self.delay {
            let _ = write!(line, " (delay {d:?})");
        }
        if let Some(at) = self.run_at {
            let ms = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let _ = write!(line, " (run at {ms} unix ms)");
        }
        line
    }
}

/// A list of enqueued jobs, oldest first, with assertions. Derefs to
/// `[EnqueuedJob]`, so `len`, `iter` and indexing work.
///
/// The assertions panic with the list of what was enqueued, for tests;
/// they point at the caller's line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueuedJobs(Vec<EnqueuedJob>);

impl std::ops::Deref for EnqueuedJobs {
    type Target = [EnqueuedJob];
    fn deref(&self) -> &[EnqueuedJob] {
        &self.0
    }
}

impl IntoIterator for EnqueuedJobs {
    type Item = EnqueuedJob;
    type IntoIter = std::vec::IntoIter<EnqueuedJob>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a EnqueuedJobs {
    type Item = &'a EnqueuedJob;
    type IntoIter = std::slice::Iter<'a, EnqueuedJob>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<EnqueuedJob>> for EnqueuedJobs {
    fn from(jobs: Vec<EnqueuedJob>) -> Self {
        Self(jobs)
    }
}

// Assertions for tests: panicking with a clear message is their job.
#[allow(clippy::panic)]
impl EnqueuedJobs {
    /// The jobs as a `Vec`.
    pub fn into_vec(self) -> Vec<EnqueuedJob> {
        self.0
    }

    /// The jobs that went to `queue`.
    pub fn on_queue(&self, queue: &str) -> EnqueuedJobs {
        Self(
            self.0
                .iter()
                .filter(|j| j.queue == queue)
                .cloned()
                .collect(),
        )
    }

    /// The payloads of every job of type `J`, decoded, oldest first.
    ///
    /// # Panics
    ///
    /// When a job of type [`Job::NAME`] has a payload that does not decode
    /// into `J` (another type of the same name, or one enqueued by name).
    #[track_caller]
    pub fn jobs<J: Job>(&self) -> Vec<J> {
        let mut out = Vec::new();
        for job in self.0.iter().filter(|j| j.is::<J>()) {
            match job.decode::<J>() {
                Ok(j) => out.push(j),
                Err(e) => panic!(
                    "a job of type {:?} (id {}) does not decode into {}: {e}",
                    J::NAME,
                    job.id,
                    std::any::type_name::<J>()
                ),
            }
        }
        out
    }

    /// The first job of type `J` (on any queue) whose payload matches
    /// `predicate`. Chain [`on_queue`](Self::on_queue) to require a queue.
    ///
    /// # Panics
    ///
    /// When there is none, listing what was enqueued.
    #[track_caller]
    pub fn assert_enqueued<J: Job>(&self, predicate: impl Fn(&J) -> bool) -> EnqueuedJob {
        match self.find::<J>(&predicate) {
            Some(job) => job.clone(),
            None => panic!(
                "expected a job of type {:?} matching the predicate; {}",
                J::NAME,
                self.listing::<J>()
            ),
        }
    }

    /// Checks that no job of type `J` matches `predicate` (`|_| true`: no
    /// job of type `J` at all).
    ///
    /// # Panics
    ///
    /// When one does, showing it.
    #[track_caller]
    pub fn refute_enqueued<J: Job>(&self, predicate: impl Fn(&J) -> bool) {
        if let Some(job) = self.find::<J>(&predicate) {
            panic!(
                "expected no job of type {:?} matching the predicate, found: {}",
                J::NAME,
                job.describe()
            );
        }
    }

    /// The first job of type `job_type` on `queue`: the string API, for
    /// jobs enqueued by name.
    ///
    /// # Panics
    ///
    /// When there is none, listing what was enqueued.
    #[track_caller]
    pub fn assert_enqueued_named(&self, queue: &str, job_type: &str) -> EnqueuedJob {
        match self.find_named(queue, job_type) {
            Some(job) => job.clone(),
            None => panic!(
                "expected a job of type {job_type:?} on queue {queue:?}; {}",
                self.listing_plain()
            ),
        }
    }

    /// Checks that no job of type `job_type` went to `queue`.
    ///
    /// # Panics
    ///
    /// When one did, showing it.
    #[track_caller]
    pub fn refute_enqueued_named(&self, queue: &str, job_type: &str) {
        if let Some(job) = self.find_named(queue, job_type) {
            panic!(
                "expected no job of type {job_type:?} on queue {queue:?}, found: {}",
                job.describe()
            );
        }
    }

    fn find<J: Job>(&self, predicate: &impl Fn(&J) -> bool) -> Option<&EnqueuedJob> {
        self.0
            .iter()
            .find(|j| j.job::<J>().is_some_and(|p| predicate(&p)))
    }

    fn find_named(&self, queue: &str, job_type: &str) -> Option<&EnqueuedJob> {
        self.0
            .iter()
            .find(|j| j.queue == queue && j.job_type == job_type)
    }

    /// What was enqueued, one job a line, noting payloads of type `J`
    /// that do not decode into it.
    fn listing<J: Job>(&self) -> String {
        let mut out = self.listing_plain();
        for job in self.0.iter().filter(|j| j.is::<J>()) {
            if let Err(e) = job.decode::<J>() {
                let _ = write!(
                    out,
                    "\n  note: job {} has type {:?} but does not decode into {}: {e}",
                    job.id,
                    J::NAME,
                    std::any::type_name::<J>()
                );
            }
        }
        out
    }

    fn listing_plain(&self) -> String {
        if self.0.is_empty() {
            return "nothing was enqueued".to_owned();
        }
        let mut out = format!("enqueued ({}):", self.0.len());
        for job in &self.0 {
            let _ = write!(out, "\n  {}", job.describe());
        }
        out
    }
}

/// What a recording producer ([`Producer::recording`]) enqueued. Cheap to
/// clone; every clone sees the same jobs. The assertions are those of
/// [`EnqueuedJobs`], on everything recorded so far.
#[derive(Debug, Clone)]
pub struct Recorder {
    jobs: Arc<Mutex<Vec<EnqueuedJob>>>,
}

impl Recorder {
    /// Everything recorded so far, oldest first.
    pub fn enqueued(&self) -> EnqueuedJobs {
        EnqueuedJobs(self.lock().clone())
    }

    /// Forgets what was recorded (between two phases of a test).
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// See [`EnqueuedJobs::jobs`].
    #[track_caller]
    pub fn jobs<J: Job>(&self) -> Vec<J> {
        self.enqueued().jobs()
    }

    /// See [`EnqueuedJobs::assert_enqueued`].
    #[track_caller]
    pub fn assert_enqueued<J: Job>(&self, predicate: impl Fn(&J) -> bool) -> EnqueuedJob {
        self.enqueued().assert_enqueued(predicate)
    }

    /// See [`EnqueuedJobs::refute_enqueued`].
    #[track_caller]
    pub fn refute_enqueued<J: Job>(&self, predicate: impl Fn(&J) -> bool) {
        self.enqueued().refute_enqueued(predicate);
    }

    /// See [`EnqueuedJobs::assert_enqueued_named`].
    #[track_caller]
    pub fn assert_enqueued_named(&self, queue: &str, job_type: &str) -> EnqueuedJob {
        self.enqueued().assert_enqueued_named(queue, job_type)
    }

    /// See [`EnqueuedJobs::refute_enqueued_named`].
    #[track_caller]
    pub fn refute_enqueued_named(&self, queue: &str, job_type: &str) {
        self.enqueued().refute_enqueued_named(queue, job_type);
    }

    /// Records `jobs` as enqueued on `queue` and returns their ids, after
    /// the checks the real producer makes before sending anything.
    pub(crate) fn record(&self, queue: &str, jobs: &[NewJob]) -> Result<Vec<JobId>> {
        let queue = QueueName::new(queue)?;
        let records: Vec<EnqueuedJob> = jobs
            .iter()
            .map(|job| EnqueuedJob::from_new_job(queue.as_str(), job))
            .collect();
        let ids = records.iter().map(|r| r.id.clone()).collect();
        self.lock().extend(records);
        Ok(ids)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<EnqueuedJob>> {
        // A test that panicked while holding it left the list whole.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Producer {
    /// A producer that records what it is asked to enqueue instead of
    /// sending it, and the [`Recorder`] to assert on: for tests, no Redis
    /// needed. It is a plain `Producer`, so the code under test takes it
    /// unchanged; clones record into the same `Recorder`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let (producer, enqueued) = jobstream_producer::Producer::recording();
    /// producer.enqueue_named("emails", "send_email", &("a@example.com",)).await.unwrap();
    /// enqueued.assert_enqueued_named("emails", "send_email");
    /// # }
    /// ```
    pub fn recording() -> (Producer, Recorder) {
        let recorder = Recorder {
            jobs: Arc::default(),
        };
        (Producer::recording_into(recorder.clone()), recorder)
    }
}

/// What is in `queue` on the Redis at `url` now (default key prefix
/// `jobstream`), for integration tests: the jobs in its `ready` stream
/// (waiting or running), oldest first, then those in its `scheduled` set
/// (delayed, or waiting for a retry) with their due time as
/// [`EnqueuedJob::run_at`], earliest first. A job read back has its
/// options and extra fields but no [`delay`](EnqueuedJob::delay) (only the
/// due time is stored); its `id` is its `id` field, or else its entry id.
/// `scheduled` members that are not a map of string fields are left out
/// (the worker dead-letters them as malformed).
///
/// ```no_run
/// # async fn demo(url: &str) -> jobstream_producer::Result<()> {
/// let jobs = jobstream_producer::testing::enqueued(url, "emails").await?;
/// jobs.assert_enqueued_named("emails", "send_email");
/// # Ok(()) }
/// ```
pub async fn enqueued(url: &str, queue: &str) -> Result<EnqueuedJobs> {
    const PAGE: usize = 1000;
    let name = QueueName::new(queue)?;
    let store = QueueStore::new(
        Redis::open(url, &Timings::default())?,
        QueueKeys::new(jobstream_core::DEFAULT_PREFIX, &name),
        jobstream_core::DEFAULT_GROUP,
    );
    let mut jobs = Vec::new();
    let mut start = "-".to_owned();
    loop {
        let page = store.ready_entries(&start, PAGE).await?;
        let full = page.len() == PAGE;
        if let Some(last) = page.last() {
            start = format!("({}", last.id);
        }
        jobs.extend(
            page.into_iter()
                .map(|e| EnqueuedJob::from_fields(queue, e.id, e.fields, None)),
        );
        if !full {
            break;
        }
    }
    let mut offset = 0;
    loop {
        let page = store.scheduled_members(offset, PAGE).await?;
        offset += page.len();
        let full = page.len() == PAGE;
        for (member, due) in page {
            if let Some(fields) = msgpack_to_fields(&member) {
                jobs.push(EnqueuedJob::from_fields(
                    queue,
                    String::new(),
                    fields,
                    Some(due),
                ));
            }
        }
        if !full {
            break;
        }
    }
    Ok(EnqueuedJobs(jobs))
}

/// A MessagePack payload as short text (`{to: "a@example.com", n: 3}`), for
/// failure messages; `<N bytes>` when it does not decode.
fn show_payload(bytes: &[u8]) -> String {
    match rmp_serde::from_slice::<Shown>(bytes) {
        Ok(Shown(text)) if text.len() <= 300 => text,
        Ok(Shown(text)) => {
            let cut: String = text.chars().take(300).collect();
            format!("{cut}…")
        }
        Err(_) => format!("<{} bytes, not MessagePack>", bytes.len()),
    }
}

/// Any serde value, rendered as text while it is decoded.
struct Shown(String);

impl<'de> serde::Deserialize<'de> for Shown {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(ShowVisitor).map(Shown)
    }
}

struct ShowVisitor;

impl<'de> serde::de::Visitor<'de> for ShowVisitor {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<String, E> {
        Ok(format!("{v:?}"))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> std::result::Result<String, E> {
        Ok(format!("<{} bytes>", v.len()))
    }
    fn visit_none<E>(self) -> std::result::Result<String, E> {
        Ok("null".to_owned())
    }
    fn visit_unit<E>(self) -> std::result::Result<String, E> {
        Ok("null".to_owned())
    }
    fn visit_some<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<String, D::Error> {
        d.deserialize_any(ShowVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<String, A::Error> {
        let mut items = Vec::new();
        while let Some(Shown(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(format!("[{}]", items.join(", ")))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<String, A::Error> {
        let mut items = Vec::new();
        while let Some((Shown(k), Shown(v))) = map.next_entry()? {
            // Field names unquoted, as in Rust's Debug of a struct.
            let k = k
                .strip_prefix('"')
                .and_then(|k| k.strip_suffix('"'))
                .map_or(k.clone(), str::to_owned);
            items.push(format!("{k}: {v}"));
        }
        Ok(format!("{{{}}}", items.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct SendEmail {
        to: String,
        tags: Vec<String>,
    }
    impl Job for SendEmail {
        const NAME: &'static str = "send_email";
        const QUEUE: &'static str = "emails";
    }

    fn email(to: &str) -> SendEmail {
        SendEmail {
            to: to.into(),
            tags: vec!["welcome".into()],
        }
    }

    #[tokio::test]
    async fn every_enqueue_method_records_queue_type_payload_and_options() {
        let (producer, enqueued) = Producer::recording();
        let clone = producer.clone();
        let id = producer.enqueue(&email("a@x")).await.unwrap();
        clone
            .push(
                NewJob::of(&email("b@x"))
                    .unwrap()
                    .queue("low")
                    .delay(Duration::from_secs(60))
                    .max_attempts(3)
                    .timeout(Duration::from_secs(5))
                    .idempotency_key("k-1")
                    .field("tenant", "acme")
                    .unwrap(),
            )
            .await
            .unwrap();
        producer
            .enqueue_named("thumbnails", "resize", &(640, 480))
            .await
            .unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let ids = producer
            .enqueue_many(
                "bulk",
                vec![
                    NewJob::new("a", &1).unwrap(),
                    NewJob::new("b", &2).unwrap().run_at(at),
                ],
            )
            .await
            .unwrap();

        let all = enqueued.enqueued();
        assert_eq!(all.len(), 5);
        assert_eq!(all[0].id, id);
        assert_eq!(
            (all[3].id.as_str(), all[4].id.as_str()),
            (ids[0].as_str(), ids[1].as_str())
        );
        assert_eq!(
            all.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>(),
            ["emails", "low", "thumbnails", "bulk", "bulk"]
        );
        let b = enqueued.assert_enqueued::<SendEmail>(|e| e.to == "b@x");
        assert_eq!(b.queue, "low");
        assert_eq!(b.delay, Some(Duration::from_secs(60)));
        assert_eq!(b.max_attempts, Some(3));
        assert_eq!(b.timeout, Some(Duration::from_secs(5)));
        assert_eq!(b.idempotency_key.as_deref(), Some("k-1"));
        assert_eq!(b.field("tenant"), Some(&b"acme"[..]));
        assert!(b.is_scheduled());
        assert_eq!(all[4].run_at, Some(at));
        assert_eq!(all[2].decode::<(u32, u32)>().unwrap(), (640, 480));
        assert_eq!(
            enqueued.jobs::<SendEmail>(),
            vec![email("a@x"), email("b@x")]
        );
        enqueued.assert_enqueued_named("thumbnails", "resize");
        enqueued.refute_enqueued_named("emails", "resize");
        enqueued.refute_enqueued::<SendEmail>(|e| e.to == "c@x");
        all.on_queue("emails")
            .refute_enqueued::<SendEmail>(|e| e.to == "b@x");
        enqueued.clear();
        assert!(enqueued.enqueued().is_empty());
    }

    #[tokio::test]
    async fn an_explicit_trace_context_is_sent_as_given() {
        let (producer, enqueued) = Producer::recording();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        // Inside a span or not, with the `otel` feature or not: a context
        // set on the job is the one it carries.
        let span = tracing::info_span!("request");
        let _entered = span.enter();
        producer
            .push(
                NewJob::new("t", &1)
                    .unwrap()
                    .queue("q")
                    .traceparent(tp)
                    .tracestate("congo=t61rcWkgMzE"),
            )
            .await
            .unwrap();
        producer.enqueue_named("q", "untraced", &2).await.unwrap();
        let all = enqueued.enqueued();
        assert_eq!(all[0].traceparent.as_deref(), Some(tp));
        assert_eq!(all[0].tracestate.as_deref(), Some("congo=t61rcWkgMzE"));
        // No OpenTelemetry layer here: the span has no trace context.
        assert_eq!(all[1].traceparent, None);
        assert_eq!(all[1].tracestate, None);
    }

    #[tokio::test]
    async fn a_recording_producer_refuses_what_the_real_one_refuses() {
        let (producer, enqueued) = Producer::recording();
        let bad_queue = producer.enqueue_named("no spaces", "t", &1).await;
        assert!(
            matches!(bad_queue, Err(Error::InvalidQueueName { .. })),
            "{bad_queue:?}"
        );
        let big = vec![0u8; jobstream_core::Limits::default().max_payload_bytes + 1];
        let too_big = producer.enqueue_named("q", "t", &big).await;
        assert!(
            matches!(too_big, Err(Error::PayloadTooLarge { .. })),
            "{too_big:?}"
        );
        assert!(enqueued.enqueued().is_empty());
        let err = producer.inspector().stats("q").await.unwrap_err();
        assert!(err.to_string().contains("needs Redis"), "{err}");
        assert!(producer.display_url().contains("recording"));
    }

    #[tokio::test]
    async fn failed_assertions_list_what_was_enqueued() {
        let (producer, enqueued) = Producer::recording();
        producer.enqueue(&email("a@x")).await.unwrap();
        producer
            .enqueue_named("emails", SendEmail::NAME, &"not an email")
            .await
            .unwrap();
        let panic = std::panic::catch_unwind(|| {
            enqueued.assert_enqueued::<SendEmail>(|e| e.to == "z@x");
        })
        .unwrap_err();
        let msg = panic.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains(r#"send_email on "emails": {to: "a@x", tags: ["welcome"]}"#),
            "{msg}"
        );
        assert!(msg.contains("does not decode into"), "{msg}");
        let panic = std::panic::catch_unwind(|| enqueued.refute_enqueued::<SendEmail>(|_| true))
            .unwrap_err();
        let msg = panic.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("expected no job of type \"send_email\""),
            "{msg}"
        );
        let (_, empty) = Producer::recording();
        let panic = std::panic::catch_unwind(|| empty.assert_enqueued_named("q", "t")).unwrap_err();
        let msg = panic.downcast_ref::<String>().unwrap();
        assert!(msg.contains("nothing was enqueued"), "{msg}");
    }
}
