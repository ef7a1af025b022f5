//! The jobs this worker holds: fetched and not yet settled in Redis. The
//! lease refresher extends them, shutdown aborts what is left after the
//! grace period. Redis's pending entries list stays the record of truth;
//! this is only the local view of it, touched once per batch by the
//! fetcher and the acker, never by handler tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::task::AbortHandle;

#[derive(Clone, Default)]
pub(crate) struct Inflight {
    jobs: Arc<Mutex<HashMap<String, Option<AbortHandle>>>>,
}

impl Inflight {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Option<AbortHandle>>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (every operation is a single insert or remove), so poison is ignored.
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn insert(&self, entry_id: &str) {
        self.lock().insert(entry_id.to_owned(), None);
    }

    /// Records the task running `entry_id`, unless it already settled.
    pub(crate) fn set_task(&self, entry_id: &str, task: AbortHandle) {
        if let Some(slot) = self.lock().get_mut(entry_id) {
            *slot = Some(task);
        }
    }

    pub(crate) fn remove_many<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut jobs = self.lock();
        for id in ids {
            jobs.remove(id);
        }
    }

    pub(crate) fn contains(&self, entry_id: &str) -> bool {
        self.lock().contains_key(entry_id)
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Aborts every task still running and returns the ids of their jobs.
    /// Jobs whose task finished are left alone: their outcome is on its way
    /// to the acker.
    pub(crate) fn abort_running(&self) -> Vec<String> {
        let jobs = self.lock();
        let mut aborted = Vec::new();
        for (id, task) in jobs.iter() {
            if let Some(task) = task
                && !task.is_finished()
            {
                task.abort();
                aborted.push(id.clone());
            }
        }
        aborted
    }
}
