//! Runs one job: decode, route, run the handler under its timeout with
//! panics caught, classify the result, and hand the outcome to the acker.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use jobstream_core::chain::encode_chain;
use jobstream_core::envelope::{
    DEAD_CONTEXT, Envelope, MAX_ENTRY_FIELDS, entry_id_ms, field, fields_to_msgpack, truncate_error,
};
use jobstream_core::groups::GroupStart;
use jobstream_core::rate::Throttled;
use jobstream_core::store_lifecycle::StartOutcome;
use jobstream_core::{QueueStore, Redis, StreamEntry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::events::{Event, Events};
use crate::handler::{JobContext, Registry};
use crate::holds::Holds;
use crate::inflight::{Inflight, LaneId};
use crate::job_error::JobError;
use crate::outcome::{DeadReason, Disposition, disposition};
use crate::slots::Permit;
use crate::tracking::{Cancels, LaneCtx, Live, Tracking};

/// What the acker must write for one entry.
#[derive(Debug)]
pub(crate) enum Action {
    Ack,
    Discard,
    /// Past its start deadline, discarded (counted as `expired`).
    Expire,
    Retry {
        due_ms: u64,
        member: Vec<u8>,
    },
    Dead {
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Cancelled: dropped without running (again), counted as `cancelled`.
    Cancel,
    /// Not this worker's any more (found at start): nothing to write.
    Forget,
}

#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) lane: LaneId,
    pub(crate) entry_id: String,
    pub(crate) action: Action,
    /// For a job with a record or a uniqueness key: settled by
    /// `settle-14`, one call, instead of the batched plain scripts.
    pub(crate) tracked: Option<Box<Settling>>,
}

/// What `settle-14` writes besides the move.
#[derive(Debug)]
pub(crate) struct Settling {
    pub(crate) tracking: Tracking,
    /// The handler's result (MessagePack), or empty.
    pub(crate) result: Vec<u8>,
    /// The failure's class and message, or empty.
    pub(crate) error_class: String,
    pub(crate) error: String,
    /// A completed chain step: the entry fields of the step after it.
    pub(crate) next_step: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// The entry of the step after a completed chain step: the first of
/// `steps` (the producer gave it its id), with the finished step's
/// `result` as `prev_result` and the steps after it as `chain`.
fn next_step(
    mut steps: Vec<Vec<(Vec<u8>, Vec<u8>)>>,
    result: &[u8],
) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if steps.is_empty() {
        return None;
    }
    let rest = steps.split_off(1);
    let mut next = steps.pop()?;
    next.retain(|(k, _)| k != field::CHAIN.as_bytes() && k != field::PREV_RESULT.as_bytes());
    if !result.is_empty() {
        next.push((field::PREV_RESULT.into(), result.to_vec()));
    }
    if !rest.is_empty() {
        next.push((field::CHAIN.into(), encode_chain(&rest)));
    }
    Some(next)
}

/// Everything a job task needs, shared by all of them.
pub(crate) struct Dispatcher {
    pub(crate) registry: Registry,
    /// The queue name of each lane.
    pub(crate) queues: Vec<Arc<str>>,
    pub(crate) consumer: Arc<str>,
    pub(crate) outcomes: mpsc::Sender<Outcome>,
    pub(crate) inflight: Inflight,
    /// Every job task: shutdown waits on it for running handlers.
    pub(crate) tasks: TaskTracker,
    /// Where what happens to jobs is reported (the log, later metrics).
    pub(crate) events: Events,
    /// For the server's clock: due times and failure times never come from
    /// this host's clock.
    pub(crate) redis: Redis,
    /// One store per lane (for the lifecycle scripts of tracked jobs).
    pub(crate) stores: Vec<QueueStore>,
    /// What a job's context reaches of its lane (lease, progress).
    pub(crate) lanes: Vec<Arc<LaneCtx>>,
    /// Cancellation tokens of running jobs with a record.
    pub(crate) cancels: Cancels,
    /// Each lane's rate limits per job type and per rate key.
    pub(crate) limits: Vec<LaneLimits>,
    /// Held keys of each lane (upstream 429s), as last read.
    pub(crate) holds: Holds,
}

/// A lane's rate limits checked per job (`throttle-6`).
#[derive(Debug, Default)]
pub(crate) struct LaneLimits {
    /// Per job type.
    pub(crate) types: std::collections::HashMap<String, jobstream_core::RateLimit>,
    /// Per rate key.
    pub(crate) key: Option<jobstream_core::RateLimit>,
}

impl Dispatcher {
    /// Starts `entry` on its own task; `permit` is a concurrency slot held
    /// until the outcome is handed over.
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        lane: LaneId,
        entry: StreamEntry,
        deliveries: u64,
        permit: Permit,
    ) {
        let this = Arc::clone(self);
        let id = entry.id.clone();
        self.inflight.insert(lane, &id);
        let task = self.tasks.spawn(async move {
            let outcome = this.run(lane, entry, deliveries).await;
            // A closed channel means the worker is shutting down hard; the
            // job stays pending and comes back after the visibility timeout.
            let _ = this.outcomes.send(outcome).await;
            drop(permit);
        });
        self.inflight.set_task(lane, &id, task.abort_handle());
    }

    async fn run(&self, lane: LaneId, entry: StreamEntry, deliveries: u64) -> Outcome {
        let queue = &self.queues[lane];
        let entry_id = entry.id;
        let envelope = match Envelope::decode(entry.fields) {
            Ok(env) => env,
            Err((bad, raw)) => {
                self.events.emit(Event::Malformed {
                    queue,
                    entry_id: &entry_id,
                    detail: &bad.to_string(),
                });
                // It may hold a group's place, a uniqueness key, a record or
                // a batch's count (the enqueue scripts do not decode):
                // settle-14 frees them, or they would wait for good behind
                // a job that never runs.
                let tracked = Tracking::of_malformed(&raw, &entry_id);
                let (reason, class) = if bad.unsupported_version {
                    (DeadReason::UnsupportedVersion, "unsupported_version")
                } else {
                    (DeadReason::Malformed, "malformed")
                };
                let failure = (reason, class, bad.detail.as_str());
                let mut outcome = self
                    .dead(lane, queue, entry_id, raw, failure, deliveries)
                    .await;
                outcome.tracked = tracked.map(|tracking| {
                    Box::new(Settling {
                        tracking,
                        result: Vec::new(),
                        error_class: class.to_owned(),
                        error: bad.detail.clone(),
                        next_step: None,
                    })
                });
                return outcome;
            }
        };
        let tracking = Tracking::of(&envelope, &entry_id);
        // A job of a group runs only once admitted: otherwise it has been
        // moved behind its group, and this entry is done. Before the rate
        // limits, so a job that waits for its turn takes no token.
        if let Some(t) = &tracking
            && !self.admitted(lane, &entry_id, t).await
        {
            return self.outcome(lane, entry_id, Action::Forget);
        }
        if self.throttled(lane, &entry_id, &envelope).await {
            return self.outcome(lane, entry_id, Action::Forget);
        }
        let Some(tracking) = tracking else {
            return self
                .run_decoded(lane, entry_id, envelope, deliveries, None)
                .await
                .0;
        };
        let token = (tracking.record_ms > 0).then(|| self.cancels.insert(lane, &tracking.job_id));
        let chain = envelope.chain_rest();
        let (mut outcome, failure, result) = self
            .run_decoded(
                lane,
                entry_id,
                envelope,
                deliveries,
                Some((&tracking, token)),
            )
            .await;
        self.cancels.remove(lane, &tracking.job_id);
        let next_step = match (&outcome.action, chain) {
            (Action::Ack, Some(steps)) => next_step(steps, &result),
            _ => None,
        };
        let (error_class, error) = failure.unwrap_or_default();
        outcome.tracked = Some(Box::new(Settling {
            tracking,
            result,
            error_class,
            error,
            next_step,
        }));
        outcome
    }

    /// Runs a decoded job: deadline, route, start (tracked jobs), handler.
    /// Returns the outcome, the failure (class, message) if there was one,
    /// and the handler's result (tracked jobs with a record).
    async fn run_decoded(
        &self,
        lane: LaneId,
        entry_id: String,
        envelope: Envelope,
        deliveries: u64,
        tracking: Option<(&Tracking, Option<CancellationToken>)>,
    ) -> (Outcome, Option<(String, String)>, Vec<u8>) {
        let queue = &self.queues[lane];
        let failed = |outcome: Outcome, class: &str, msg: &str| {
            (
                outcome,
                Some((class.to_owned(), msg.to_owned())),
                Vec::new(),
            )
        };
        // Tracked jobs start first: a job cancelled before it ran ends as
        // cancelled, whatever else would stop it (deadline, unknown type).
        let live = match tracking {
            None => None,
            Some((tracking, token)) => {
                match self.start(lane, &entry_id, &envelope, tracking).await {
                    StartOutcome::Started => {}
                    StartOutcome::Lost => {
                        return (
                            self.outcome(lane, entry_id, Action::Forget),
                            None,
                            Vec::new(),
                        );
                    }
                    StartOutcome::Cancelled => {
                        return (
                            self.outcome(lane, entry_id, Action::Cancel),
                            None,
                            Vec::new(),
                        );
                    }
                }
                Some(Arc::new(Live {
                    job_id: tracking.job_id.clone(),
                    keep_result: tracking.record_ms > 0 || tracking.chained,
                    cancel: token.unwrap_or_default(),
                    result: Default::default(),
                }))
            }
        };
        if let Some(deadline) = envelope.deadline_ms {
            let now = self.server_now().await;
            if now > deadline {
                let msg = format!(
                    "not started by its deadline ({deadline}, unix ms); {} ms late",
                    now - deadline
                );
                let outcome = self
                    .expire(
                        lane, queue, entry_id, envelope, deadline, now, deliveries, &msg,
                    )
                    .await;
                return failed(outcome, "expired", &msg);
            }
        }
        let Some(route) = self.registry.get(&envelope.job_type) else {
            self.events.emit(Event::UnknownType {
                queue,
                entry_id: &entry_id,
                job_type: &envelope.job_type,
            });
            let msg = format!(
                "no handler for job type {:?} on this worker",
                envelope.job_type
            );
            let failure = (DeadReason::UnknownType, "unknown_type", msg.as_str());
            let outcome = self
                .dead(
                    lane,
                    queue,
                    entry_id,
                    envelope.into_fields(),
                    failure,
                    deliveries,
                )
                .await;
            return failed(outcome, "unknown_type", &msg);
        };
        if self.events.wants_pickup()
            && let Some(ready_at) = entry_id_ms(&entry_id)
        {
            let waited = self.server_now().await.saturating_sub(ready_at);
            self.events.emit(Event::Started {
                queue,
                job_type: &envelope.job_type,
                waited: Duration::from_millis(waited),
            });
        }
        let timeout = envelope
            .timeout_ms
            .map_or(route.options.timeout, Duration::from_millis);
        let max_attempts = envelope
            .max_attempts
            .unwrap_or(route.options.retry.max_attempts);
        let envelope = Arc::new(envelope);
        let ctx = JobContext {
            envelope: Arc::clone(&envelope),
            entry_id: Arc::from(entry_id.as_str()),
            queue: Arc::clone(queue),
            deliveries,
            max_attempts,
            state: (),
            live: live.clone(),
            lane: self.lanes.get(lane).cloned(),
        };
        let started = std::time::Instant::now();
        // Every line a handler logs carries the job: queue, type, id and
        // attempt (never the payload), and the trace id its producer sent;
        // the span continues that trace (see trace.rs).
        let span = tracing::info_span!(
            "job",
            queue = %queue,
            job_type = %envelope.job_type,
            job_id = %envelope.job_id(&entry_id),
            attempt = envelope.attempt,
            trace_id = tracing::field::Empty,
            outcome = tracing::field::Empty,
            "otel.status_code" = tracing::field::Empty,
        );
        crate::trace::continue_trace(&span, &envelope);
        let fut = AssertUnwindSafe(
            crate::middleware::run(&self.registry.middleware, route.handler.as_ref(), ctx)
                .instrument(span.clone()),
        )
        .catch_unwind();
        let result = match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => Err(JobError::panic(panic_message(&panic))),
            Err(_) => Err(JobError::timeout(timeout)),
        };
        let mut d = disposition(
            &result,
            envelope.attempt,
            envelope.max_attempts,
            &route.options.retry,
            rand::random::<f64>(),
        );
        // An upstream 429: hold the key fleet-wide and defer the job to
        // the hold's end, no attempt spent (`hold-4`). A tracked job (its
        // record must stay right) waits for the hold as a retry; so does
        // any job when the hold cannot be set.
        let mut deferred = false;
        if let Disposition::Hold { retry_after } = d {
            let wait = match self
                .hold(lane, &entry_id, &envelope, retry_after, live.is_none())
                .await
            {
                Some(_) if live.is_none() => {
                    deferred = true;
                    None
                }
                Some(until) => Some(Duration::from_millis(
                    until.saturating_sub(self.server_now().await),
                )),
                None => Some(retry_after),
            };
            if let Some(wait) = wait {
                d = disposition(
                    &Err(JobError::retry_after(wait, "")),
                    envelope.attempt,
                    envelope.max_attempts,
                    &route.options.retry,
                    0.0,
                );
            }
        }
        // The outcome goes on the job's span (a failed attempt is an error
        // in the trace), and its log line is written inside the span, so
        // it carries the job's fields and trace id too.
        if !span.is_disabled() {
            span.record("outcome", crate::metrics::outcome_name(&d));
            if result.is_err() {
                span.record("otel.status_code", "ERROR");
            }
        }
        span.in_scope(|| {
            self.events.emit(Event::Finished {
                queue,
                job_type: &envelope.job_type,
                job_id: envelope.job_id(&entry_id),
                attempt: envelope.attempt,
                elapsed: started.elapsed(),
                error: result.as_ref().err().map(|e| (e.class(), e.message())),
                outcome: &d,
            })
        });
        let failure = result
            .as_ref()
            .err()
            .map(|e| (e.class().to_owned(), e.message().to_owned()));
        let (class, msg) = failure
            .as_ref()
            .map_or(("error", ""), |(c, m)| (c.as_str(), m.as_str()));
        let action = match d {
            _ if deferred => Action::Forget,
            Disposition::Ack => Action::Ack,
            Disposition::Discard => Action::Discard,
            Disposition::Cancel => Action::Cancel,
            Disposition::Retry { delay } | Disposition::Hold { retry_after: delay } => {
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                Action::Retry {
                    due_ms: self.server_now().await.saturating_add(delay_ms),
                    member: fields_to_msgpack(&envelope.next_attempt(&entry_id, class, msg)),
                }
            }
            Disposition::Dead { reason } => {
                // The handler's task is done with the envelope: take the
                // fields without a copy when no one else holds it.
                let fields = Arc::try_unwrap(envelope)
                    .map_or_else(|shared| shared.fields().to_vec(), Envelope::into_fields);
                let fields = self
                    .dead_fields(queue, fields, &entry_id, reason, class, msg, deliveries)
                    .await;
                Action::Dead { fields }
            }
        };
        let result = live.map(|l| l.take_result()).unwrap_or_default();
        (self.outcome(lane, entry_id, action), failure, result)
    }

    /// Checks a job against its type's and key's rate limits and its
    /// key's hold, for jobs one of them applies to (the others cost
    /// nothing): true when `throttle-6` deferred it (or found it no longer
    /// this worker's), so it must not run. When the check fails (Redis
    /// away), the job runs: the limits are best effort then.
    async fn throttled(&self, lane: LaneId, entry_id: &str, envelope: &Envelope) -> bool {
        let Some(limits) = self.limits.get(lane) else {
            return false;
        };
        let type_limit = if limits.types.is_empty() {
            None
        } else {
            limits.types.get(&envelope.job_type)
        };
        let rate_key = envelope.rate_key.as_deref();
        let key_limit = limits.key.as_ref().filter(|_| rate_key.is_some());
        let held = self.holds.any(lane) && {
            let field = jobstream_core::rate::hold_field(rate_key, &envelope.job_type);
            self.holds.held(lane, &field, self.server_now().await)
        };
        if type_limit.is_none() && key_limit.is_none() && !held {
            return false;
        }
        let queue = &self.queues[lane];
        let member = fields_to_msgpack(&envelope.deferred(entry_id));
        let job = jobstream_core::rate::ThrottleJob {
            consumer: &self.consumer,
            entry_id,
            job_id: envelope.job_id(entry_id),
            member: &member,
            job_type: &envelope.job_type,
            rate_key,
            // The script is called anyway: it also catches a hold set
            // since the last poll (one HGET).
            check_hold: true,
            type_limit,
            key_limit,
            spread: rand::random::<u32>() % 1_000_000,
        };
        match self.stores[lane].throttle(&job).await {
            Ok(Throttled::Run) => false,
            Ok(Throttled::Deferred { due_ms, held }) => {
                self.events.emit(Event::Throttled {
                    queue,
                    job_type: &envelope.job_type,
                    job_id: envelope.job_id(entry_id),
                    due_ms,
                    held,
                });
                true
            }
            Ok(_) => {
                tracing::info!(queue = %queue, entry_id, "job is no longer this worker's (lease lost); not starting it");
                true
            }
            Err(e) => {
                if let Some(suppressed) =
                    jobstream_core::throttle::warnings().allow("processor.throttle")
                {
                    tracing::warn!(suppressed, queue = %queue, error = %e, "cannot check the rate limits of a job (throttle-6); running it unchecked");
                }
                false
            }
        }
    }

    /// `hold-4`: holds the job's key fleet-wide for `retry_after` and, when
    /// `defer`, moves the job to `scheduled` for the hold's end. Returns the
    /// hold's end (unix ms, server clock), or None when it could not be set.
    async fn hold(
        &self,
        lane: LaneId,
        entry_id: &str,
        envelope: &Envelope,
        retry_after: Duration,
        defer: bool,
    ) -> Option<u64> {
        let field =
            jobstream_core::rate::hold_field(envelope.rate_key.as_deref(), &envelope.job_type);
        let member = if defer {
            fields_to_msgpack(&envelope.deferred(entry_id))
        } else {
            Vec::new()
        };
        let r = self.stores[lane]
            .hold(
                &self.consumer,
                if defer { entry_id } else { "" },
                &member,
                &field,
                retry_after,
                rand::random::<u32>() % 1_000_000,
            )
            .await;
        match r {
            Ok((_, until)) => {
                self.holds.note(lane, field, until);
                Some(until)
            }
            Err(e) => {
                tracing::warn!(queue = %self.queues[lane], error = %e, "cannot hold the job's key (hold-4); retrying the job after its retry_after instead");
                None
            }
        }
    }

    fn outcome(&self, lane: LaneId, entry_id: String, action: Action) -> Outcome {
        Outcome {
            lane,
            entry_id,
            action,
            tracked: None,
        }
    }

    /// `start-3` for a tracked job that needs it (a record to mark
    /// active, a `queued` key to release).
    async fn start(
        &self,
        lane: LaneId,
        entry_id: &str,
        envelope: &Envelope,
        tracking: &Tracking,
    ) -> StartOutcome {
        if !tracking.starts() {
            return StartOutcome::Started;
        }
        let now = self.server_now().await;
        let r = self.stores[lane]
            .start_tracked(
                &self.consumer,
                entry_id,
                &tracking.job_id,
                now,
                envelope.attempt,
                tracking.record_ms > 0,
                tracking.release_at_start.as_deref(),
            )
            .await;
        match r {
            Ok(s) => s,
            Err(e) => {
                // Not run unchecked: a cancelled job must not run. It stays
                // pending here and comes back after the visibility timeout.
                tracing::warn!(job_id = %tracking.job_id, error = %e, "could not start the job (start-3); it stays pending and is retried after the visibility timeout");
                StartOutcome::Lost
            }
        }
    }

    /// `group-start-6` for a job of a group: true when it may run now
    /// (admitted); false when it was moved behind its group, or its lease
    /// is lost, or the call failed (then it stays pending and comes back
    /// after the visibility timeout).
    async fn admitted(&self, lane: LaneId, entry_id: &str, tracking: &Tracking) -> bool {
        let Some(group) = tracking.group.as_deref() else {
            return true;
        };
        let r = self.stores[lane]
            .start_grouped(&self.consumer, entry_id, group, &tracking.job_id)
            .await;
        match r {
            Ok(GroupStart::Run) => true,
            Ok(GroupStart::Waiting) => {
                self.events.emit(Event::GroupWaiting {
                    queue: &self.queues[lane],
                });
                false
            }
            Ok(_) => false,
            Err(e) => {
                tracing::warn!(job_id = %tracking.job_id, error = %e, "could not admit the job in its group (group-start-6); it stays pending and is retried after the visibility timeout");
                false
            }
        }
    }

    /// A job past its start deadline is not run: it is discarded
    /// (counted as `expired`) or dead-lettered with reason `expired`, as
    /// its `on_deadline` field says.
    #[allow(clippy::too_many_arguments)]
    async fn expire(
        &self,
        lane: LaneId,
        queue: &str,
        entry_id: String,
        envelope: Envelope,
        deadline: u64,
        now: u64,
        deliveries: u64,
        msg: &str,
    ) -> Outcome {
        self.events.emit(Event::Expired {
            queue,
            job_type: &envelope.job_type,
            job_id: envelope.job_id(&entry_id),
            late_ms: now - deadline,
            discarded: envelope.discard_after_deadline,
        });
        if envelope.discard_after_deadline {
            return self.outcome(lane, entry_id, Action::Expire);
        }
        let failure = (DeadReason::Expired, "expired", msg);
        self.dead(
            lane,
            queue,
            entry_id,
            envelope.into_fields(),
            failure,
            deliveries,
        )
        .await
    }

    /// The outcome of a job that goes to dead before any handler ran
    /// (malformed, unknown type, expired): `failure` is its reason, error
    /// class and message.
    async fn dead(
        &self,
        lane: LaneId,
        queue: &str,
        entry_id: String,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        (reason, class, message): (DeadReason, &str, &str),
        deliveries: u64,
    ) -> Outcome {
        let fields = self
            .dead_fields(queue, fields, &entry_id, reason, class, message, deliveries)
            .await;
        self.outcome(lane, entry_id, Action::Dead { fields })
    }

    async fn server_now(&self) -> u64 {
        // Read at start-up, then extended with the monotonic clock: this
        // fails only if the clock was never read, and then the local
        // clock is the best there is.
        self.redis
            .server_now_ms()
            .await
            .unwrap_or_else(|_| jobstream_core::now_ms())
    }

    /// The fields of a dead entry: the job's own fields exactly as they
    /// were read, its id and first enqueue time made explicit, then the
    /// failure context. A job too wide for a script to write field by
    /// field, or one that carries a failure-context name itself, is packed
    /// whole into `raw` (a MessagePack map, order and duplicates kept), so
    /// nothing of it is lost and context and job never mix.
    #[allow(clippy::too_many_arguments)]
    async fn dead_fields(
        &self,
        queue: &str,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        entry_id: &str,
        reason: DeadReason,
        class: &str,
        message: &str,
        deliveries: u64,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let pack = fields.len() > MAX_ENTRY_FIELDS
            || fields
                .iter()
                .any(|(k, _)| DEAD_CONTEXT.iter().any(|c| k == c.as_bytes()));
        let mut fields = if pack {
            // The job's own id and enqueue time stay findable beside `raw`
            // (`dlq --id`), as reclaim-3 writes them; else the entry's.
            let own = |name: &str| fields.iter().find(|(k, _)| k == name.as_bytes()).cloned();
            let mut packed = vec![(field::RAW.into(), fields_to_msgpack(&fields))];
            packed.extend(own(field::ID));
            packed.extend(own(field::ENQUEUED_AT));
            packed
        } else {
            fields
        };
        ensure_identity(&mut fields, entry_id);
        let failed_at = self.server_now().await;
        for (k, v) in [
            (field::REASON, reason.as_str().to_owned()),
            (field::ERROR_CLASS, class.to_owned()),
            (field::ERROR, truncate_error(message)),
            (field::DELIVERIES, deliveries.to_string()),
            (field::FAILED_AT, failed_at.to_string()),
            (field::WORKER, self.consumer.to_string()),
            (field::QUEUE, queue.to_owned()),
        ] {
            fields.push((k.into(), v.into()));
        }
        fields
    }
}

/// Writes `id` and `enqueued_at` when the entry relied on its entry id for them.
fn ensure_identity(fields: &mut Vec<(Vec<u8>, Vec<u8>)>, entry_id: &str) {
    let has = |fields: &Vec<(Vec<u8>, Vec<u8>)>, name: &str| {
        fields.iter().any(|(k, _)| k == name.as_bytes())
    };
    if !has(fields, field::ID) {
        fields.push((field::ID.into(), entry_id.into()));
    }
    if !has(fields, field::ENQUEUED_AT)
        && let Some(ms) = entry_id_ms(entry_id)
    {
        fields.push((field::ENQUEUED_AT.into(), ms.to_string().into()));
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        truncate_error(s)
    } else if let Some(s) = panic.downcast_ref::<String>() {
        truncate_error(s)
    } else {
        "non-string panic payload".to_owned()
    }
}
