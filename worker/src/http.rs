//! The worker's opt-in HTTP listener (`WorkerBuilder::serve_http`):
//! `/metrics` (Prometheus), `/livez` and `/readyz` (Kubernetes probes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jobstream_core::{QueueStore, Redis};
use tokio::task::AbortHandle;

use crate::inflight::Inflight;
use crate::metrics::{Metrics, QueueLabels};
use crate::shutdown::Shutdown;

/// The queues whose gauges are served.
pub(crate) enum Queues {
    /// The ones a worker serves.
    Served(Vec<QueueStore>),
    /// Every queue in the registry (`PREFIX:queues`), read at each scrape:
    /// the standalone exporter.
    Known { prefix: String, group: String },
}

/// What the handlers read.
pub(crate) struct HttpState {
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) redis: Redis,
    pub(crate) queues: Queues,
    /// A worker's in-flight jobs and concurrency (none for the exporter).
    pub(crate) slots: Option<(Inflight, usize)>,
    /// The worker's long-running loops (fetchers, acker, lease): alive
    /// while none of them has ended.
    pub(crate) loops: std::sync::Mutex<Vec<AbortHandle>>,
    /// Set when shutdown begins: no longer ready.
    pub(crate) stopping: AtomicBool,
}

/// Binds `addr` now (so a taken port fails the start, not later) and
/// serves until shutdown.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<HttpState>,
    mut shutdown: Shutdown,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(Arc::clone(&state));
    let stop = async move {
        shutdown.wait().await;
        state.stopping.store(true, Ordering::SeqCst);
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "the HTTP listener stopped");
    }
}

async fn metrics(State(s): State<Arc<HttpState>>) -> Response {
    let now = s
        .redis
        .server_now_ms()
        .await
        .unwrap_or_else(|_| jobstream_core::now_ms());
    // Queue gauges are read from Redis at scrape time: the hot path never
    // touches them. A queue that cannot be read keeps its last values.
    for store in &s.stores().await {
        match store.stats(now).await {
            Ok(q) => {
                let l = QueueLabels {
                    queue: q.name.clone(),
                };
                s.metrics.depth.get_or_create(&l).set(q.ready as i64);
                s.metrics
                    .in_flight
                    .get_or_create(&l)
                    .set(q.in_flight as i64);
                s.metrics
                    .scheduled
                    .get_or_create(&l)
                    .set(q.scheduled as i64);
                s.metrics.dead.get_or_create(&l).set(q.dead as i64);
                s.metrics
                    .oldest_age
                    .get_or_create(&l)
                    .set(q.oldest_ready_age_ms as f64 / 1000.0);
                s.metrics.paused.get_or_create(&l).set(i64::from(q.paused));
                s.metrics.rejected.get_or_create(&l).set(q.rejected as i64);
                s.metrics.shed.get_or_create(&l).set(q.shed as i64);
                s.metrics.groups.get_or_create(&l).set(q.groups as i64);
                s.metrics
                    .group_waiting
                    .get_or_create(&l)
                    .set(q.group_waiting as i64);
            }
            Err(e) => tracing::debug!(error = %e, "queue gauges not refreshed"),
        }
    }
    if let Some((inflight, concurrency)) = &s.slots {
        let busy = inflight.len();
        s.metrics.busy.set(busy as i64);
        s.metrics
            .saturation
            .set(busy as f64 / (*concurrency).max(1) as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::encode(&s.metrics),
    )
        .into_response()
}

impl HttpState {
    async fn stores(&self) -> Vec<QueueStore> {
        match &self.queues {
            Queues::Served(stores) => stores.clone(),
            Queues::Known { prefix, group } => {
                let names = jobstream_core::known_queues(&self.redis, prefix)
                    .await
                    .unwrap_or_default();
                names
                    .iter()
                    .filter_map(|n| jobstream_core::QueueName::new(n).ok())
                    .map(|n| {
                        QueueStore::new(
                            self.redis.clone(),
                            jobstream_core::QueueKeys::new(prefix, &n),
                            group.clone(),
                        )
                    })
                    .collect()
            }
        }
    }
}

async fn livez(State(s): State<Arc<HttpState>>) -> Response {
    let dead = s
        .loops
        .lock()
        .map(|l| l.iter().filter(|h| h.is_finished()).count())
        .unwrap_or(0);
    if dead == 0 || s.stopping.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{dead} of the worker's loops have stopped\n"),
        )
            .into_response()
    }
}

async fn readyz(State(s): State<Arc<HttpState>>) -> Response {
    if s.stopping.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    if let Err(e) = s.redis.ping().await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Redis does not answer: {e}\n"),
        )
            .into_response();
    }
    // A worker needs its groups; the exporter only needs Redis (a queue
    // nobody has served yet has no group, and that is fine for it).
    let served = match &s.queues {
        Queues::Served(stores) => stores.as_slice(),
        Queues::Known { .. } => &[],
    };
    for store in served {
        match store.group_exists().await {
            Ok(true) => {}
            Ok(false) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "queue {}: the consumer group is missing\n",
                        store.keys().name()
                    ),
                )
                    .into_response();
            }
            Err(e) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("queue {}: {e}\n", store.keys().name()),
                )
                    .into_response();
            }
        }
    }
    (StatusCode::OK, "ready\n").into_response()
}

/// Serves the queue gauges of every known queue on `addr`, with `/livez`
/// and `/readyz`, until `stop` resolves: `jobstream exporter`, for fleets
/// that scale their workers to zero (someone must still report the
/// backlog). Job counters and timings come from the workers themselves.
pub async fn serve_queue_metrics(
    url: &str,
    prefix: &str,
    group: &str,
    addr: SocketAddr,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), jobstream_core::Error> {
    let timings = jobstream_core::Timings::default();
    let tls = jobstream_core::TlsOptions::from_env();
    let redis = Redis::open_with_tls(url, &timings, &tls)?;
    let listener = bind(addr)
        .await
        .map_err(|e| jobstream_core::Error::Config(format!("cannot listen on {addr}: {e}")))?;
    let state = Arc::new(HttpState {
        metrics: Metrics::new(None),
        redis,
        queues: Queues::Known {
            prefix: prefix.to_owned(),
            group: group.to_owned(),
        },
        slots: None,
        loops: std::sync::Mutex::new(Vec::new()),
        stopping: AtomicBool::new(false),
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| jobstream_core::Error::Config(format!("the listener on {addr} failed: {e}")))
}
