//! Fetches new jobs of one lane (one stream) with `XREADGROUP`, never more
//! than the slots in sight, and starts each one at once. A worker serving
//! several queues runs one fetcher per lane, each on its own connection;
//! `slots.rs` decides which lane gets a freed slot.
//!
//! A lane is *active* while its reads come back full (a backlog): it asks
//! the pool for slots, waits its turn, and reads without blocking, with the
//! slots it holds. Once a read comes back short it goes *idle*: it takes a
//! promise of the spare slots (free, wanted by no active lane, promised to
//! no other idle lane) and blocks on its stream (`BLOCK`) holding no slot,
//! asking for as many jobs as it was promised; the promise turns into
//! slots when the jobs arrive. When the free slots are all promised to
//! other idle lanes, it still reads one job, so every idle queue sees its
//! jobs at once while the worker has a free slot. With no free slot at all
//! it claims nothing (a job it claimed would wait here while other workers
//! could run it): it waits for a new job without claiming it (`XREAD`),
//! then competes for a slot as an active lane, by the order's rule, so a
//! queue is never starved by busier ones. Promises are soft: a
//! job that arrives to find no slot left (an active lane took it) goes
//! straight back to its queue, where any worker can take it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jobstream_core::{BlockingConn, QueueStore, Reconnect, StreamEntry, Timings};

use crate::inflight::LaneId;
use crate::pause::Paused;
use crate::processor::Dispatcher;
use crate::reclaimer::Reclaimer;
use crate::shutdown::{Fatal, Shutdown};
use crate::slots::{Permit, Slots};

pub(crate) struct Fetcher {
    pub(crate) lane: LaneId,
    pub(crate) store: QueueStore,
    pub(crate) consumer: String,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) slots: Slots,
    pub(crate) timings: Timings,
    pub(crate) max_batch: usize,
    /// `CLIENT ID` of the connection blocked in XREADGROUP (0 when none),
    /// so shutdown can end the read at once with `CLIENT UNBLOCK`.
    pub(crate) reader_id: Arc<AtomicI64>,
    pub(crate) reclaimer: Reclaimer,
    pub(crate) fatal: Fatal,
    /// Paused lanes (`jobstream queue pause`): this lane fetches nothing
    /// while its flag is up.
    pub(crate) paused: Paused,
    /// Up while a blocking read is sent or waiting, so the pause watcher
    /// knows to end it.
    pub(crate) blocked: Arc<AtomicBool>,
    /// The queue's fleet-wide rate limit: tokens are taken before each
    /// read, which asks for no more than were granted.
    pub(crate) rate: Option<jobstream_core::RateLimit>,
}

/// Where the fetch loop goes next.
enum Next {
    /// Carry on; the lane is active (true) or idle (false).
    Go(bool),
    /// Shutdown (or a fatal error): stop.
    Stop,
}

impl Fetcher {
    /// Runs until shutdown. An error by which Redis refuses the
    /// configuration (retrying cannot help) is reported as fatal, which
    /// stops the worker.
    pub(crate) async fn run(self, mut shutdown: Shutdown) {
        let mut conn: Option<BlockingConn> = None;
        let mut backoff = Reconnect::new(&self.timings);
        let mut next_reclaim = Instant::now() + self.timings.reclaim_interval;
        // Start active: a lane with a backlog competes for slots by the
        // order's rule from the first read (in strict order, a lower queue
        // must not take the slots before a higher one had a look).
        let mut active = true;
        while !shutdown.is_set() {
            if self.paused.is_paused(self.lane) {
                // Out of the competition for slots, holding none, until
                // resumed; then active again, by the order's rule.
                self.slots.idle(self.lane);
                if !self.paused.wait_resumed(self.lane, &mut shutdown).await {
                    break;
                }
                active = true;
                continue;
            }
            let step = if active {
                self.active_round(&mut conn, &mut backoff, &mut next_reclaim, &mut shutdown)
                    .await
            } else {
                self.idle_round(&mut conn, &mut backoff, &mut next_reclaim, &mut shutdown)
                    .await
            };
            match step {
                Next::Go(a) => active = a,
                Next::Stop => break,
            }
        }
        self.reader_id.store(0, Ordering::SeqCst);
    }

    /// One round of a lane with a backlog: slots first, then a read (or a
    /// claim) that does not block.
    async fn active_round(
        &self,
        conn: &mut Option<BlockingConn>,
        backoff: &mut Reconnect,
        next_reclaim: &mut Instant,
        shutdown: &mut Shutdown,
    ) -> Next {
        let mut permits = tokio::select! {
            p = self.slots.acquire(self.lane, self.max_batch) => p,
            _ = shutdown.wait() => return Next::Stop,
        };
        if permits.is_empty() {
            return Next::Stop; // the pool is closed: shutting down
        }
        if self.paused.is_paused(self.lane) {
            // Paused while waiting for slots.
            self.slots.unused(self.lane, permits);
            return Next::Go(false);
        }
        self.gather(&mut permits).await;
        if Instant::now() >= *next_reclaim {
            *next_reclaim = Instant::now() + self.timings.reclaim_interval;
            let Some(left) = self.reclaim(permits, shutdown).await else {
                return Next::Stop;
            };
            if left.is_empty() || self.paused.is_paused(self.lane) {
                self.slots.unused(self.lane, left);
                return Next::Go(true);
            }
            permits = left;
        }
        if let Some(limit) = &self.rate {
            let granted = match self.tokens(limit, permits.len()).await {
                Ok(granted) => granted,
                Err(wait) => {
                    // None due yet: the slots go to other lanes meanwhile,
                    // and this lane stops competing until one is.
                    self.slots.idle(self.lane);
                    self.slots.unused(self.lane, permits);
                    shutdown.sleep(wait).await;
                    return if shutdown.is_set() {
                        Next::Stop
                    } else {
                        Next::Go(true)
                    };
                }
            };
            let extra = permits.split_off(granted.min(permits.len()));
            self.slots.unused(self.lane, extra);
        }
        let Some(c) = self.connection(conn, backoff, shutdown).await else {
            return self.after_failure(permits, shutdown);
        };
        let count = permits.len();
        let read = self.store.read(c, &self.consumer, count, None).await;
        self.after_read(read, permits, count, conn, backoff, shutdown)
            .await
    }

    /// One round of a lane without a backlog: a read that blocks until
    /// jobs arrive, holding no slot; or, with no slot to spare, a wait.
    async fn idle_round(
        &self,
        conn: &mut Option<BlockingConn>,
        backoff: &mut Reconnect,
        next_reclaim: &mut Instant,
        shutdown: &mut Shutdown,
    ) -> Next {
        let promise = self.slots.promise(self.lane, self.max_batch);
        let until_reclaim = next_reclaim.saturating_duration_since(Instant::now());
        if promise.len() == 0 {
            drop(promise);
            return self.doorbell(until_reclaim, conn, backoff, shutdown).await;
        }
        // Claims only against slots promised to this lane (none promised:
        // the next pass): a claimed job given back for want of a slot would
        // lose its delivery count, which is what catches a job that kills
        // its workers.
        if until_reclaim.is_zero() {
            *next_reclaim = Instant::now() + self.timings.reclaim_interval;
        }
        if self.paused.is_paused(self.lane) {
            drop(promise);
            return Next::Go(false);
        }
        if until_reclaim.is_zero() && promise.promised() > 0 {
            let claimed = self.claim(promise.promised()).await;
            let permits = promise.fulfil(claimed.len());
            return match self.start(claimed, permits, shutdown).await {
                Some(left) => {
                    drop(left);
                    Next::Go(false)
                }
                None => Next::Stop,
            };
        }
        let Some(c) = self.connection(conn, backoff, shutdown).await else {
            drop(promise);
            return self.after_failure(Vec::new(), shutdown);
        };
        let mut count = promise.len();
        if let Some(limit) = &self.rate {
            match self.tokens(limit, count).await {
                Ok(granted) => count = count.min(granted),
                Err(wait) => {
                    drop(promise);
                    shutdown.sleep(wait).await;
                    return if shutdown.is_set() {
                        Next::Stop
                    } else {
                        Next::Go(false)
                    };
                }
            }
        }
        let block = self.block_for(next_reclaim.saturating_duration_since(Instant::now()));
        self.blocked.store(true, Ordering::SeqCst);
        let read = self.store.read(c, &self.consumer, count, Some(block)).await;
        self.blocked.store(false, Ordering::SeqCst);
        let got = read.as_ref().map_or(0, Vec::len);
        let permits = promise.fulfil(got);
        self.after_read(read, permits, count, conn, backoff, shutdown)
            .await
    }

    /// No free slot: claim nothing (a claimed job would wait here while
    /// other workers could run it). Wait for a new job without claiming it
    /// (`XREAD ... $`), then compete for a slot as an active lane, by the
    /// order's rule. After `block` (or at the next reclaim pass) without a
    /// new job, have a look anyway: a job added just before the wait began
    /// is seen then, so no queue starves behind busier ones.
    async fn doorbell(
        &self,
        until_reclaim: Duration,
        conn: &mut Option<BlockingConn>,
        backoff: &mut Reconnect,
        shutdown: &mut Shutdown,
    ) -> Next {
        let Some(c) = self.connection(conn, backoff, shutdown).await else {
            return self.after_failure(Vec::new(), shutdown);
        };
        self.blocked.store(true, Ordering::SeqCst);
        let waited = self
            .store
            .wait_for_new(c, self.block_for(until_reclaim))
            .await;
        self.blocked.store(false, Ordering::SeqCst);
        match waited {
            Ok(_) if shutdown.is_set() => Next::Stop,
            Ok(_) => Next::Go(true),
            Err(e) => {
                self.after_read(Err(e), Vec::new(), 1, conn, backoff, shutdown)
                    .await
            }
        }
    }

    /// How long an idle wait blocks: `block`, but waking up in time for
    /// the next reclaim pass.
    fn block_for(&self, until_reclaim: Duration) -> Duration {
        self.timings
            .block
            .min(until_reclaim)
            .max(Duration::from_millis(1))
    }

    /// The dedicated connection, made if needed. None when it cannot be
    /// made now (the error is handled: fatal reported, or a backoff wait).
    async fn connection<'c>(
        &self,
        conn: &'c mut Option<BlockingConn>,
        backoff: &mut Reconnect,
        shutdown: &mut Shutdown,
    ) -> Option<&'c mut BlockingConn> {
        if conn.is_none() {
            match self.connect().await {
                Ok(c) => {
                    backoff.reset();
                    *conn = Some(c);
                }
                Err(e) if e.is_fatal() => {
                    self.fatal.report(e);
                    return None;
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    if let Some(suppressed) =
                        jobstream_core::throttle::warnings().allow("fetcher.connect")
                    {
                        tracing::warn!(suppressed, error = %e, retry_in_ms = wait.as_millis() as u64, "cannot reach Redis to fetch jobs; retrying");
                    }
                    shutdown.sleep(wait).await;
                    return None;
                }
            }
        }
        if shutdown.is_set() {
            return None;
        }
        conn.as_mut()
    }

    /// After a failure that was already handled (logged, waited out): the
    /// lane goes idle and gives its slots back unused.
    fn after_failure(&self, permits: Vec<Permit>, shutdown: &Shutdown) -> Next {
        self.slots.idle(self.lane);
        self.slots.unused(self.lane, permits);
        if shutdown.is_set() {
            Next::Stop
        } else {
            Next::Go(false)
        }
    }

    /// Starts what a read returned; the lane stays active after a full read
    /// and goes idle after a short one.
    async fn after_read(
        &self,
        read: jobstream_core::Result<Vec<StreamEntry>>,
        permits: Vec<Permit>,
        count: usize,
        conn: &mut Option<BlockingConn>,
        backoff: &mut Reconnect,
        shutdown: &mut Shutdown,
    ) -> Next {
        match read {
            Ok(entries) => {
                backoff.reset();
                if shutdown.is_set() && !entries.is_empty() {
                    self.give_back(entries.iter().map(|e| e.id.as_str())).await;
                    return Next::Stop;
                }
                let full = entries.len() == count;
                let entries = entries.into_iter().map(|e| (e, 1)).collect();
                let Some(left) = self.start(entries, permits, shutdown).await else {
                    return Next::Stop;
                };
                if full {
                    self.slots.unused(self.lane, left);
                    Next::Go(true)
                } else {
                    // Idle first, so the slots given back are not reserved
                    // for this lane again.
                    self.slots.idle(self.lane);
                    self.slots.unused(self.lane, left);
                    Next::Go(false)
                }
            }
            Err(e) if e.is_no_group() => {
                tracing::warn!(queue = %self.store.keys().name(), "consumer group is gone (deleted, or Redis lost its data); recreating it");
                let recreated = match self.store.ensure_group().await {
                    Ok(_) => self.store.create_consumer(&self.consumer).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = recreated {
                    tracing::warn!(error = %e, "could not recreate the consumer group");
                    shutdown.sleep(backoff.next_delay()).await;
                }
                self.after_failure(permits, shutdown)
            }
            Err(e) if e.is_fatal() => {
                self.fatal.report(e);
                Next::Stop
            }
            Err(e) => {
                let wait = backoff.next_delay();
                if let Some(suppressed) = jobstream_core::throttle::warnings().allow("fetcher.read")
                {
                    tracing::warn!(suppressed, error = %e, retry_in_ms = wait.as_millis() as u64, "fetching jobs failed; reconnecting");
                }
                self.reader_id.store(0, Ordering::SeqCst);
                if let Some(c) = conn.take() {
                    c.discard();
                }
                let next = self.after_failure(permits, shutdown);
                shutdown.sleep(wait).await;
                next
            }
        }
    }

    /// Takes up to `want` tokens of the queue's rate limit: how many were
    /// granted, or how long to wait (holding no slot) when none is due yet
    /// (at most a second) or the limiter cannot be reached.
    async fn tokens(
        &self,
        limit: &jobstream_core::RateLimit,
        want: usize,
    ) -> Result<usize, Duration> {
        match self.store.take_tokens(limit, want).await {
            Ok((granted, _)) if granted > 0 => Ok(granted),
            Ok((_, wait)) => {
                self.dispatcher
                    .events
                    .emit(crate::events::Event::RateLimited {
                        queue: self.store.keys().name().as_str(),
                    });
                Err(wait.clamp(Duration::from_millis(1), Duration::from_secs(1)))
            }
            Err(e) if e.is_fatal() => {
                self.fatal.report(e);
                Err(Duration::ZERO)
            }
            Err(e) => {
                if let Some(suppressed) = jobstream_core::throttle::warnings().allow("fetcher.rate")
                {
                    tracing::warn!(suppressed, error = %e, "cannot take rate-limit tokens; retrying");
                }
                Err(Duration::from_millis(200))
            }
        }
    }

    /// With less than half a batch, lets running handlers finish first (a
    /// few task yields, no timer) and takes the slots they free: a busy
    /// worker reads in larger batches, so fewer round trips per job.
    async fn gather(&self, permits: &mut Vec<Permit>) {
        const YIELDS: usize = 8;
        for _ in 0..YIELDS {
            if permits.len() * 2 >= self.max_batch {
                return;
            }
            tokio::task::yield_now().await;
            let more = self.max_batch - permits.len();
            permits.extend(self.slots.collect_more(self.lane, more));
        }
    }

    async fn connect(&self) -> jobstream_core::Result<BlockingConn> {
        let mut c = self.store.redis().blocking().await?;
        let id = self.store.client_id(&mut c).await?;
        self.reader_id.store(id, Ordering::SeqCst);
        Ok(c)
    }

    /// Claims up to `max` jobs of dead workers (those this worker is still
    /// running excepted). Errors are handled here: nothing is claimed.
    async fn claim(&self, max: usize) -> Vec<(StreamEntry, u64)> {
        let claimed = match self.reclaimer.claim(max).await {
            Ok(claimed) => claimed,
            Err(e) => {
                if e.is_fatal() {
                    self.fatal.report(e);
                } else {
                    if let Some(suppressed) =
                        jobstream_core::throttle::warnings().allow("fetcher.reclaim")
                    {
                        tracing::warn!(suppressed, error = %e, "reclaiming abandoned jobs failed; will retry");
                    }
                }
                return Vec::new();
            }
        };
        let mut entries = Vec::with_capacity(claimed.len());
        for c in claimed {
            // Our own job, still running: its lease lapsed (Redis was
            // away longer than the visibility timeout) and the claim
            // gave it back to us. Running it a second time here would
            // help no one; the claim has renewed the lease.
            if self.dispatcher.inflight.contains(self.lane, &c.entry.id) {
                tracing::info!(entry_id = %c.entry.id, "reclaimed a job this worker is still running; not starting it twice");
                continue;
            }
            entries.push((c.entry, c.deliveries));
        }
        entries
    }

    /// Claims jobs of dead workers with the slots held; returns the slots
    /// left over, or None when shutdown came first.
    async fn reclaim(&self, permits: Vec<Permit>, shutdown: &mut Shutdown) -> Option<Vec<Permit>> {
        let entries = self.claim(permits.len()).await;
        self.start(entries, permits, shutdown).await
    }

    /// Starts `entries`, one per permit, and returns the permits left over.
    /// Entries beyond the permits (a promised slot was taken by an active
    /// lane meanwhile) go straight back to the queue, where any worker can
    /// take them: a job never waits here for a slot. Entries are given back
    /// too when shutdown began: None.
    async fn start(
        &self,
        entries: Vec<(StreamEntry, u64)>,
        permits: Vec<Permit>,
        shutdown: &mut Shutdown,
    ) -> Option<Vec<Permit>> {
        if shutdown.is_set() {
            if !entries.is_empty() {
                self.give_back(entries.iter().map(|(e, _)| e.id.as_str()))
                    .await;
            }
            return None;
        }
        let mut entries = entries;
        if self.paused.is_paused(self.lane) && !entries.is_empty() {
            // Read as the pause was seen: back to the queue unstarted, where
            // they wait for the resume. Jobs claimed from dead workers
            // (delivered before) start: giving them back would reset the
            // delivery count that stops a job that kills its workers.
            let (claimed, fresh): (Vec<_>, Vec<_>) = entries
                .into_iter()
                .partition(|(_, deliveries)| *deliveries > 1);
            if !fresh.is_empty() {
                self.give_back(fresh.iter().map(|(e, _)| e.id.as_str()))
                    .await;
            }
            entries = claimed;
        }
        let mut permits = permits;
        let left = permits.split_off(entries.len().min(permits.len()));
        let mut entries = entries.into_iter();
        for permit in permits {
            let Some((entry, deliveries)) = entries.next() else {
                break;
            };
            self.dispatcher
                .dispatch(self.lane, entry, deliveries, permit);
        }
        let extra: Vec<(StreamEntry, u64)> = entries.collect();
        if !extra.is_empty() {
            self.give_back(extra.iter().map(|(e, _)| e.id.as_str()))
                .await;
        }
        Some(left)
    }

    /// Jobs fetched that will not start here (shutdown began, or no slot
    /// was left for them) go straight back to `ready`.
    async fn give_back(&self, ids: impl Iterator<Item = &str>) {
        let ids: Vec<&str> = ids.collect();
        match self.store.requeue(&self.consumer, &ids).await {
            Ok(n) => tracing::debug!(
                queue = %self.store.keys().name(),
                requeued = n,
                "gave fetched jobs back to the queue"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not give fetched jobs back; they return after the visibility timeout")
            }
        }
    }
}
