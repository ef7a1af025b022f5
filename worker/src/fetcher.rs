//! Fetches new jobs of one lane (one stream) with `XREADGROUP`, never more
//! than the slots it holds, and starts each one at once. A worker serving
//! several queues runs one fetcher per lane, each on its own connection;
//! `slots.rs` decides which lane gets a freed slot.
//!
//! A lane is *active* while its reads come back full (a backlog): it asks
//! the pool for slots, waits its turn, and reads without blocking. Once a
//! read comes back short it goes *idle*: it blocks on its stream (`BLOCK`)
//! holding no slot, asking for as many jobs as there are slots no active
//! lane wants (one at least), and takes the slots when the jobs arrive. A
//! job that finds no slot then (another lane took it meanwhile, or none was
//! free) waits for one like an active lane's: an idle queue never holds
//! slots away from the others, and a job arriving on it is seen at once.
//! Jobs waiting for a slot are leased like running ones, and shutdown
//! gives them back.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use jobstream_core::{BlockingConn, QueueStore, Reconnect, StreamEntry, Timings};

use crate::inflight::LaneId;
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
            let mut permits = Vec::new();
            if active {
                permits = tokio::select! {
                    p = self.slots.acquire(self.lane, self.max_batch) => p,
                    _ = shutdown.wait() => break,
                };
                if permits.is_empty() {
                    break; // the pool is closed: shutting down
                }
                self.gather(&mut permits).await;
            }
            if Instant::now() >= next_reclaim {
                next_reclaim = Instant::now() + self.timings.reclaim_interval;
                if !active {
                    // Free slots, held only for the claim (no blocking).
                    permits = self.slots.try_acquire(self.lane, self.max_batch);
                }
                match self.reclaim(permits, &mut shutdown).await {
                    Some((left, waited)) => {
                        active |= waited;
                        permits = if active { left } else { Vec::new() };
                        if active && permits.is_empty() {
                            continue;
                        }
                    }
                    None => break,
                }
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.connect().await {
                    Ok(c) => {
                        backoff.reset();
                        conn.insert(c)
                    }
                    Err(e) if e.is_fatal() => {
                        self.fatal.report(e);
                        break;
                    }
                    Err(e) => {
                        let wait = backoff.next_delay();
                        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot reach Redis to fetch jobs; retrying");
                        drop(permits);
                        self.go_idle(&mut active);
                        shutdown.sleep(wait).await;
                        continue;
                    }
                },
            };
            if shutdown.is_set() {
                break;
            }
            // An active lane reads what is there, with the slots it holds.
            // An idle one waits for jobs, waking up in time for the next
            // reclaim pass, and holds no slot while it waits: it asks for as
            // many jobs as there are slots to spare now, and takes the
            // slots once the jobs are there.
            let block = (!active).then(|| {
                self.timings
                    .block
                    .min(next_reclaim.saturating_duration_since(Instant::now()))
                    .max(std::time::Duration::from_millis(1))
            });
            let count = if active {
                permits.len()
            } else {
                self.slots.spare(self.lane, self.max_batch).max(1)
            };
            let read = self.store.read(c, &self.consumer, count, block).await;
            match read {
                Ok(entries) => {
                    backoff.reset();
                    if !active {
                        permits = self.slots.try_acquire(self.lane, entries.len());
                    }
                    if shutdown.is_set() && !entries.is_empty() {
                        self.give_back(entries.iter().map(|e| e.id.as_str())).await;
                        break;
                    }
                    let full = entries.len() == count;
                    let entries = entries.into_iter().map(|e| (e, 1)).collect();
                    let Some(waited) = self.start(entries, permits, &mut shutdown).await else {
                        break;
                    };
                    if full || waited {
                        active = true;
                    } else {
                        self.go_idle(&mut active);
                    }
                }
                Err(e) if e.is_no_group() => {
                    tracing::warn!(queue = %self.store.keys().name(), "consumer group is gone (deleted, or Redis lost its data); recreating it");
                    drop(permits);
                    self.go_idle(&mut active);
                    let recreated = match self.store.ensure_group().await {
                        Ok(_) => self.store.create_consumer(&self.consumer).await,
                        Err(e) => Err(e),
                    };
                    if let Err(e) = recreated {
                        tracing::warn!(error = %e, "could not recreate the consumer group");
                        shutdown.sleep(backoff.next_delay()).await;
                    }
                }
                Err(e) if e.is_fatal() => {
                    self.fatal.report(e);
                    break;
                }
                Err(e) => {
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "fetching jobs failed; reconnecting");
                    self.reader_id.store(0, Ordering::SeqCst);
                    if let Some(c) = conn.take() {
                        c.discard();
                    }
                    drop(permits);
                    self.go_idle(&mut active);
                    shutdown.sleep(wait).await;
                }
            }
        }
        self.reader_id.store(0, Ordering::SeqCst);
    }

    fn go_idle(&self, active: &mut bool) {
        if *active {
            *active = false;
            self.slots.idle(self.lane);
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

    /// Claims jobs of dead workers with the slots held (one job at least,
    /// which then waits for a slot); returns the slots left over and
    /// whether a job had to wait for a slot (the lane is active then), or
    /// None when shutdown came first.
    async fn reclaim(
        &self,
        permits: Vec<Permit>,
        shutdown: &mut Shutdown,
    ) -> Option<(Vec<Permit>, bool)> {
        let want = permits.len().max(1);
        let claimed = match self.reclaimer.claim(want).await {
            Ok(claimed) => claimed,
            Err(e) => {
                if e.is_fatal() {
                    self.fatal.report(e);
                } else {
                    tracing::warn!(error = %e, "reclaiming abandoned jobs failed; will retry");
                }
                return Some((permits, false));
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
        let mut permits = permits;
        let keep = permits.len().saturating_sub(entries.len());
        let rest = permits.split_off(permits.len() - keep);
        let waited = self.start(entries, permits, shutdown).await?;
        Some((rest, waited))
    }

    /// Starts `entries`, one per permit. Entries beyond the permits (at
    /// most one: a read or claim made without a slot) are held, under
    /// lease, until the pool gives this lane a slot (which makes the lane
    /// active). Returns whether any had to wait, or None when shutdown came
    /// first (the held entries were given back).
    async fn start(
        &self,
        entries: Vec<(StreamEntry, u64)>,
        permits: Vec<Permit>,
        shutdown: &mut Shutdown,
    ) -> Option<bool> {
        let mut entries = entries.into_iter();
        let mut permits = permits.into_iter();
        for permit in permits.by_ref() {
            let Some((entry, deliveries)) = entries.next() else {
                break;
            };
            self.dispatcher
                .dispatch(self.lane, entry, deliveries, permit);
        }
        drop(permits);
        let mut waiting: Vec<(StreamEntry, u64)> = entries.collect();
        let waited = !waiting.is_empty();
        for (e, _) in &waiting {
            self.dispatcher.inflight.insert(self.lane, &e.id);
        }
        while !waiting.is_empty() {
            let got = tokio::select! {
                p = self.slots.acquire(self.lane, waiting.len()) => p,
                _ = shutdown.wait() => Vec::new(),
            };
            if got.is_empty() {
                let ids: Vec<String> = waiting.iter().map(|(e, _)| e.id.clone()).collect();
                self.give_back(ids.iter().map(String::as_str)).await;
                self.dispatcher
                    .inflight
                    .remove_many(ids.iter().map(|id| (self.lane, id.as_str())));
                return None;
            }
            let rest = waiting.split_off(got.len().min(waiting.len()));
            for ((entry, deliveries), permit) in waiting.into_iter().zip(got) {
                self.dispatcher
                    .dispatch(self.lane, entry, deliveries, permit);
            }
            waiting = rest;
        }
        Some(waited)
    }

    /// Jobs fetched after shutdown began go straight back to `ready`.
    async fn give_back(&self, ids: impl Iterator<Item = &str>) {
        let ids: Vec<&str> = ids.collect();
        match self.store.requeue(&self.consumer, &ids).await {
            Ok(n) => tracing::info!(
                queue = %self.store.keys().name(),
                requeued = n,
                "gave fetched jobs back to the queue on shutdown"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not give fetched jobs back; they return after the visibility timeout")
            }
        }
    }
}
