//! Fleet-wide pause (`jobstream queue pause Q`, see `jobstream_core::pause`):
//! a watcher reads the paused queues four times a second and tells the
//! fetchers. A fetcher of a paused queue stops fetching: it gives back its
//! slots, ends its blocked read (`CLIENT UNBLOCK`, so it does not wait out
//! its `BLOCK`), and gives back to the queue any job a read returned after
//! the pause was seen. Jobs already running finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jobstream_core::QueueStore;
use tokio::sync::watch;

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
}

impl PauseWatcher {
    /// Reads the paused queues once (so a worker started on a paused queue
    /// never fetches from it), and returns the watcher with the fetchers'
    /// view. Unreadable (Redis away): nothing is paused until it answers.
    pub(crate) async fn start(stores: Vec<QueueStore>) -> (Self, Paused) {
        let initial = match read(&stores).await {
            Ok(flags) => flags,
            Err(e) => {
                tracing::debug!(error = %e, "could not read paused queues");
                vec![false; stores.len()]
            }
        };
        for (store, paused) in stores.iter().zip(&initial) {
            if *paused {
                tracing::info!(queue = %store.keys().name(), "queue is paused: not fetching its jobs until it is resumed");
            }
        }
        let (tx, rx) = watch::channel(initial);
        (Self { stores, tx }, Paused { rx })
    }

    /// Polls until shutdown. A lane that turns paused has its blocked read
    /// ended at once (`reader_ids`, one per lane, 0 when none).
    pub(crate) async fn run(self, reader_ids: Vec<Arc<AtomicI64>>, mut shutdown: Shutdown) {
        while !shutdown.sleep(jobstream_core::pause::POLL_EVERY).await {
            let flags = match read(&self.stores).await {
                Ok(flags) => flags,
                Err(e) => {
                    // Keep the last known state: a Redis outage neither
                    // pauses nor resumes anything.
                    tracing::debug!(error = %e, "could not read paused queues");
                    continue;
                }
            };
            let before = self.tx.borrow().clone();
            if before == flags {
                continue;
            }
            self.tx.send_replace(flags.clone());
            for (lane, store) in self.stores.iter().enumerate() {
                let (was, is) = (before[lane], flags[lane]);
                if is && !was {
                    tracing::info!(queue = %store.keys().name(), "queue paused: no new jobs are fetched; running ones finish");
                    let id = reader_ids.get(lane).map_or(0, |r| r.load(Ordering::SeqCst));
                    if id != 0 {
                        let _ = store.unblock(id).await;
                    }
                } else if was && !is {
                    tracing::info!(queue = %store.keys().name(), "queue resumed");
                }
            }
        }
    }
}

/// One flag per store, from one `HGETALL`.
async fn read(stores: &[QueueStore]) -> jobstream_core::Result<Vec<bool>> {
    let Some(first) = stores.first() else {
        return Ok(Vec::new());
    };
    let paused = first.paused_queues().await?;
    Ok(stores
        .iter()
        .map(|s| paused.contains_key(s.keys().name().as_str()))
        .collect())
}
