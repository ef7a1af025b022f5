//! jobstream's web dashboard: every queue's depth, rates and dead letters,
//! jobs by state, a job's fields, payload and record, workers and what
//! they run, schedules and limits; with actions (pause, resume, run now,
//! cancel, replay, discard) behind authentication and CSRF checks.
//!
//! Served by `jobstream dashboard`, or mounted in your own axum app:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use jobstream_dashboard::{Dashboard, DashboardOptions};
//!
//! let options = DashboardOptions::default().token(std::env::var("DASHBOARD_TOKEN")?)?;
//! let dashboard = Dashboard::connect("redis://127.0.0.1:6379", "jobstream", options).await?;
//! let app = axum::Router::new().merge(dashboard.router_at("/admin/jobs"));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Every read is bounded (`XRANGE`/`XREVRANGE`/`ZRANGE` with a count, a
//! scan cap on searches) and the overview is computed once per refresh
//! interval however many people watch it. See docs/dashboard.md.

mod access;
mod actions;
mod assets;
mod options;
mod overview;
mod payload;
mod reads;
mod sampler;
mod session;
mod state;
mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use jobstream_producer::inspect::Inspector;
pub use jobstream_producer::{Error, Result};
pub use options::DashboardOptions;

use crate::state::AppState;

/// A dashboard on one Redis and key prefix: build it once, then serve its
/// [`router`](Dashboard::router). It samples every queue's counters in the
/// background (for the rate history) while it lives.
#[derive(Debug, Clone)]
pub struct Dashboard {
    state: Arc<AppState>,
}

impl Dashboard {
    /// Connects to `redis_url` (checking that Redis answers) for keys under
    /// `prefix` (normally `jobstream`).
    ///
    /// # Errors
    ///
    /// Redis unreachable, a wrong password, an invalid URL or prefix.
    pub async fn connect(redis_url: &str, prefix: &str, options: DashboardOptions) -> Result<Self> {
        jobstream_core::keys::check_prefix(prefix)?;
        let inspector = Inspector::connect(redis_url, prefix).await?;
        Ok(Self::new(inspector, options))
    }

    /// A dashboard reading through `inspector`. Call inside a tokio
    /// runtime: it starts the history sampler.
    pub fn new(inspector: Inspector, options: DashboardOptions) -> Self {
        let state = AppState::new(inspector, options);
        sampler::spawn(&state);
        Self { state }
    }

    /// The dashboard's routes under `path` (`/admin/jobs`), to
    /// [`merge`](axum::Router::merge) into your app: the page at
    /// `/admin/jobs/` (`/admin/jobs` redirects there), its API under
    /// `/admin/jobs/api/`. A plain `nest` of [`router`](Self::router)
    /// serves everything but `/admin/jobs/` itself (axum 0.8 does not
    /// route a nested router's `/` with a trailing slash).
    ///
    /// # Panics
    ///
    /// When `path` does not start with `/`, or is `/` (use
    /// [`router`](Self::router)), as axum's own `nest` does.
    pub fn router_at(&self, path: &str) -> Router {
        let path = path.trim_end_matches('/');
        let slash = Router::new()
            .route(&format!("{path}/"), get(assets::index))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&self.state),
                access::guard,
            ))
            .with_state(Arc::clone(&self.state));
        Router::new().nest(path, self.router()).merge(slash)
    }

    /// The dashboard's routes, to serve at the root of a listener (the
    /// page uses relative URLs only). To mount it under a path of your
    /// app, see [`router_at`](Self::router_at).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(assets::index))
            .route("/assets/{file}", get(assets::file))
            .route("/api/config", get(reads::config))
            .route("/api/login", post(actions::login))
            .route("/api/logout", post(actions::logout))
            .route("/api/overview", get(overview::overview))
            .route("/api/workers", get(reads::workers))
            .route("/api/schedules", get(reads::schedules))
            .route("/api/queues/{queue}", get(reads::queue))
            .route("/api/queues/{queue}/jobs", get(reads::jobs))
            .route("/api/queues/{queue}/find", get(reads::find))
            .route("/api/queues/{queue}/job", get(reads::job))
            .route("/api/queues/{queue}/dead", get(reads::dead))
            .route("/api/queues/{queue}/pause", post(actions::pause))
            .route("/api/queues/{queue}/resume", post(actions::resume))
            .route("/api/queues/{queue}/job/run-now", post(actions::run_now))
            .route("/api/queues/{queue}/job/cancel", post(actions::cancel))
            .route(
                "/api/queues/{queue}/dead/replay",
                post(actions::dead_replay),
            )
            .route(
                "/api/queues/{queue}/dead/discard",
                post(actions::dead_discard),
            )
            .fallback(assets::not_found)
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&self.state),
                access::guard,
            ))
            .with_state(Arc::clone(&self.state))
    }
}
