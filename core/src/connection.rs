//! Connections to Redis, wrapped so that no client type leaks out.
//!
//! Two kinds, as the work needs:
//! - one multiplexed connection (`ConnectionManager`) shared by everything
//!   that does not block: enqueue, scripts, stats. It reconnects on its own.
//! - dedicated connections for blocking reads (`XREADGROUP ... BLOCK`), from a
//!   small deadpool pool whose response timeout is longer than the block
//!   time, so an idle read is not mistaken for a dead server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::Timings;
use crate::error::{Error, RedisFailure, Result};
use crate::tls::TlsOptions;

/// A handle to one Redis server. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    /// Swapped for the new master's after a Sentinel failover.
    shared: std::sync::RwLock<ConnectionManager>,
    blocking: std::sync::RwLock<deadpool_redis::Pool>,
    display_url: String,
    /// With a `redis+sentinel://` URL: how to find the master again.
    failover: Option<Failover>,
    /// The shared connection's response timeout (a `WAIT` must end first).
    response_timeout: Duration,
    /// The name durable enqueue gives the shared connection, random to
    /// this handle (see `durability`).
    connection_token: String,
    clock: std::sync::Mutex<Option<ClockSync>>,
    /// The server has `XACKDEL` (probed; see [`Redis::detect_features`]).
    xackdel: std::sync::atomic::AtomicBool,
}

/// The server's clock as last read with `TIME`, and when (on this host's
/// monotonic clock, which no wall-clock change moves).
#[derive(Debug, Clone, Copy)]
struct ClockSync {
    server_ms: u64,
    at: Instant,
}

/// How long a reading of the server clock is extended with the local
/// monotonic clock before it is read again.
const CLOCK_RESYNC: Duration = Duration::from_secs(60);

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.inner.display_url)
            .finish()
    }
}

/// A dedicated connection for blocking reads. Dropping it returns it to the
/// pool; [`BlockingConn::discard`] throws a broken one away.
pub struct BlockingConn {
    pub(crate) conn: deadpool_redis::Connection,
}

impl std::fmt::Debug for BlockingConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingConn").finish_non_exhaustive()
    }
}

impl BlockingConn {
    /// Throws the connection away instead of returning it to the pool.
    pub fn discard(self) {
        drop(deadpool_redis::Connection::take(self.conn));
    }
}

/// `redis://user:secret@host:6379/0` shown as `redis://host:6379/0`, and a
/// `pass`/`password` query parameter (`redis+unix:///s.sock?pass=…`) left
/// out: URLs are logged and put in error messages, secrets never.
pub fn redact_url(url: &str) -> String {
    // The credentials first, up to the last `@`: a password may hold a `?`
    // (or a `#`) that is not the start of a query.
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    };
    let url = url.as_str();
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &base[..scheme + 3], &base[at + 1..])
        }
        // No `://` but an `@` (a mistyped URL such as `redis:/:pw@host`):
        // whatever comes before the `@` may be a password.
        (_, Some(at)) => format!("***@{}", &base[at + 1..]),
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|p| {
                let key = p.split('=').next().unwrap_or("").to_ascii_lowercase();
                !matches!(key.as_str(), "pass" | "password" | "sentinel_password")
            })
            .collect();
        if !kept.is_empty() {
            out.push('?');
            out.push_str(&kept.join("&"));
        }
    }
    out
}

impl Redis {
    /// Prepares connections to `url` (`redis://host:port/db`, or
    /// `rediss://…` with the `tls` feature, trusting what
    /// [`TlsOptions::from_env`] reads). Nothing is connected yet: the first
    /// command connects, and a server that is down gives
    /// [`RedisFailure::Connection`] errors until it is back.
    pub fn open(url: &str, timings: &Timings) -> Result<Self> {
        Self::open_with_tls(url, timings, &TlsOptions::from_env())
    }

    /// [`Redis::open`] with the TLS options given here instead of read from
    /// the environment. They matter for `rediss://` URLs only; both the
    /// shared connection and the blocking pool use them.
    ///
    /// A `redis+sentinel://host:port,…/MASTER[/DB]` URL (see
    /// [`crate::sentinel`]) asks the sentinels for the master now (this
    /// blocks up to the connect timeout per sentinel, and fails when none
    /// answers), and again whenever the connection fails or the server
    /// turns read-only, and every second: after a failover, the next
    /// commands go to the new master, without a restart.
    pub fn open_with_tls(url: &str, timings: &Timings, tls: &TlsOptions) -> Result<Self> {
        let display_url = redact_url(url);
        let (target, failover) = if crate::sentinel::is_sentinel_url(url) {
            let sentinel = crate::sentinel::SentinelUrl::parse(url)?;
            let master = sentinel.resolve_blocking(timings.connect_timeout)?;
            let target = sentinel.server_url(&master);
            let failover = Failover {
                url: sentinel,
                tls: tls.clone(),
                timings: timings.clone(),
                master: std::sync::Mutex::new(master),
                wake: tokio::sync::Notify::new(),
                watching: std::sync::atomic::AtomicBool::new(false),
                pool_size: std::sync::atomic::AtomicUsize::new(16),
            };
            (target, Some(failover))
        } else {
            (url.to_owned(), None)
        };
        let (shared, blocking) = connect(&target, &display_url, timings, tls, 16)?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared: std::sync::RwLock::new(shared),
                blocking: std::sync::RwLock::new(blocking),
                display_url,
                failover,
                response_timeout: timings.response_timeout,
                connection_token: format!("jobstream-durable-{:016x}", rand::random::<u64>()),
                clock: std::sync::Mutex::new(None),
                xackdel: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

/// How a Sentinel-backed [`Redis`] finds its master again.
struct Failover {
    url: crate::sentinel::SentinelUrl,
    tls: TlsOptions,
    timings: Timings,
    /// The master in use, `host:port`.
    master: std::sync::Mutex<String>,
    /// Wakes the watcher at once (a failed command).
    wake: tokio::sync::Notify,
    /// The watcher task runs (started by the first command).
    watching: std::sync::atomic::AtomicBool,
    /// The blocking pool's size, kept across a swap.
    pool_size: std::sync::atomic::AtomicUsize,
}

/// The shared connection and the blocking pool of one server.
fn connect(
    url: &str,
    display_url: &str,
    timings: &Timings,
    tls: &TlsOptions,
    pool_size: usize,
) -> Result<(ConnectionManager, deadpool_redis::Pool)> {
    {
        let config_err = |e: redis::RedisError| Error::Redis {
            op: "open",
            kind: RedisFailure::Server,
            message: format!("{display_url}: {e}"),
        };
        let client = crate::tls::client(url, tls)?;
        // The pool gets the same address, TLS parameters included.
        let info = client.get_connection_info().clone();
        let shared = ConnectionManager::new_lazy_with_config(
            client,
            ConnectionManagerConfig::new()
                .set_response_timeout(Some(timings.response_timeout))
                .set_connection_timeout(Some(timings.connect_timeout))
                .set_number_of_retries(2)
                .set_min_delay(timings.reconnect_min)
                .set_max_delay(timings.reconnect_max),
        )
        .map_err(config_err)?;
        let blocking_config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(timings.block + timings.response_timeout))
            .set_connection_timeout(Some(timings.connect_timeout));
        let manager =
            deadpool_redis::Manager::new_with_config(info, blocking_config).map_err(config_err)?;
        let blocking = deadpool_redis::Pool::builder(manager)
            .max_size(pool_size)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .wait_timeout(Some(timings.connect_timeout))
            .create_timeout(Some(timings.connect_timeout))
            .build()
            .map_err(|e| Error::Config(format!("redis pool: {e}")))?;
        Ok((shared, blocking))
    }
}

/// Asks the sentinels for the master every second, and at once when a
/// command failed; when it moved, connects to the new one and swaps the
/// connections in. Ends when the last handle to the server is dropped.
async fn watch_master(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let Some(failover) = strong.failover.as_ref() else {
            return;
        };
        // Asking takes a moment; the handle is not kept meanwhile, so a
        // dropped Redis ends this task.
        let (url, timeout) = (failover.url.clone(), failover.timings.connect_timeout);
        drop(strong);
        let found = url.resolve(timeout).await;
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let Some(failover) = strong.failover.as_ref() else {
            return;
        };
        match found {
            Ok(addr) => {
                let current = failover
                    .master
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                if addr != current {
                    let size = failover
                        .pool_size
                        .load(std::sync::atomic::Ordering::Relaxed);
                    match connect(
                        &url.server_url(&addr),
                        &strong.display_url,
                        &failover.timings,
                        &failover.tls,
                        size,
                    ) {
                        Ok((shared, blocking)) => {
                            *strong.shared.write().unwrap_or_else(|p| p.into_inner()) = shared;
                            *strong.blocking.write().unwrap_or_else(|p| p.into_inner()) = blocking;
                            *failover.master.lock().unwrap_or_else(|p| p.into_inner()) =
                                addr.clone();
                            tracing::warn!(server = %strong.display_url, from = %current, to = %addr,
                                "the Redis master moved (Sentinel failover): now using the new master");
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot connect to the new master; will retry")
                        }
                    }
                }
            }
            Err(e) => {
                if let Some(suppressed) = crate::throttle::warnings().allow("sentinel.resolve") {
                    tracing::warn!(suppressed, error = %e, "asking the sentinels for the master failed; will retry");
                }
            }
        }
        // At most ten looks a second, however many commands fail.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let wait = tokio::time::sleep(Duration::from_secs(1));
        tokio::select! {
            _ = wait => {}
            _ = failover.wake.notified() => {}
        }
    }
}

impl Redis {
    /// With Sentinel: starts the master watcher (once, on the first
    /// command, in the runtime that runs it).
    fn watch(&self) {
        let Some(failover) = &self.inner.failover else {
            return;
        };
        if failover
            .watching
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(watch_master(Arc::downgrade(&self.inner)));
            }
            Err(_) => failover
                .watching
                .store(false, std::sync::atomic::Ordering::Release),
        }
    }

    /// A Redis error of `op`, classified; a fatal one names this server
    /// and the fix ([`Error::Unusable`]).
    pub(crate) fn error(&self, op: &'static str, e: redis::RedisError) -> Error {
        let e = Error::redis(op, e).for_server(&self.inner.display_url);
        // A failed or read-only master: ask the sentinels now.
        if let Some(failover) = &self.inner.failover
            && matches!(
                e.redis_failure(),
                Some(RedisFailure::Connection | RedisFailure::ReadOnly | RedisFailure::MasterDown)
            )
        {
            failover.wake.notify_one();
        }
        e
    }

    /// The URL without credentials, for logs.
    pub fn display_url(&self) -> &str {
        &self.inner.display_url
    }

    /// The shared connection's response timeout.
    pub(crate) fn response_timeout(&self) -> Duration {
        self.inner.response_timeout
    }

    /// The name durable enqueue gives the shared connection.
    pub(crate) fn connection_token(&self) -> &str {
        &self.inner.connection_token
    }

    pub(crate) fn shared(&self) -> ConnectionManager {
        self.watch();
        self.inner
            .shared
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn blocking_pool(&self) -> deadpool_redis::Pool {
        self.watch();
        self.inner
            .blocking
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes room for at least `n` dedicated connections held at once (a
    /// worker holds one per queue it serves, blocked in its read; the pool
    /// has 16 by default, and a fetcher beyond that would wait for ever).
    pub fn reserve_blocking(&self, n: usize) {
        let pool = self.blocking_pool();
        let status = pool.status();
        if n > status.max_size {
            pool.resize(n);
            if let Some(failover) = &self.inner.failover {
                failover
                    .pool_size
                    .fetch_max(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// A dedicated connection for blocking reads.
    pub async fn blocking(&self) -> Result<BlockingConn> {
        let conn = self.blocking_pool().get().await.map_err(|e| match e {
            // What Redis said while the connection was set up (a wrong
            // password, a bad database index) keeps its kind.
            deadpool_redis::PoolError::Backend(e) => self.error("connect", e),
            e => Error::Redis {
                op: "connect",
                kind: RedisFailure::Connection,
                message: e.to_string(),
            },
        })?;
        Ok(BlockingConn { conn })
    }

    /// Checks that `url` is a Redis URL this client can use, without
    /// connecting and without a runtime.
    /// A `rediss://` URL in a build without the `tls` feature is an
    /// [`Error::Config`] that says to enable it.
    pub fn check_url(url: &str) -> Result<()> {
        if crate::sentinel::is_sentinel_url(url) {
            return crate::sentinel::SentinelUrl::parse(url).map(|_| ());
        }
        crate::tls::check_supported(url)?;
        redis::Client::open(url)
            .map(|_| ())
            .map_err(|e| Error::Config(format!("invalid Redis URL {}: {e}", redact_url(url))))
    }

    /// The **server's** clock, unix ms: every time decision (due times,
    /// promotion, failure times) uses it, so a worker or producer whose own
    /// clock is off neither runs delayed jobs early nor shortens backoff.
    ///
    /// Reads `TIME` at most once a minute and extends the last reading with
    /// this host's monotonic clock in between (half the round trip is
    /// added to the reading). When a re-read fails, the extended reading is
    /// used; only the very first read can fail.
    pub async fn server_now_ms(&self) -> Result<u64> {
        let last = *self.inner.clock.lock().unwrap_or_else(|p| p.into_inner());
        match last {
            Some(sync) if sync.at.elapsed() < CLOCK_RESYNC => Ok(extend(sync)),
            Some(sync) => match self.read_clock().await {
                Ok(fresh) => Ok(extend(fresh)),
                Err(e) => {
                    tracing::debug!(error = %e, "could not re-read the server clock; extending the last reading");
                    Ok(extend(sync))
                }
            },
            None => self.read_clock().await.map(extend),
        }
    }

    async fn read_clock(&self) -> Result<ClockSync> {
        let mut conn = self.shared();
        let start = Instant::now();
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("TIME", e))?;
        let rtt = start.elapsed();
        let sync = ClockSync {
            server_ms: secs.saturating_mul(1000).saturating_add(micros / 1000),
            at: start + rtt / 2,
        };
        *self.inner.clock.lock().unwrap_or_else(|p| p.into_inner()) = Some(sync);
        Ok(sync)
    }

    /// For each of `names`, whether the server knows the command
    /// (`COMMAND INFO`: probing, never comparing version strings).
    async fn known_commands(&self, names: &[&str]) -> Result<Vec<bool>> {
        let mut conn = self.shared();
        let reply: redis::Value = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(names)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error("COMMAND INFO", e))?;
        let infos = crate::reply::array("COMMAND INFO", reply)?;
        Ok(infos
            .iter()
            .take(names.len())
            .map(|v| *v != redis::Value::Nil)
            .collect())
    }

    /// Checks that the server has every command in `names`. A missing one
    /// is a fatal [`RedisFailure::Unsupported`] error naming it. A server
    /// that refuses `COMMAND` itself (an ACL without it) is not an error:
    /// the probe is skipped, and a missing command shows when first used.
    pub async fn require_commands(&self, names: &[&str]) -> Result<()> {
        let known = match self.known_commands(names).await {
            Ok(known) => known,
            Err(e) if e.redis_failure() == Some(RedisFailure::NoPermission) => {
                tracing::debug!(
                    "COMMAND INFO is not allowed for this user; skipping the command probe"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let missing: Vec<&str> = names
            .iter()
            .zip(known)
            .filter(|(_, known)| !known)
            .map(|(n, _)| *n)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(Error::Redis {
                op: "COMMAND INFO",
                kind: RedisFailure::Unsupported,
                message: format!(
                    "the server lacks {} (too old, or renamed away with rename-command)",
                    missing.join(", ")
                ),
            })
        }
    }

    /// Probes the newer commands jobstream uses where the server has them:
    /// today `XACKDEL` (Redis 8.2+), which acknowledges and deletes
    /// finished jobs in one command. Without the probe, or where `COMMAND`
    /// is not allowed, the older commands are used.
    pub async fn detect_features(&self) {
        let has = match self.known_commands(&["XACKDEL"]).await {
            Ok(known) => known.first().copied().unwrap_or(false),
            Err(e) => {
                tracing::debug!(error = %e, "cannot probe for XACKDEL; using XACK and XDEL");
                false
            }
        };
        self.use_xackdel(has);
    }

    /// Whether finished jobs are acknowledged with `XACKDEL` (set by
    /// [`Redis::detect_features`]; tests and operators may turn it off).
    pub fn use_xackdel(&self, on: bool) {
        self.inner
            .xackdel
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn xackdel(&self) -> bool {
        self.inner
            .xackdel
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// `PING`, to check the server answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.shared();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|e| self.error("PING", e))
    }
}

fn extend(sync: ClockSync) -> u64 {
    let elapsed = u64::try_from(sync.at.elapsed().as_millis()).unwrap_or(u64::MAX);
    sync.server_ms.saturating_add(elapsed)
}

/// Exponential backoff for reconnect loops: `min`, doubling to `max`.
#[derive(Debug, Clone)]
pub struct Reconnect {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl Reconnect {
    /// A backoff from the timings' reconnect bounds.
    pub fn new(timings: &Timings) -> Self {
        Self {
            next: timings.reconnect_min,
            min: timings.reconnect_min,
            max: timings.reconnect_max,
        }
    }

    /// The wait before the next try (with up to 20% random spread), and
    /// doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d.mul_f64(0.8 + 0.2 * rand::random::<f64>())
    }

    /// Back to the shortest wait after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls_for_logs() {
        assert_eq!(redact_url("redis://u:pw@h:1/0"), "redis://h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(redact_url("redis://u:pa?ss@h:1/0"), "redis://h:1/0");
        assert_eq!(redact_url("redis://u:p#w@h:1/0?x=1"), "redis://h:1/0?x=1");
        assert_eq!(redact_url("rediss://:pw@h"), "rediss://h");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=0&pass=hunter2"),
            "redis+unix:///run/redis.sock?db=0"
        );
        assert_eq!(redact_url("redis+unix:///s?PASSWORD=x"), "redis+unix:///s");
        // Mistyped URLs keep no password either.
        assert_eq!(redact_url("redis:/:s3cret@h:1"), "***@h:1");
        assert_eq!(redact_url("redis//admin:s3cret@h"), "***@h");
    }

    #[test]
    fn reconnect_backoff_doubles_to_the_cap_and_resets() {
        let t = Timings {
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_millis(350),
            ..Timings::default()
        };
        let mut r = Reconnect::new(&t);
        let ds: Vec<Duration> = (0..4).map(|_| r.next_delay()).collect();
        assert!(ds[0] <= Duration::from_millis(100) && ds[0] >= Duration::from_millis(80));
        assert!(ds[1] <= Duration::from_millis(200) && ds[1] >= Duration::from_millis(160));
        assert!(ds[3] <= Duration::from_millis(350) && ds[3] >= Duration::from_millis(280));
        r.reset();
        assert!(r.next_delay() <= Duration::from_millis(100));
    }
}
