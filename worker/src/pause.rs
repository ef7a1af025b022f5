//! Fleet-wide pause (`jobstream queue pause Q`, see `jobstream_core::pause`):
//! a watcher reads the paused queues four times a second and tells the
//! fetchers. A fetcher of a paused queue stops fetching: it gives back its
//! slots, its blocked read is ended (`CLIENT UNBLOCK`, so it does not wait
//! out its `BLOCK`), and a job a read returned after the pause was seen
//! goes back to the queue unstarted. Jobs already running finish, and so
//! do jobs claimed from dead workers before the pause was seen (giving
//! them back would reset their delivery count, which stops poison jobs).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use jobstream_core::QueueStore;
use tokio::sync::watch;

use crate::holds::Holds;
use crate::shutdown::Shutdown;

/// Which lanes are paused, one flag per lane, as last read from Redis.
#[derive(Clone, Debug)]
pub(crate) struct Paused {
    rx: watch::Receiver<Vec<bool>>,
}

impl Paused {
    /// Is `lane` paused?
    pub(crate) fn is_paused(&self, lane: usize) -> bool {
        self.rx.borrow().get(lane).copied().unwrap_or(false)
    }

    /// Waits until `lane` is resumed; false when shutdown came first.
    pub(crate) async fn wait_resumed(&self, lane: usize, shutdown: &mut Shutdown) -> bool {
        let mut rx = self.rx.clone();
        loop {
            if !rx.borrow_and_update().get(lane).copied().unwrap_or(false) {
                return true;
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() {
                    // The watcher is gone (shutdown): stop waiting.
                    return false;
                },
                _ = shutdown.wait() => return false,
            }
        }
    }
}

/// The watcher's side.
pub(crate) struct PauseWatcher {
    stores: Vec<QueueStore>,
    tx: watch::Sender<Vec<bool>>,
    /// The queues' held keys, read in the same round trip.
    holds: Holds,
}

impl PauseWatcher {
    /// Reads the paused queues once (so a worker started on a paused queue
    /// never fetches from it), and returns the watcher with the fetchers'
    /// view. Unreadable within a second (Redis away): nothing is paused
    /// until it answers.
    pub(crate) async fn start(stores: Vec<QueueStore>, holds: Holds) -> (Self, Paused) {
        let first = tokio::time::timeout(std::time::Duration::from_secs(1), read(&stores)).await;
        let initial = match first {
            Ok(Ok((flags, held))) => {
                holds.replace(held);
                flags
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the paused queues; taking none as paused");
                vec![false; stores.len()]
            }
            Err(_) => {
                tracing::warn!("reading the paused queues timed out; taking none as paused");
                vec![false; stores.len()]
            }
        };
        for (store, paused) in stores.iter().zip(&initial) {
            if *paused {
                tracing::info!(queue = %store.keys().name(), "queue is paused: not fetching its jobs until it is resumed");
            }
        }
        let (tx, rx) = watch::channel(initial);
        (Self { stores, tx, holds }, Paused { rx })
    }

    /// Polls until shutdown. While a lane is paused, a blocking read it is
    /// in is ended (`CLIENT UNBLOCK`), on every poll: a read that began
    /// just as the pause was seen is caught by the next one.
    pub(crate) async fn run(self, readers: Vec<LaneReader>, mut shutdown: Shutdown) {
        while !shutdown.sleep(jobstream_core::pause::POLL_EVERY).await {
            let flags = match read(&self.stores).await {
                Ok((flags, held)) => {
                    self.holds.replace(held);
                    flags
                }
                Err(e) => {
                    // Keep the last known state: a Redis outage neither
                    // pauses nor resumes anything.
                    if let Some(suppressed) =
                        jobstream_core::throttle::warnings().allow("pause.read")
                    {
                        tracing::warn!(suppressed, error = %e, "cannot read the paused queues; keeping the last known state");
                    }
                    continue;
                }
            };
            let before = self.tx.borrow().clone();
            if before != flags {
                self.tx.send_replace(flags.clone());
                for (lane, store) in self.stores.iter().enumerate() {
                    match (before[lane], flags[lane]) {
                        (false, true) => {
                            tracing::info!(queue = %store.keys().name(), "queue paused: no new jobs are fetched; running ones finish")
                        }
                        (true, false) => {
                            tracing::info!(queue = %store.keys().name(), "queue resumed")
                        }
                        _ => {}
                    }
                }
            }
            for (lane, store) in self.stores.iter().enumerate() {
                if let (true, Some(reader)) = (flags[lane], readers.get(lane)) {
                    let id = reader.id.load(Ordering::SeqCst);
                    if id != 0 && reader.blocked.load(Ordering::SeqCst) {
                        let _ = store.unblock(id).await;
                    }
                }
            }
        }
    }
}

/// A lane's reading connection, as the pause watcher sees it.
#[derive(Clone, Debug, Default)]
pub(crate) struct LaneReader {
    /// `CLIENT ID` of the fetcher's connection (0 when none).
    pub(crate) id: Arc<AtomicI64>,
    /// The fetcher is in (or about to send) a blocking read.
    pub(crate) blocked: Arc<AtomicBool>,
}

/// One flag per store, from one `HMGET` of just their names, and each
/// store's held keys (`HGETALL` of `PREFIX:{Q}:holds`): one pipeline, one
/// round trip.
type Read = (Vec<bool>, Vec<std::collections::HashMap<String, u64>>);
async fn read(stores: &[QueueStore]) -> jobstream_core::Result<Read> {
    jobstream_core::rate::paused_and_holds(stores).await
}
