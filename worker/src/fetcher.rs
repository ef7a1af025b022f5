//! Fetches new jobs with a blocking `XREADGROUP`, never more than there are
//! free handler slots, and starts each one at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use jobstream_core::{BlockingConn, QueueStore, Reconnect, StreamEntry, Timings};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::processor::Dispatcher;
use crate::reclaimer::Reclaimer;
use crate::shutdown::{Fatal, Shutdown};

pub(crate) struct Fetcher {
    pub(crate) store: QueueStore,
    pub(crate) consumer: String,
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) slots: Arc<Semaphore>,
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
        // Whether the last read filled every slot it asked for: the queue
        // has a backlog, so waiting a moment for more slots pays off.
        let mut backlog = false;
        while !shutdown.is_set() {
            let first = tokio::select! {
                p = Arc::clone(&self.slots).acquire_owned() => p,
                _ = shutdown.wait() => break,
            };
            let Ok(first) = first else { break };
            let mut permits = vec![first];
            self.take_free_slots(&mut permits, backlog).await;
            if Instant::now() >= next_reclaim {
                next_reclaim = Instant::now() + self.timings.reclaim_interval;
                permits = self.reclaim(permits).await;
                if permits.is_empty() {
                    continue;
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
                        shutdown.sleep(wait).await;
                        continue;
                    }
                },
            };
            if shutdown.is_set() {
                break;
            }
            // Wake up in time for the next reclaim pass.
            let block = self
                .timings
                .block
                .min(next_reclaim.saturating_duration_since(Instant::now()))
                .max(std::time::Duration::from_millis(1));
            let read = self
                .store
                .read(c, &self.consumer, permits.len(), block)
                .await;
            match read {
                Ok(entries) => {
                    backoff.reset();
                    backlog = entries.len() == permits.len();
                    if shutdown.is_set() && !entries.is_empty() {
                        self.give_back(entries).await;
                        break;
                    }
                    self.start(entries, permits);
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
                    shutdown.sleep(wait).await;
                }
            }
        }
        self.reader_id.store(0, Ordering::SeqCst);
    }

    /// Adds every free slot to `permits`, up to the batch size. With a
    /// backlog and less than half a batch free, it first lets running
    /// handlers finish (a few task yields, no timer), so a busy worker reads
    /// in larger batches: fewer round trips per job. An idle worker reads at
    /// once with what it has.
    async fn take_free_slots(&self, permits: &mut Vec<OwnedSemaphorePermit>, backlog: bool) {
        const YIELDS: usize = 8;
        for round in 0..=YIELDS {
            while permits.len() < self.max_batch {
                match Arc::clone(&self.slots).try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            if !backlog || round == YIELDS || permits.len() * 2 >= self.max_batch {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    async fn connect(&self) -> jobstream_core::Result<BlockingConn> {
        let mut c = self.store.redis().blocking().await?;
        let id = self.store.client_id(&mut c).await?;
        self.reader_id.store(id, Ordering::SeqCst);
        Ok(c)
    }

    /// Claims jobs of dead workers with the slots held; returns the slots
    /// left over.
    async fn reclaim(&self, mut permits: Vec<OwnedSemaphorePermit>) -> Vec<OwnedSemaphorePermit> {
        match self.reclaimer.claim(permits.len()).await {
            Ok(claimed) => {
                for c in claimed {
                    // Our own job, still running: its lease lapsed (Redis was
                    // away longer than the visibility timeout) and the claim
                    // gave it back to us. Running it a second time here would
                    // help no one; the claim has renewed the lease.
                    if self.dispatcher.inflight.contains(&c.entry.id) {
                        tracing::info!(entry_id = %c.entry.id, "reclaimed a job this worker is still running; not starting it twice");
                        continue;
                    }
                    let Some(permit) = permits.pop() else { break };
                    self.dispatcher.dispatch(c.entry, c.deliveries, permit);
                }
            }
            Err(e) if e.is_fatal() => self.fatal.report(e),
            Err(e) => tracing::warn!(error = %e, "reclaiming abandoned jobs failed; will retry"),
        }
        permits
    }

    fn start(&self, entries: Vec<StreamEntry>, permits: Vec<OwnedSemaphorePermit>) {
        // Redis never returns more than COUNT = permits.len() entries; any
        // permits left over are released when the iterator is dropped.
        for (entry, permit) in entries.into_iter().zip(permits) {
            self.dispatcher.dispatch(entry, 1, permit);
        }
    }

    /// Jobs fetched after shutdown began go straight back to `ready`.
    async fn give_back(&self, entries: Vec<StreamEntry>) {
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        match self.store.requeue(&self.consumer, &ids).await {
            Ok(n) => tracing::info!(
                requeued = n,
                "gave fetched jobs back to the queue on shutdown"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not give fetched jobs back; they return after the visibility timeout")
            }
        }
    }
}
