//! The worker side: the state handlers share, the payment handler, and the
//! worker that serves it.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use jobstream::{
    Job, JobContext, JobError, JobOptions, JobResult, RetryPolicy, Timings, Worker, WorkerBuilder,
};
use tokio_postgres::NoTls;

use crate::faults::Faults;
use crate::ledger::{self, Applied, LedgerError};
use crate::payment::Payment;

/// What every handler shares. Cheap to clone: the pool is a handle.
#[derive(Clone)]
pub struct App {
    /// Connections to the ledger's database.
    pub db: Pool,
    /// Failures on purpose ([`Faults::none`] in production).
    pub faults: Faults,
    /// Simulated work inside each payment's transaction.
    pub work: Duration,
}

/// Shows the pool's size, never the database URL (it may hold a password).
impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("db_pool_size", &self.db.status().max_size)
            .field("faults", &self.faults)
            .field("work", &self.work)
            .finish()
    }
}

/// Why the database could not be set up.
pub type SetupError = Box<dyn std::error::Error + Send + Sync>;

/// A pool of up to `size` connections to `database_url` (a `postgres://`
/// URL or a `host=… user=…` string). Nothing connects until used.
pub fn pool(database_url: &str, size: usize) -> Result<Pool, SetupError> {
    let config: tokio_postgres::Config = database_url.parse()?;
    let manager = Manager::from_config(
        config,
        NoTls,
        // Fast: a connection is checked only for being closed when taken
        // from the pool; a broken one fails its job, which is retried.
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager).max_size(size.max(1)).build()?)
}

/// The state for a worker: the pool, with the tables created.
pub async fn connect(
    database_url: &str,
    size: usize,
    faults: Faults,
    work: Duration,
) -> Result<App, SetupError> {
    let db = pool(database_url, size)?;
    let mut client = db.get().await?;
    ledger::ensure_schema(&mut client).await?;
    Ok(App { db, faults, work })
}

/// Applies a payment exactly once, however often its job runs.
///
/// The job may run more than once: after a worker crash between the
/// commit and the acknowledgement, after a lost lease, or as a second job
/// with the same `txn_id`. [`ledger::apply`] makes every run after the
/// first a no-op that returns `Ok`, so the job is acknowledged and
/// finishes.
pub async fn apply_payment(payment: Payment, ctx: JobContext<App>) -> JobResult {
    payment.validate()?;
    let app = ctx.state();
    app.faults.before_transaction()?;
    let mut client = app.db.get().await?;
    match ledger::apply(&mut client, &payment, ctx.id(), app.work).await {
        Ok(Applied::Now) => {
            tracing::debug!(txn_id = %payment.txn_id, job_id = ctx.id(), "payment applied");
        }
        Ok(Applied::Already) => {
            tracing::info!(
                txn_id = %payment.txn_id,
                job_id = ctx.id(),
                attempt = ctx.attempt(),
                "payment was applied before: nothing to do"
            );
        }
        Err(e @ LedgerError::Conflict { .. }) => {
            return Err(JobError::permanent(e).with_class("txn_id_conflict"));
        }
        Err(e @ LedgerError::Db(_)) => {
            return Err(JobError::retry(error_chain(&e)).with_class("database"));
        }
    }
    app.faults.after_commit()?;
    Ok(())
}

/// `error: its cause: its cause`: tokio-postgres says only `db error` at
/// the top and puts PostgreSQL's message in the source.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// How the worker runs: its command line's knobs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs run at once (and database connections).
    pub concurrency: usize,
    /// Attempts per job, the first included.
    pub max_attempts: u32,
    /// First retry wait (doubling, equal jitter).
    pub backoff: Duration,
    /// Longest retry wait.
    pub backoff_max: Duration,
    /// Jobs of a crashed worker are taken over after this long.
    pub visibility_timeout: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            concurrency: 8,
            max_attempts: 20,
            backoff: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            visibility_timeout: Duration::from_secs(30),
        }
    }
}

/// The payments worker on `redis_url`: the `payments` queue, the
/// [`apply_payment`] handler, `app` as its state.
pub fn worker(redis_url: &str, app: App, options: &WorkerOptions) -> WorkerBuilder<App> {
    let vt = options.visibility_timeout;
    let timings = Timings::default()
        .visibility_timeout(vt)
        .lease_refresh(vt / 4)
        .reclaim_interval(vt / 4)
        // Retries wait in `scheduled`: with short backoffs, promote often.
        .promote_interval(
            options
                .backoff
                .clamp(Duration::from_millis(10), Duration::from_millis(500)),
        );
    Worker::builder(redis_url)
        .queue(Payment::QUEUE)
        .concurrency(options.concurrency)
        .timings(timings)
        .default_options(JobOptions::new().timeout(Duration::from_secs(30)).retry(
            RetryPolicy::exponential(options.max_attempts, options.backoff, options.backoff_max),
        ))
        .state(app)
        .job::<Payment>(apply_payment)
}
