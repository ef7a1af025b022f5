//! Drain queues through a real worker, for integration tests.

use std::time::Duration;

use jobstream_core::{Error, Limits, QueueKeys, QueueStats, QueueStore, Redis, TlsOptions};
use tokio::time::Instant;

use crate::{ShutdownHandle, Worker, WorkerBuilder};

/// How often the drain looks at the queues.
const POLL: Duration = Duration::from_millis(10);

/// Dead letters read back per queue for the report, at most.
const DEAD_LETTERS_SHOWN: usize = 100;

/// Runs a worker's handlers until its queues are empty, then stops it: the
/// jobs of an integration test, run in the test, against a real Redis
/// (see `jobstream-testkit` for a throwaway `redis-server`).
///
/// It runs the real worker (fetch, middleware, timeouts, retries, acks,
/// dead letters), so what the test sees is what production does. It stops
/// when every drained queue has nothing ready and nothing running; jobs a
/// handler enqueues on a drained queue run too, in the same drain (follow-up
/// jobs, recursively). It never waits forever: a [timeout](Drain::timeout)
/// and a cap on the number of jobs ([`max_jobs`](Drain::max_jobs)) end it
/// with an error that says what was left.
///
/// ```no_run
/// use jobstream_worker::testing::Drain;
/// use jobstream_worker::{JobContext, JobResult, Worker};
///
/// async fn greet(name: String, _ctx: JobContext) -> JobResult {
///     println!("hello {name}");
///     Ok(())
/// }
///
/// # async fn demo(url: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let builder = Worker::builder(url).queue("greetings").handle("greet", greet);
/// let report = Drain::new(builder).with_scheduled(true).run().await?;
/// assert_eq!((report.processed, report.dead), (1, 0));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Drain {
    worker: Result<Worker, Error>,
    only: Vec<String>,
    with_scheduled: bool,
    timeout: Duration,
    max_jobs: u64,
}

/// What a drain did, summed over the drained queues, and what it left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Jobs that finished successfully.
    pub processed: u64,
    /// Failed attempts scheduled to run again (with
    /// [`with_scheduled`](Drain::with_scheduled), the retries ran in the
    /// drain too).
    pub retried: u64,
    /// Jobs moved to the dead-letter stream, for any reason: see
    /// [`dead_letters`](DrainReport::dead_letters).
    pub dead: u64,
    /// Jobs a handler discarded.
    pub discarded: u64,
    /// Scheduled jobs the drain moved to `ready` ahead of their due time
    /// ([`with_scheduled`](Drain::with_scheduled)).
    pub promoted: u64,
    /// Left at the end: jobs in `ready` that did not run (0 after a drain
    /// that succeeded).
    pub ready: u64,
    /// Left at the end: jobs still running (0 after a drain that
    /// succeeded).
    pub in_flight: u64,
    /// Left at the end: jobs in `scheduled`, delayed or waiting for a
    /// retry (0 after a drain [`with_scheduled`](Drain::with_scheduled)).
    pub scheduled: u64,
    /// The dead letters written during the drain, oldest first (at most
    /// 100 per queue).
    pub dead_letters: Vec<DeadLetter>,
}

/// A job that went to the dead-letter stream during a drain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The queue.
    pub queue: String,
    /// The job id.
    pub job_id: String,
    /// The job type.
    pub job_type: String,
    /// Why: `exhausted`, `permanent`, `malformed`, `unknown_type`,
    /// `abandoned`.
    pub reason: String,
    /// The final error's class and message (`permanent: no recipient`).
    pub error: String,
    /// Attempts made.
    pub attempt: u32,
}

/// Why a drain failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DrainError {
    /// The worker could not run (its configuration, or Redis refused it),
    /// or the drain could not read the queues.
    Worker(Error),
    /// Jobs were still ready or running when the timeout ran out.
    Timeout {
        /// The timeout.
        timeout: Duration,
        /// What ran, and what was left.
        report: DrainReport,
    },
    /// More jobs finished than [`Drain::max_jobs`] allows: most likely a
    /// job that keeps enqueuing itself.
    TooManyJobs {
        /// The cap.
        max_jobs: u64,
        /// What ran, and what was left.
        report: DrainReport,
    },
    /// The worker was shut down (through its shutdown handle) before the
    /// queues were empty.
    Stopped {
        /// What ran, and what was left.
        report: DrainReport,
    },
}

impl std::fmt::Display for DrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrainError::Worker(e) => write!(f, "drain: {e}"),
            DrainError::Timeout { timeout, report } => write!(
                f,
                "drain: the queues were not empty after {timeout:?}; {report}. A handler that \
                 does not return, or jobs held by another worker, keep a queue busy; raise \
                 Drain::timeout if the jobs are only slow"
            ),
            DrainError::TooManyJobs { max_jobs, report } => write!(
                f,
                "drain: more than {max_jobs} jobs finished, {report}. A job that keeps \
                 enqueuing itself never drains; raise Drain::max_jobs if this many are expected"
            ),
            DrainError::Stopped { report } => write!(
                f,
                "drain: the worker was shut down before the queues were empty; {report}"
            ),
        }
    }
}

impl std::error::Error for DrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DrainError::Worker(e) => Some(e),
            _ => None,
        }
    }
}

impl std::fmt::Display for DrainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "left {} ready, {} running, {} scheduled; ran: {} processed, {} retried, {} dead, {} \
             discarded",
            self.ready,
            self.in_flight,
            self.scheduled,
            self.processed,
            self.retried,
            self.dead,
            self.discarded
        )?;
        for d in &self.dead_letters {
            write!(
                f,
                "; dead: {} {} on {:?} ({}: {})",
                d.job_type, d.job_id, d.queue, d.reason, d.error
            )?;
        }
        Ok(())
    }
}

/// How the watch ended.
enum Stop {
    Drained,
    Timeout,
    TooManyJobs,
    Stopped,
}

impl Drain {
    /// A drain of the queues `builder` serves, with its handlers, state,
    /// middleware and options. A builder that does not build is reported by
    /// [`run`](Drain::run).
    pub fn new<S: Clone + Send + Sync + 'static>(builder: WorkerBuilder<S>) -> Self {
        Self::from_worker_result(builder.build())
    }

    /// A drain of the queues `worker` serves.
    pub fn from_worker(worker: Worker) -> Self {
        Self::from_worker_result(Ok(worker))
    }

    fn from_worker_result(worker: Result<Worker, Error>) -> Self {
        Self {
            worker,
            only: Vec::new(),
            with_scheduled: false,
            timeout: Duration::from_secs(10),
            max_jobs: 10_000,
        }
    }

    /// Drains only `queue` of the worker's queues (call again for more);
    /// by default, all of them. The others are left alone.
    pub fn only(mut self, queue: &str) -> Self {
        self.only.push(queue.to_owned());
        self
    }

    /// Runs the jobs in `scheduled` too, at once, whatever their due time:
    /// delayed jobs, delayed follow-ups enqueued during the drain, and
    /// retries (so a failing job runs all its attempts without waiting for
    /// the backoff, and ends processed or dead). Off by default: then the
    /// drain leaves `scheduled` alone, and what is in it at the end is in
    /// [`DrainReport::scheduled`].
    pub fn with_scheduled(mut self, yes: bool) -> Self {
        self.with_scheduled = yes;
        self
    }

    /// Longest the drain may take (default 10 s); then it stops the worker
    /// and fails with [`DrainError::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most jobs that may finish in the drain, attempts that end in a
    /// retry included (default 10,000); then it stops the worker and fails
    /// with [`DrainError::TooManyJobs`].
    pub fn max_jobs(mut self, n: u64) -> Self {
        self.max_jobs = n;
        self
    }

    /// Runs the worker until the queues are drained, then shuts it down
    /// gracefully, and reports what ran.
    pub async fn run(self) -> Result<DrainReport, DrainError> {
        let mut worker = self.worker.map_err(DrainError::Worker)?;
        if !self.only.is_empty() {
            for queue in &self.only {
                if !worker.queues.iter().any(|q| q.name.as_str() == queue) {
                    let served: Vec<&str> = worker.queues.iter().map(|q| q.name.as_str()).collect();
                    return Err(DrainError::Worker(Error::Config(format!(
                        "drain: queue {queue:?} is not one this worker serves ({served:?})"
                    ))));
                }
            }
            worker
                .queues
                .retain(|q| self.only.iter().any(|o| o == q.name.as_str()));
        }
        // The drain stops with nothing running; when it stops early (a
        // timeout), a handler that hangs should not hold the test for long.
        worker.timings.shutdown_grace = worker.timings.shutdown_grace.min(Duration::from_secs(1));
        let tls = worker.tls.clone().unwrap_or_else(TlsOptions::from_env);
        let redis =
            Redis::open_with_tls(&worker.url, &worker.timings, &tls).map_err(DrainError::Worker)?;
        let stores: Vec<QueueStore> = worker
            .queues
            .iter()
            .map(|q| {
                QueueStore::new(
                    redis.clone(),
                    QueueKeys::new(&worker.prefix, &q.name),
                    worker.group.clone(),
                )
            })
            .collect();
        let before = read_stats(&stores).await.map_err(DrainError::Worker)?;
        let mut last_dead = Vec::with_capacity(stores.len());
        for store in &stores {
            last_dead.push(store.last_dead_id().await.map_err(DrainError::Worker)?);
        }
        let watch = Watch {
            stores: &stores,
            before: &before,
            limits: worker.limits.clone(),
            handle: worker.shutdown_handle(),
            with_scheduled: self.with_scheduled,
            deadline: Instant::now() + self.timeout,
            max_jobs: self.max_jobs,
        };
        let handle = worker.shutdown_handle();
        let (ran, watched) = tokio::join!(worker.run_until_stopped(), async {
            let watched = watch.run().await;
            handle.shutdown();
            watched
        });
        ran.map_err(DrainError::Worker)?;
        let (stop, promoted) = watched?;
        let after = read_stats(&stores).await.map_err(DrainError::Worker)?;
        let mut report = DrainReport {
            promoted,
            ..DrainReport::default()
        };
        for (b, a) in before.iter().zip(&after) {
            report.processed += a.processed.saturating_sub(b.processed);
            report.retried += a.retried.saturating_sub(b.retried);
            report.dead += a.dead_total.saturating_sub(b.dead_total);
            report.discarded += a.discarded.saturating_sub(b.discarded);
            report.ready += a.ready;
            report.in_flight += a.in_flight;
            report.scheduled += a.scheduled;
        }
        for (store, last) in stores.iter().zip(&last_dead) {
            let start = last
                .as_ref()
                .map_or_else(|| "-".to_owned(), |id| format!("({id}"));
            let entries = store
                .dead_entries(&start, DEAD_LETTERS_SHOWN)
                .await
                .map_err(DrainError::Worker)?;
            report.dead_letters.extend(
                entries
                    .into_iter()
                    .map(|e| dead_letter(store.keys().name().as_str(), e)),
            );
        }
        match stop {
            Stop::Drained => Ok(report),
            Stop::Timeout => Err(DrainError::Timeout {
                timeout: self.timeout,
                report,
            }),
            Stop::TooManyJobs => Err(DrainError::TooManyJobs {
                max_jobs: self.max_jobs,
                report,
            }),
            Stop::Stopped => Err(DrainError::Stopped { report }),
        }
    }
}

/// Watches the drained queues while the worker runs.
struct Watch<'a> {
    stores: &'a [QueueStore],
    before: &'a [QueueStats],
    limits: Limits,
    handle: ShutdownHandle,
    with_scheduled: bool,
    deadline: Instant,
    max_jobs: u64,
}

impl Watch<'_> {
    /// Until the queues are empty or a limit is reached. Returns how it
    /// ended and how many scheduled jobs it promoted.
    async fn run(&self) -> Result<(Stop, u64), DrainError> {
        let mut promoted = 0;
        loop {
            if self.handle.is_shutting_down() {
                // A fatal error stopped the worker (run returns it), or the
                // user's shutdown handle did.
                return Ok((Stop::Stopped, promoted));
            }
            match self.look(&mut promoted).await {
                Ok(Some(stop)) => return Ok((stop, promoted)),
                // Redis busy or reconnecting: look again.
                Ok(None) => {}
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(DrainError::Worker(e)),
            }
            if Instant::now() >= self.deadline {
                return Ok((Stop::Timeout, promoted));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// One look: promote (with_scheduled), read the stats, decide.
    async fn look(&self, promoted: &mut u64) -> Result<Option<Stop>, Error> {
        if self.with_scheduled {
            for store in self.stores {
                *promoted += promote_all(store, &self.limits).await?;
            }
        }
        let now = read_stats(self.stores).await?;
        let finished: u64 = self
            .before
            .iter()
            .zip(&now)
            .map(|(b, a)| {
                (a.processed + a.retried + a.dead_total + a.discarded)
                    .saturating_sub(b.processed + b.retried + b.dead_total + b.discarded)
            })
            .sum();
        if finished > self.max_jobs {
            return Ok(Some(Stop::TooManyJobs));
        }
        let idle = now.iter().all(|s| {
            s.ready == 0 && s.in_flight == 0 && (!self.with_scheduled || s.scheduled == 0)
        });
        if !idle {
            return Ok(None);
        }
        // Idle now: confirm on the next look, so a job enqueued between
        // two of the reads that make up the stats is not missed.
        tokio::time::sleep(POLL).await;
        if self.with_scheduled {
            for store in self.stores {
                *promoted += promote_all(store, &self.limits).await?;
            }
        }
        let again = read_stats(self.stores).await?;
        let still_idle = again.iter().zip(&now).all(|(a, n)| {
            a.ready == 0
                && a.in_flight == 0
                && (!self.with_scheduled || a.scheduled == 0)
                && a.processed == n.processed
                && a.retried == n.retried
                && a.dead_total == n.dead_total
                && a.discarded == n.discarded
        });
        Ok(still_idle.then_some(Stop::Drained))
    }
}

/// Moves everything in `scheduled` to `ready`, earliest due first, with
/// the promote script: it moves what is due at the `now` it is given, so
/// the drain gives it each remaining due time in turn. Returns how many
/// moved.
async fn promote_all(store: &QueueStore, limits: &Limits) -> Result<u64, Error> {
    let mut now = store.redis().server_now_ms().await?;
    let mut moved_total = 0;
    loop {
        let (moved, next_due, malformed) = store
            .promote(now, limits.promote_batch, limits.dead_max_len)
            .await?;
        moved_total += moved;
        if (moved + malformed) as usize >= limits.promote_batch {
            continue;
        }
        match next_due {
            Some(due) if due > now => now = due,
            _ => return Ok(moved_total),
        }
    }
}

async fn read_stats(stores: &[QueueStore]) -> Result<Vec<QueueStats>, Error> {
    let now = jobstream_core::now_ms();
    let mut out = Vec::with_capacity(stores.len());
    for store in stores {
        out.push(store.stats(now).await?);
    }
    Ok(out)
}

fn dead_letter(queue: &str, entry: jobstream_core::StreamEntry) -> DeadLetter {
    let mut d = DeadLetter {
        queue: queue.to_owned(),
        job_id: entry.id,
        attempt: 1,
        ..DeadLetter::default()
    };
    let mut class = String::new();
    for (k, v) in entry.fields {
        let text = String::from_utf8_lossy(&v).into_owned();
        match k.as_slice() {
            b"id" => d.job_id = text,
            b"type" => d.job_type = text,
            b"reason" => d.reason = text,
            b"error_class" => class = text,
            b"error" => d.error = text,
            b"attempt" => d.attempt = text.parse().unwrap_or(1),
            _ => {}
        }
    }
    if !class.is_empty() {
        d.error = format!("{class}: {}", d.error);
    }
    d
}
