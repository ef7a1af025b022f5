//! Prometheus metrics of one worker (docs/metrics.md): an event sink that
//! counts outcomes and times jobs, and queue gauges read from Redis when
//! `/metrics` is scraped. Only built when the worker serves HTTP
//! (`WorkerBuilder::serve_http`): a worker without it pays nothing.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::events::{Event, EventSink};
use crate::outcome::Disposition;

/// Labels of a job outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    queue: String,
    job_type: String,
    outcome: &'static str,
}

/// Labels of a job timing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    queue: String,
    job_type: String,
}

/// Labels of a queue gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct QueueLabels {
    pub(crate) queue: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric a worker exports, and the registry that encodes them.
pub(crate) struct Metrics {
    pub(crate) registry: Registry,
    outcomes: Family<OutcomeLabels, Counter>,
    duration: Family<TypeLabels, Histogram>,
    pickup: Family<TypeLabels, Histogram>,
    pub(crate) depth: Family<QueueLabels, Gauge>,
    pub(crate) in_flight: Family<QueueLabels, Gauge>,
    pub(crate) scheduled: Family<QueueLabels, Gauge>,
    pub(crate) dead: Family<QueueLabels, Gauge>,
    pub(crate) oldest_age: Family<QueueLabels, FloatGauge>,
    pub(crate) paused: Family<QueueLabels, Gauge>,
    rate_limited: Family<QueueLabels, Counter>,
    group_parked: Family<QueueLabels, Counter>,
    throttled: Family<TypeLabels, Counter>,
    pub(crate) rejected: Family<QueueLabels, Gauge>,
    pub(crate) shed: Family<QueueLabels, Gauge>,
    pub(crate) groups: Family<QueueLabels, Gauge>,
    pub(crate) group_waiting: Family<QueueLabels, Gauge>,
    pub(crate) busy: Gauge,
    pub(crate) saturation: FloatGauge,
}

/// Durations from 1 ms to about 4.5 hours, a bucket per doubling.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 24))
}

impl Metrics {
    /// The metrics of a worker with `concurrency` slots; `None` for the
    /// standalone exporter, which has no slots to report.
    pub(crate) fn new(concurrency: Option<usize>) -> Arc<Self> {
        let mut registry = Registry::with_prefix("jobstream");
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let duration = Family::<TypeLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        let pickup = Family::<TypeLabels, Histogram>::new_with_constructor(
            seconds_histogram as fn() -> Histogram,
        );
        registry.register(
            "jobs",
            "Attempts by outcome: ok, retry, dead, discard, cancelled, expired, abandoned, lease_lost, held",
            outcomes.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Handler run time of an attempt, by queue and job type",
            duration.clone(),
        );
        registry.register(
            "job_pickup_seconds",
            "Time from a job's enqueue (or due time) to its handler's start",
            pickup.clone(),
        );
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<QueueLabels, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let depth = gauge(
            &mut registry,
            "queue_ready",
            "Jobs in the ready stream not yet delivered to a worker",
        );
        let in_flight = gauge(
            &mut registry,
            "queue_in_flight",
            "Jobs delivered to a worker and not yet settled",
        );
        let scheduled = gauge(
            &mut registry,
            "queue_scheduled",
            "Jobs waiting for their due time or their next attempt",
        );
        let dead = gauge(
            &mut registry,
            "queue_dead",
            "Jobs in the dead-letter stream",
        );
        let oldest_age = Family::<QueueLabels, FloatGauge>::default();
        registry.register(
            "queue_oldest_ready_age_seconds",
            "Age of the oldest job in the ready stream not yet delivered",
            oldest_age.clone(),
        );
        let paused = gauge(
            &mut registry,
            "queue_paused",
            "1 while the queue is paused (jobstream queue pause): no worker fetches its jobs",
        );
        let group_parked = Family::<QueueLabels, Counter>::default();
        registry.register(
            "group_parked",
            "Fetched jobs of a full group that this worker moved behind their group (delayed, replayed or hand-made jobs that skipped the enqueue gate)",
            group_parked.clone(),
        );
        let rate_limited = Family::<QueueLabels, Counter>::default();
        registry.register(
            "rate_limited_fetches",
            "Fetches this worker held back because the queue's rate limit had no token due",
            rate_limited.clone(),
        );
        let throttled = Family::<TypeLabels, Counter>::default();
        registry.register(
            "jobs_throttled",
            "Jobs this worker read and deferred unstarted (no attempt spent): a rate limit of their type or key had no token, or their key was held after an upstream 429",
            throttled.clone(),
        );
        // Counts kept in Redis, read at scrape: gauges (the value is set
        // from the stats hash, not counted here), named without `_total`.
        let rejected = gauge(
            &mut registry,
            "queue_rejected",
            "Jobs refused by the queue's backpressure limits (reject, or wait after waiting), since the queue began",
        );
        let shed = gauge(
            &mut registry,
            "queue_shed",
            "Jobs shed by the queue's backpressure limits (policy shed), since the queue began",
        );
        let groups = gauge(
            &mut registry,
            "queue_groups",
            "Groups with jobs admitted (ready, running or waiting for a retry)",
        );
        let group_waiting = gauge(
            &mut registry,
            "queue_group_waiting",
            "Jobs waiting behind their group for their turn (not yet in ready)",
        );
        let busy = Gauge::default();
        let conc: Gauge = Gauge::default();
        let saturation = FloatGauge::default();
        if let Some(concurrency) = concurrency {
            registry.register(
                "worker_busy_slots",
                "Jobs this worker holds (fetched or running)",
                busy.clone(),
            );
            registry.register(
                "worker_concurrency",
                "This worker's concurrency (its slots)",
                conc.clone(),
            );
            registry.register(
                "worker_saturation",
                "Busy slots over concurrency, 0 to 1",
                saturation.clone(),
            );
            conc.set(concurrency as i64);
        }
        Arc::new(Self {
            registry,
            outcomes,
            duration,
            pickup,
            depth,
            in_flight,
            scheduled,
            dead,
            oldest_age,
            paused,
            rate_limited,
            group_parked,
            throttled,
            rejected,
            shed,
            groups,
            group_waiting,
            busy,
            saturation,
        })
    }

    fn outcome(&self, queue: &str, job_type: &str, outcome: &'static str, n: u64) {
        self.outcomes
            .get_or_create(&OutcomeLabels {
                queue: queue.to_owned(),
                job_type: job_type.to_owned(),
                outcome,
            })
            .inc_by(n);
    }
}

/// The label value of a disposition.
pub(crate) fn outcome_name(d: &Disposition) -> &'static str {
    match d {
        Disposition::Ack => "ok",
        Disposition::Retry { .. } => "retry",
        Disposition::Dead { .. } => "dead",
        Disposition::Discard => "discard",
        Disposition::Cancel => "cancelled",
        Disposition::Hold { .. } => "held",
    }
}

impl EventSink for Metrics {
    fn emit(&self, event: &Event<'_>) {
        match *event {
            Event::Finished {
                queue,
                job_type,
                elapsed,
                outcome,
                ..
            } => {
                self.outcome(queue, job_type, outcome_name(outcome), 1);
                self.duration
                    .get_or_create(&TypeLabels {
                        queue: queue.to_owned(),
                        job_type: job_type.to_owned(),
                    })
                    .observe(elapsed.as_secs_f64());
            }
            Event::Started {
                queue,
                job_type,
                waited,
            } => self
                .pickup
                .get_or_create(&TypeLabels {
                    queue: queue.to_owned(),
                    job_type: job_type.to_owned(),
                })
                .observe(waited.as_secs_f64()),
            Event::Malformed { queue, .. } => self.outcome(queue, "", "dead", 1),
            Event::UnknownType {
                queue, job_type, ..
            } => self.outcome(queue, job_type, "dead", 1),
            Event::Expired {
                queue, job_type, ..
            } => self.outcome(queue, job_type, "expired", 1),
            Event::Abandoned { queue, count } => self.outcome(queue, "", "abandoned", count),
            Event::LeaseLost { queue, count } => self.outcome(queue, "", "lease_lost", count),
            Event::GroupWaiting { queue } => {
                self.group_parked
                    .get_or_create(&QueueLabels {
                        queue: queue.to_owned(),
                    })
                    .inc();
            }
            Event::Throttled {
                queue, job_type, ..
            } => {
                self.throttled
                    .get_or_create(&TypeLabels {
                        queue: queue.to_owned(),
                        job_type: job_type.to_owned(),
                    })
                    .inc();
            }
            Event::RateLimited { queue } => {
                self.rate_limited
                    .get_or_create(&QueueLabels {
                        queue: queue.to_owned(),
                    })
                    .inc();
            }
        }
    }
}

/// The text exposition of `metrics` (OpenMetrics).
pub(crate) fn encode(metrics: &Metrics) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics.registry);
    out
}
