//! What happens to jobs, as events: one place where the runtime reports
//! them, and sinks that consume them. Today the one sink writes the log;
//! metrics and dashboards subscribe here later, so every consumer sees the
//! same facts, and none of them sits in the job path's code.
//!
//! Events carry names, ids, classes and timings, never payloads or error
//! details beyond the (truncated) message a handler returned.

use std::sync::Arc;
use std::time::Duration;

use jobstream_core::envelope::truncate_error;

use crate::outcome::Disposition;

/// One thing that happened to a job.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// A handler finished an attempt (or failed, timed out, panicked).
    Finished {
        queue: &'a str,
        job_type: &'a str,
        job_id: &'a str,
        attempt: u32,
        elapsed: Duration,
        /// The error's class and message, when the attempt failed.
        error: Option<(&'a str, &'a str)>,
        outcome: &'a Disposition,
    },
    /// An entry that does not decode went to dead.
    Malformed {
        queue: &'a str,
        entry_id: &'a str,
        detail: &'a str,
    },
    /// No handler serves the job's type; it went to dead.
    UnknownType {
        queue: &'a str,
        entry_id: &'a str,
        job_type: &'a str,
    },
    /// Not started by its deadline: discarded, or sent to dead.
    Expired {
        queue: &'a str,
        job_type: &'a str,
        job_id: &'a str,
        late_ms: u64,
        discarded: bool,
    },
    /// A handler is about to start: `waited` since the job's entry was
    /// added to ready (enqueued, promoted or retried). Emitted only when a
    /// sink wants it ([`Events::wants_pickup`]).
    Started {
        queue: &'a str,
        job_type: &'a str,
        waited: Duration,
    },
    /// Jobs the reclaimer moved to dead, delivered too often.
    Abandoned { queue: &'a str, count: u64 },
    /// Outcomes dropped because the job was no longer this worker's.
    LeaseLost { queue: &'a str, count: u64 },
    /// A fetch held back by the queue's rate limit (no token due).
    RateLimited { queue: &'a str },
    /// A fetched job of a group that was full: moved behind its group.
    GroupWaiting { queue: &'a str },
    /// A job read and deferred unstarted (`throttle-6`): a rate limit of
    /// its type or key had no token (`held` false), or its key is held
    /// (`held` true). No attempt spent.
    Throttled {
        queue: &'a str,
        job_type: &'a str,
        job_id: &'a str,
        due_ms: u64,
        held: bool,
    },
}

/// Consumes events. Called on the job's task, so it must be quick and
/// must not block.
pub(crate) trait EventSink: Send + Sync + 'static {
    fn emit(&self, event: &Event<'_>);
}

/// The sinks of one worker.
#[derive(Clone)]
pub(crate) struct Events {
    sinks: Arc<[Arc<dyn EventSink>]>,
    /// A sink counts pickup times: `Started` is worth computing.
    pickup: bool,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            sinks: Arc::new([Arc::new(LogSink) as Arc<dyn EventSink>]),
            pickup: false,
        }
    }
}

impl Events {
    /// The log and `metrics`.
    pub(crate) fn with_metrics(metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self {
            sinks: Arc::new([
                Arc::new(LogSink) as Arc<dyn EventSink>,
                metrics as Arc<dyn EventSink>,
            ]),
            pickup: true,
        }
    }

    /// Whether `Started` events are wanted (they cost a clock read).
    pub(crate) fn wants_pickup(&self) -> bool {
        self.pickup
    }

    pub(crate) fn emit(&self, event: Event<'_>) {
        for sink in self.sinks.iter() {
            sink.emit(&event);
        }
    }
}

/// Writes events to the log (`tracing`): a failed attempt that will be
/// retried at warn, a job that goes to dead at error (so a warn filter
/// shows both), a job dropped on purpose (discarded, cancelled, expired
/// and discarded) at info, successes at debug. Every line names the queue,
/// the job id, its type and attempt, and the error's class; never a
/// payload.
pub(crate) struct LogSink;

impl EventSink for LogSink {
    fn emit(&self, event: &Event<'_>) {
        match *event {
            Event::Finished {
                queue,
                job_type,
                job_id,
                attempt,
                elapsed,
                error: Some((class, message)),
                outcome,
            } => {
                let error = truncate_error(message);
                let elapsed_ms = elapsed.as_millis() as u64;
                match outcome {
                    Disposition::Dead { reason } => {
                        tracing::error!(queue, job_id, job_type, attempt, error_class = class,
                        error = %error, elapsed_ms, reason = reason.as_str(), "job failed and moved to dead")
                    }
                    Disposition::Hold { retry_after } => {
                        tracing::info!(
                            queue,
                            job_id,
                            job_type,
                            attempt,
                            error_class = class,
                            hold_ms = retry_after.as_millis() as u64,
                            "upstream rate limit: key held fleet-wide; the job waits for the hold (no attempt spent)"
                        )
                    }
                    Disposition::Retry { delay } => {
                        tracing::warn!(queue, job_id, job_type, attempt, error_class = class,
                        error = %error, elapsed_ms, retry_in_ms = delay.as_millis() as u64, "job failed; will retry")
                    }
                    _ => tracing::info!(queue, job_id, job_type, attempt, error_class = class,
                        error = %error, elapsed_ms, outcome = ?outcome, "job ended without success"),
                }
            }
            Event::Finished {
                queue,
                job_type,
                job_id,
                attempt,
                elapsed,
                error: None,
                ..
            } => tracing::debug!(
                queue,
                job_id,
                job_type,
                attempt,
                elapsed_ms = elapsed.as_millis() as u64,
                "job done"
            ),
            Event::Malformed {
                queue,
                entry_id,
                detail,
            } => {
                tracing::error!(queue, entry_id, reason = %detail, "malformed entry moved to dead")
            }
            Event::UnknownType {
                queue,
                entry_id,
                job_type,
            } => tracing::error!(
                queue,
                entry_id,
                job_type,
                "no handler for job type; moved to dead"
            ),
            Event::Expired {
                queue,
                job_type,
                job_id,
                late_ms,
                discarded,
            } if discarded => tracing::info!(
                queue,
                job_type,
                job_id,
                late_ms,
                "job not started by its deadline; discarded"
            ),
            Event::Expired {
                queue,
                job_type,
                job_id,
                late_ms,
                ..
            } => tracing::error!(
                queue,
                job_type,
                job_id,
                late_ms,
                "job not started by its deadline; moved to dead"
            ),
            Event::Throttled {
                queue,
                job_type,
                job_id,
                due_ms,
                held,
            } => tracing::debug!(
                queue,
                job_type,
                job_id,
                due_ms,
                held,
                "job deferred by its rate limit or its key's hold; no attempt spent"
            ),
            // Logged where they happen, with more context.
            Event::Started { .. }
            | Event::Abandoned { .. }
            | Event::LeaseLost { .. }
            | Event::RateLimited { .. }
            | Event::GroupWaiting { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl EventSink for Record {
        fn emit(&self, event: &Event<'_>) {
            if let Ok(mut v) = self.0.lock() {
                v.push(format!("{event:?}"));
            }
        }
    }

    #[test]
    fn every_sink_sees_every_event() {
        let a = Arc::new(Record::default());
        let events = Events {
            sinks: Arc::new([
                Arc::new(LogSink) as Arc<dyn EventSink>,
                a.clone() as Arc<dyn EventSink>,
            ]),
            pickup: false,
        };
        events.emit(Event::UnknownType {
            queue: "q",
            entry_id: "1-0",
            job_type: "nope",
        });
        let seen = a.0.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].contains("nope"));
    }
}
