//! The jobs this worker holds: fetched and not yet settled in Redis. The
//! lease refresher extends them, shutdown aborts what is left after the
//! grace period. Redis's pending entries list stays the record of truth;
//! this is only the local view of it, touched when a job is dispatched
//! (twice: the entry, then its task) and once per flush by the acker.
//!
//! Jobs are keyed by lane (the stream they came from) and entry id: entry
//! ids repeat across streams.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::AbortHandle;

/// The index of a lane (one stream) in the worker's list of lanes.
pub(crate) type LaneId = usize;

/// Per lane, entry id to the task running it (None until it is spawned,
/// or while it waits for a slot). Nested, so a lookup by `&str` needs no
/// key allocation on the hot path.
type Jobs = HashMap<LaneId, HashMap<String, Option<AbortHandle>>>;

#[derive(Clone, Default)]
pub(crate) struct Inflight {
    jobs: Arc<Mutex<Jobs>>,
}

impl Inflight {
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every operation is a single insert or remove), so poison is ignored.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, lane: LaneId, entry_id: &str) {
        self.lock()
            .entry(lane)
            .or_default()
            .insert(entry_id.to_owned(), None);
    }

    /// Records the task running `entry_id`, unless it already settled.
    pub(crate) fn set_task(&self, lane: LaneId, entry_id: &str, task: AbortHandle) {
        if let Some(slot) = self
            .lock()
            .get_mut(&lane)
            .and_then(|jobs| jobs.get_mut(entry_id))
        {
            *slot = Some(task);
        }
    }

    pub(crate) fn remove_many<'a>(&self, ids: impl IntoIterator<Item = (LaneId, &'a str)>) {
        let mut jobs = self.lock();
        for (lane, id) in ids {
            if let Some(lane) = jobs.get_mut(&lane) {
                lane.remove(id);
            }
        }
    }

    pub(crate) fn contains(&self, lane: LaneId, entry_id: &str) -> bool {
        self.lock()
            .get(&lane)
            .is_some_and(|jobs| jobs.contains_key(entry_id))
    }

    /// The entry ids held, lane by lane.
    pub(crate) fn ids_by_lane(&self) -> HashMap<LaneId, Vec<String>> {
        self.lock()
            .iter()
            .map(|(lane, jobs)| (*lane, jobs.keys().cloned().collect()))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    /// Aborts every task still running and returns their jobs, lane by
    /// lane. Jobs whose task finished are left alone: their outcome is on
    /// its way to the acker.
    pub(crate) fn abort_running(&self) -> HashMap<LaneId, Vec<String>> {
        let jobs = self.lock();
        let mut aborted: HashMap<LaneId, Vec<String>> = HashMap::new();
        for (lane, jobs) in jobs.iter() {
            for (id, task) in jobs {
                if let Some(task) = task
                    && !task.is_finished()
                {
                    task.abort();
                    aborted.entry(*lane).or_default().push(id.clone());
                }
            }
        }
        aborted
    }
}
