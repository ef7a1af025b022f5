//! What every handler shares: the inspector, the settings, the CSRF token
//! and the caches that keep Redis load independent of the viewer count.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobstream_producer::inspect::{Inspector, QueuedJob};
use rand::Rng;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::options::DashboardOptions;
use crate::session::SessionSecret;
use crate::throttle::AuthThrottle;

/// A value computed at most once per `ttl`, whoever asks: the lock is held
/// while it is computed, so concurrent viewers wait for one computation.
#[derive(Debug, Default)]
pub(crate) struct Cached {
    slot: Mutex<Option<(Instant, Arc<Value>)>>,
}

impl Cached {
    pub(crate) async fn get_or<F, Fut>(
        &self,
        ttl: Duration,
        compute: F,
    ) -> jobstream_producer::Result<Arc<Value>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = jobstream_producer::Result<Value>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((at, v)) = slot.as_ref()
            && at.elapsed() < ttl
        {
            return Ok(Arc::clone(v));
        }
        let v = Arc::new(compute().await?);
        *slot = Some((Instant::now(), Arc::clone(&v)));
        Ok(v)
    }
}

impl Cached {
    /// Forgets the value: after an action, the next read is fresh.
    pub(crate) async fn clear(&self) {
        *self.slot.lock().await = None;
    }
}

/// Where jobs were last seen (queue, id → the job as found, or when a
/// search last missed it), so that a job page refreshing every few
/// seconds checks one entry instead of searching the queue again, and a
/// page left open on a finished job searches at most every
/// [`MISSING_FOR`]. Bounded: cleared when full.
#[derive(Debug, Default)]
pub(crate) struct Locations {
    seen: std::sync::Mutex<HashMap<(String, String), Seen>>,
}

/// What a search found.
#[derive(Debug, Clone)]
pub(crate) enum Seen {
    /// The job, where it was (payload left out).
    At(Box<QueuedJob>),
    /// Not found, then.
    Missing(Instant),
}

/// How long a miss is remembered.
pub(crate) const MISSING_FOR: Duration = Duration::from_secs(30);

/// Jobs remembered at most.
const LOCATIONS: usize = 1024;

impl Locations {
    pub(crate) fn get(&self, queue: &str, id: &str) -> Option<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&(queue.to_owned(), id.to_owned())).cloned()
    }

    pub(crate) fn put(&self, queue: &str, id: &str, job: Option<&QueuedJob>) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= LOCATIONS {
            seen.clear();
        }
        let value = match job {
            Some(job) => {
                // Never the payload: only where the job is.
                let mut job = job.clone();
                job.payload = Vec::new();
                Seen::At(Box::new(job))
            }
            None => Seen::Missing(Instant::now()),
        };
        seen.insert((queue.to_owned(), id.to_owned()), value);
    }
}

/// The dashboard's shared state.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) inspector: Inspector,
    pub(crate) options: DashboardOptions,
    /// A value an action may carry in `X-Jobstream-Csrf` (with
    /// authentication, the one derived from the shared secret is given
    /// out instead; both are accepted).
    pub(crate) csrf: String,
    pub(crate) overview: Cached,
    pub(crate) workers: Cached,
    pub(crate) locations: Locations,
    /// Budgets of wrong credentials per client address.
    pub(crate) throttle: AuthThrottle,
    /// The secret login cookies are signed with (from Redis).
    pub(crate) session_secret: SessionSecret,
    /// Cancelled when the last handle goes: stops the sampler.
    pub(crate) stop: CancellationToken,
    _stop_on_drop: DropGuard,
}

impl AppState {
    pub(crate) fn new(inspector: Inspector, options: DashboardOptions) -> Arc<Self> {
        let stop = CancellationToken::new();
        let mut bytes = [0u8; 16];
        rand::rng().fill(&mut bytes);
        Arc::new(Self {
            inspector,
            options,
            csrf: jobstream_core::hex::encode(&bytes),
            overview: Cached::default(),
            workers: Cached::default(),
            locations: Locations::default(),
            throttle: AuthThrottle::default(),
            session_secret: SessionSecret::default(),
            stop: stop.clone(),
            _stop_on_drop: stop.drop_guard(),
        })
    }

    /// The refresh interval, ms.
    pub(crate) fn refresh_ms(&self) -> u64 {
        self.options.refresh.as_millis() as u64
    }
}
