//! Periodic jobs: [`Schedule`]s declared on the [`WorkerBuilder`], each
//! tick enqueued once fleet-wide however many workers declare it.
//!
//! Every worker that declares a schedule runs one task for it: it sleeps
//! until the next tick (computed in the schedule's time zone, by this
//! host's clock), then calls `cron-fire-2`, which enqueues the tick's job
//! only if no worker has fired that tick (or a later one) yet. A worker
//! whose clock is behind fires late and finds the tick already fired; one
//! whose clock is ahead fires early. Either way each tick is enqueued
//! once.
//!
//! A tick is **on time** until the tick after it is due (at most a
//! minute): while Redis cannot be reached the worker keeps trying it.
//! Ticks that passed with no worker running, or with Redis away for
//! longer, are **missed**: when the worker starts, and when Redis answers
//! again, it reads the last tick fired and applies the schedule's
//! [`Missed`] policy to the ticks between that one and now.
//!
//! A worker without schedules runs no task for them and sends no command.
//!
//! [`WorkerBuilder`]: crate::WorkerBuilder

use std::time::Duration;

pub use jobstream_core::cron::Missed;
use jobstream_core::cron::{CronFire, CronInfo, CronSpec};
use jobstream_core::envelope::field;
use jobstream_core::{Error, QueueName, QueueStore, Reconnect, Timings};
use serde::Serialize;

use crate::shutdown::{Fatal, Shutdown};

/// Longest a tick is retried while Redis is away before it counts as
/// missed (sooner when the next tick comes due).
const MAX_LATE_MS: u64 = 60_000;

/// Longest single sleep while waiting for a tick: the wall clock is read
/// again after each, so a clock set forward or back is followed.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// A periodic job: a cron expression, read in a time zone, that enqueues
/// one job per tick, once for the whole fleet.
///
/// ```
/// use jobstream_worker::{Missed, Schedule, Worker};
///
/// # fn demo() -> Result<(), jobstream_worker::Error> {
/// let nightly = Schedule::cron("nightly-report", "0 30 2 * * *")?   // 02:30:00 every day
///     .time_zone("Europe/Paris")?
///     .enqueue("reports", "build_report", &serde_json::json!({"kind": "daily"}))?
///     .missed(Missed::RunOnce);
/// let worker = Worker::builder("redis://127.0.0.1:6379")
///     .queue("reports")
///     .handle("build_report", |_: serde_json::Value, _| async { Ok(()) })
///     .schedule(nightly)
///     .build()?;
/// # let _ = worker;
/// # Ok(())
/// # }
/// ```
///
/// Expressions have five fields (`minute hour day-of-month month
/// day-of-week`) or six with a leading seconds field; time zones are IANA
/// names (UTC unless set). Every worker that declares the same schedule
/// (same name) must declare it the same way: the one that started last
/// is what `jobstream cron list` shows, and a worker that finds another
/// definition under its name logs a warning.
#[derive(Debug, Clone)]
pub struct Schedule {
    name: String,
    spec: CronSpec,
    target: Option<Target>,
    missed: Missed,
}

#[derive(Debug, Clone)]
struct Target {
    queue: QueueName,
    job_type: String,
    payload: Vec<u8>,
}

impl Schedule {
    /// A schedule named `name` (fleet-wide; 1 to 128 characters out of
    /// `A-Z a-z 0-9 _ - .`) ticking on `expr`, in UTC. An invalid name or
    /// expression is an error here, never a panic later.
    pub fn cron(name: &str, expr: &str) -> Result<Self, Error> {
        jobstream_core::cron::check_name(name)?;
        let spec = CronSpec::new(expr, "UTC").map_err(|e| named(name, e))?;
        Ok(Self {
            name: name.to_owned(),
            spec,
            target: None,
            missed: Missed::default(),
        })
    }

    /// Reads the expression in `time_zone`, an IANA name such as
    /// `Europe/Paris` (ticks follow its daylight-saving changes). An
    /// unknown name is an error.
    pub fn time_zone(mut self, time_zone: &str) -> Result<Self, Error> {
        self.spec = CronSpec::new(self.spec.expr(), time_zone).map_err(|e| named(&self.name, e))?;
        Ok(self)
    }

    /// What each tick enqueues: a job of `job_type` on `queue` with
    /// `payload` (encoded as MessagePack once, here). Its id is
    /// `cron:NAME:TICK` (TICK in unix ms), the same on every worker.
    pub fn enqueue<T: Serialize + ?Sized>(
        mut self,
        queue: &str,
        job_type: &str,
        payload: &T,
    ) -> Result<Self, Error> {
        let queue = QueueName::new(queue)?;
        if job_type.is_empty() {
            return Err(named(&self.name, Error::Config("job type is empty".into())));
        }
        let mut buf = Vec::with_capacity(64);
        rmp_serde::encode::write_named(&mut buf, payload)
            .map_err(|e| Error::Encode(e.to_string()))?;
        self.target = Some(Target {
            queue,
            job_type: job_type.to_owned(),
            payload: buf,
        });
        Ok(self)
    }

    /// What to do about ticks missed while no worker ran (default
    /// [`Missed::Skip`]).
    pub fn missed(mut self, missed: Missed) -> Self {
        self.missed = missed;
        self
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cron expression and its time zone.
    pub fn spec(&self) -> &CronSpec {
        &self.spec
    }

    /// Checks what `build` needs: a target, a valid policy, a tick to come.
    pub(crate) fn check(&self) -> Result<(), Error> {
        if self.target.is_none() {
            return Err(named(
                &self.name,
                Error::Config("no job to enqueue: call .enqueue(queue, job_type, &payload)".into()),
            ));
        }
        self.missed.validate().map_err(|e| named(&self.name, e))?;
        if self.spec.next_after(jobstream_core::now_ms()).is_none() {
            return Err(named(
                &self.name,
                Error::Config(format!(
                    "the cron expression {:?} never matches a time to come",
                    self.spec.expr()
                )),
            ));
        }
        Ok(())
    }

    /// The target queue, once checked.
    pub(crate) fn queue(&self) -> Option<&QueueName> {
        self.target.as_ref().map(|t| &t.queue)
    }
}

fn named(name: &str, e: Error) -> Error {
    match e {
        Error::Config(m) => Error::Config(format!("schedule {name:?}: {m}")),
        other => other,
    }
}

/// One schedule's task in a running worker.
pub(crate) struct CronTask {
    pub(crate) schedule: Schedule,
    pub(crate) store: QueueStore,
    pub(crate) prefix: String,
    pub(crate) consumer: String,
    pub(crate) timings: Timings,
    pub(crate) fatal: Fatal,
}

/// How a step ended.
enum Step {
    /// Done; go on from this time (unix ms): every tick up to it is handled.
    Cursor(u64),
    /// Shutdown, or a fatal error reported: stop.
    Stop,
}

impl CronTask {
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        let Some(target) = self.schedule.target.clone() else {
            return;
        };
        let mut backoff = Reconnect::new(&self.timings);
        let mut declared = false;
        let mut cursor = match self
            .catch_up(&target, &mut declared, &mut backoff, &mut shutdown)
            .await
        {
            Step::Cursor(c) => c,
            Step::Stop => return,
        };
        loop {
            let Some(tick) = self.schedule.spec.next_after(cursor) else {
                tracing::info!(schedule = %self.schedule.name, cron = %self.schedule.spec.expr(),
                    "the cron expression matches no time to come: the schedule is done");
                return;
            };
            if !wait_until(tick, &mut shutdown).await {
                return;
            }
            // Woken past the tick's time to fire (the process was
            // suspended, the clock jumped forward): it was missed.
            let step = if jobstream_core::now_ms() >= self.late_after(tick) {
                self.catch_up(&target, &mut declared, &mut backoff, &mut shutdown)
                    .await
            } else {
                self.fire_on_time(&target, tick, &mut declared, &mut backoff, &mut shutdown)
                    .await
            };
            cursor = match step {
                Step::Cursor(c) => c,
                Step::Stop => return,
            };
        }
    }

    /// When `tick` stops being on time: when the next tick is due, at most
    /// a minute after it.
    fn late_after(&self, tick: u64) -> u64 {
        self.schedule
            .spec
            .next_after(tick)
            .unwrap_or(u64::MAX)
            .min(tick.saturating_add(MAX_LATE_MS))
    }

    /// Fires `tick`, trying again while it is on time (until the next tick
    /// is due, at most a minute); after that, the missed-fire policy
    /// decides, once Redis answers.
    async fn fire_on_time(
        &self,
        target: &Target,
        tick: u64,
        declared: &mut bool,
        backoff: &mut Reconnect,
        shutdown: &mut Shutdown,
    ) -> Step {
        let late_after = self.late_after(tick);
        loop {
            match self.fire(target, tick).await {
                Ok(()) => {
                    backoff.reset();
                    return Step::Cursor(tick);
                }
                Err(e) if e.is_fatal() => {
                    self.fatal.report(e);
                    return Step::Stop;
                }
                Err(e) => {
                    if let Some(suppressed) =
                        jobstream_core::throttle::warnings().allow("cron.fire")
                    {
                        tracing::warn!(suppressed, schedule = %self.schedule.name, tick, error = %e,
                            "could not enqueue a cron tick; trying again");
                    }
                    if shutdown.sleep(backoff.next_delay()).await {
                        return Step::Stop;
                    }
                }
            }
            if jobstream_core::now_ms() >= late_after {
                return self.catch_up(target, declared, backoff, shutdown).await;
            }
        }
    }

    /// Reads the last tick fired (waiting for Redis), declares the
    /// schedule once, and fires the missed ticks the policy asks for.
    async fn catch_up(
        &self,
        target: &Target,
        declared: &mut bool,
        backoff: &mut Reconnect,
        shutdown: &mut Shutdown,
    ) -> Step {
        let name = &self.schedule.name;
        loop {
            let attempt = async {
                if !*declared {
                    self.declare(target).await?;
                    *declared = true;
                }
                let last = self.store.cron_last(name).await?;
                let now = jobstream_core::now_ms();
                let ticks = self.schedule.missed.ticks(&self.schedule.spec, last, now);
                if let Some(last) = last
                    && self
                        .schedule
                        .spec
                        .next_after(last)
                        .is_some_and(|t| t <= now)
                {
                    tracing::info!(schedule = %name, last_fired = last, policy = self.schedule.missed.name(),
                        firing = ticks.len(), "ticks were missed since the schedule last fired");
                }
                for tick in ticks {
                    self.fire(target, tick).await?;
                }
                Ok::<u64, Error>(now)
            };
            match attempt.await {
                Ok(now) => {
                    backoff.reset();
                    return Step::Cursor(now);
                }
                Err(e) if e.is_fatal() => {
                    self.fatal.report(e);
                    return Step::Stop;
                }
                Err(e) => {
                    if let Some(suppressed) =
                        jobstream_core::throttle::warnings().allow("cron.catch_up")
                    {
                        tracing::warn!(suppressed, schedule = %name, error = %e,
                            "cannot read the schedule's last tick; trying again");
                    }
                    if shutdown.sleep(backoff.next_delay()).await {
                        return Step::Stop;
                    }
                }
            }
        }
    }

    /// Declares the schedule in `PREFIX:crons` and its queue in the
    /// registry of known queues.
    async fn declare(&self, target: &Target) -> Result<(), Error> {
        let info = CronInfo::new(
            &self.schedule.name,
            target.queue.as_str(),
            &target.job_type,
            &self.schedule.spec,
            self.schedule.missed,
            &self.consumer,
            jobstream_core::now_ms(),
        );
        let old = jobstream_core::cron::declare(self.store.redis(), &self.prefix, &info).await?;
        if let Some(old) = old
            && !old.same_schedule(&info)
        {
            tracing::warn!(schedule = %info.name, previous = ?old, now = ?info,
                "another worker declared this schedule differently; every worker should declare a schedule the same way");
        }
        self.store.register().await?;
        tracing::info!(schedule = %info.name, queue = %info.queue, job_type = %info.job_type,
            cron = %info.cron, time_zone = %info.time_zone, missed = %info.missed, "cron schedule declared");
        Ok(())
    }

    /// One call of `cron-fire-2` for `tick`.
    async fn fire(&self, target: &Target, tick: u64) -> Result<(), Error> {
        let id = jobstream_core::cron::job_id(&self.schedule.name, tick);
        let now = jobstream_core::now_ms().to_string();
        let fields: [(&[u8], &[u8]); 4] = [
            (field::TYPE.as_bytes(), target.job_type.as_bytes()),
            (field::PAYLOAD.as_bytes(), target.payload.as_slice()),
            (field::ID.as_bytes(), id.as_bytes()),
            (field::ENQUEUED_AT.as_bytes(), now.as_bytes()),
        ];
        match self
            .store
            .cron_fire(&self.schedule.name, tick, &fields)
            .await?
        {
            CronFire::Enqueued(entry) => {
                tracing::info!(schedule = %self.schedule.name, queue = %target.queue,
                job_id = %id, entry = %entry, "cron tick enqueued")
            }
            CronFire::Early { server_now_ms } => {
                if let Some(suppressed) = jobstream_core::throttle::warnings().allow("cron.early") {
                    tracing::warn!(suppressed, schedule = %self.schedule.name,
                        ahead_ms = tick.saturating_sub(server_now_ms),
                        "this host's clock is ahead of the Redis server's: the tick is refused (other workers fire it on time); fix the clock (NTP)");
                }
            }
            _ => tracing::debug!(schedule = %self.schedule.name, job_id = %id,
                "cron tick already enqueued by another worker"),
        }
        Ok(())
    }
}

/// Sleeps until the wall clock reads `tick` (unix ms). False on shutdown.
async fn wait_until(tick: u64, shutdown: &mut Shutdown) -> bool {
    loop {
        let now = jobstream_core::now_ms();
        if now >= tick {
            return !shutdown.is_set();
        }
        let left = Duration::from_millis(tick - now).min(MAX_SLEEP);
        if shutdown.sleep(left).await {
            return false;
        }
    }
}
