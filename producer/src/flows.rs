//! Chains (steps run one after the other, each given the previous one's
//! result) and batches (members run in parallel; a completion job runs
//! once when all of them have ended). Both live on one queue: every move is
//! a script on that queue's keys (`settle-14`).

use std::time::Duration;

use jobstream_core::chain::{MAX_CHAIN_STEPS, encode_chain};
use jobstream_core::envelope::field;
use jobstream_core::lifecycle::MAX_KEEP_MS;
use jobstream_core::{Error, Result};

use crate::{Backend, JobId, NewJob, Producer, scheduled_member, stream_fields};

/// Steps that run one after the other: each starts only when the one
/// before it succeeded, and gets its result
/// (`JobContext::previous_result`). Each step is its own job with its own
/// id, retries and timeout. A step that ends otherwise (dead, discarded,
/// expired, cancelled) ends the chain; replaying a dead step from the
/// dead-letter stream continues it.
///
/// All steps run on the first step's queue. Delays, deadlines and
/// uniqueness apply to the first step only (later steps are enqueued by the
/// worker when their turn comes).
///
/// ```
/// use jobstream_producer::{Chain, NewJob};
/// let chain = Chain::new(NewJob::new("fetch", &"https://example.com/a.csv")?)
///     .then(NewJob::new("parse", &())?)
///     .then(NewJob::new("load", &())?);
/// assert_eq!(chain.len(), 3);
/// // Then: producer.enqueue_chain(chain).await?
/// # Ok::<(), jobstream_producer::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Chain {
    steps: Vec<NewJob>,
}

impl Chain {
    /// A chain that starts with `first`.
    pub fn new(first: NewJob) -> Self {
        Self { steps: vec![first] }
    }

    /// Adds a step after the last one.
    pub fn then(mut self, step: NewJob) -> Self {
        self.steps.push(step);
        self
    }

    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Never true: a chain has its first step.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Members that run in parallel, and a completion job that runs once when
/// every member has ended, whatever the outcome: it reads how they ended
/// with `JobContext::batch` (counts and the ids of the members that did not
/// complete). A member counts once however often it is delivered or
/// enqueued. All members and the completion job run on one queue.
#[derive(Debug, Clone)]
pub struct Batch {
    queue: String,
    members: Vec<NewJob>,
    on_complete: NewJob,
    keep: Duration,
}

impl Batch {
    /// A batch on `queue` whose completion job is `on_complete`. Its
    /// summary is kept for a day after it completes (see [`Batch::keep`]).
    pub fn new(queue: impl Into<String>, on_complete: NewJob) -> Self {
        Self {
            queue: queue.into(),
            members: Vec::new(),
            on_complete,
            keep: Duration::from_secs(86_400),
        }
    }

    /// Adds a member.
    pub fn member(mut self, job: NewJob) -> Self {
        self.members.push(job);
        self
    }

    /// Adds members.
    pub fn members(mut self, jobs: impl IntoIterator<Item = NewJob>) -> Self {
        self.members.extend(jobs);
        self
    }

    /// How long the batch's summary is kept after its last member ended
    /// (at least 1 ms).
    pub fn keep(mut self, keep: Duration) -> Self {
        self.keep = keep;
        self
    }
}

impl Producer {
    /// Enqueues `chain`'s first step on its queue; the worker enqueues each
    /// next step when the one before it succeeds, in the same script that
    /// settles it. Returns the ids of all steps, in order.
    pub async fn enqueue_chain(&self, chain: Chain) -> Result<Vec<JobId>> {
        let mut steps = chain.steps;
        if steps.len() > MAX_CHAIN_STEPS + 1 {
            return Err(Error::InvalidJob(format!(
                "a chain has at most {} steps",
                MAX_CHAIN_STEPS + 1
            )));
        }
        // Every step carries the trace of the span the chain is enqueued
        // in (feature `otel`); the worker enqueues the later ones as they
        // are, so they join the same trace.
        crate::trace::stamp(&mut steps);
        let rest = steps.split_off(1);
        let Some(mut first) = steps.pop() else {
            return Err(Error::InvalidJob("a chain needs a first step".into()));
        };
        let mut ids = vec![first.id.clone()];
        let mut encoded = Vec::with_capacity(rest.len());
        for step in &rest {
            self.check_size(step)?;
            if step.unique_lock().is_some() || step.when.is_some() || step.deadline.is_some() {
                return Err(Error::InvalidJob(
                    "only a chain's first step may have a delay, a deadline or a uniqueness key"
                        .into(),
                ));
            }
            ids.push(step.id.clone());
            encoded.push(
                stream_fields(step, None)
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .collect(),
            );
        }
        if !encoded.is_empty() {
            first.set_internal(field::CHAIN, encode_chain(&encoded));
        }
        let queue = first.queue_name().to_owned();
        self.enqueue_job(&queue, first).await?;
        Ok(ids)
    }

    /// Enqueues `batch`: first its record (the member ids and the
    /// completion job, kept until the last member ends), then its members.
    /// Returns the batch id; the completion job's id is
    /// `on_complete.id()`. An empty batch schedules its completion job at
    /// once.
    pub async fn enqueue_batch(&self, batch: Batch) -> Result<String> {
        let Batch {
            queue,
            members,
            mut on_complete,
            keep,
        } = batch;
        let redis = match &self.backend {
            Backend::Redis(redis) => redis.clone(),
            Backend::Recording(_) => {
                return Err(Error::Config(
                    "a recording producer has no Redis: batches need one".into(),
                ));
            }
        };
        self.check_size(&on_complete)?;
        // The completion job joins the trace of the span the batch is
        // enqueued in (feature `otel`); the members do in enqueue_many.
        crate::trace::stamp(std::slice::from_mut(&mut on_complete));
        // Each member counts once by id: a repeated id (a cloned NewJob)
        // would leave the batch waiting forever; a member's uniqueness key
        // held elsewhere would enqueue nothing for an id already counted.
        let mut seen = std::collections::HashSet::new();
        for m in &members {
            if !seen.insert(m.id.as_str()) {
                return Err(Error::InvalidJob(format!(
                    "batch member id {:?} appears twice; every member needs its own id",
                    m.id
                )));
            }
            if m.unique_lock().is_some() {
                return Err(Error::InvalidJob(
                    "a batch member may not have a uniqueness key".into(),
                ));
            }
        }
        // The batch id is the completion job's: enqueueing the same Batch
        // again (a retry after an error) opens the same batch (HSETNX,
        // SADD) instead of a second one that could never complete.
        let batch_id = on_complete.id.clone();
        on_complete.set_internal(field::BATCH_DONE, batch_id.clone().into_bytes());
        let members: Vec<NewJob> = members
            .into_iter()
            .map(|mut m| {
                m.set_internal(field::BATCH, batch_id.clone().into_bytes());
                m
            })
            .collect();
        for m in &members {
            self.check_size(m)?;
        }
        let store = self.store(&redis, &queue).await?;
        let now = redis.server_now_ms().await?;
        let callback = scheduled_member(&on_complete, None, now);
        if members.is_empty() {
            store.schedule(&[(now, callback)]).await?;
            return Ok(batch_id);
        }
        let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
        let keep_ms = u64::try_from(keep.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_KEEP_MS);
        store
            .open_batch(&batch_id, &ids, &callback, keep_ms, now)
            .await?;
        self.enqueue_many(&queue, members).await?;
        Ok(batch_id)
    }
}
