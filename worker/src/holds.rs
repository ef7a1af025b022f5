//! Held keys (a handler met an upstream 429: `JobError::rate_limited`), as
//! this worker last read them: the pause watcher reads every queue's
//! `PREFIX:{Q}:holds` in the same round trip as the paused flags, every
//! 250 ms, so a job pays the `throttle-6` call for a hold only while its
//! queue has one. A hold this worker sets itself is noted at once.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Hold field → until (unix ms, server clock), one map per lane.
#[derive(Clone, Debug, Default)]
pub(crate) struct Holds {
    lanes: Arc<[RwLock<HashMap<String, u64>>]>,
}

impl Holds {
    pub(crate) fn new(lanes: usize) -> Self {
        Self {
            lanes: (0..lanes).map(|_| RwLock::default()).collect(),
        }
    }

    /// Does `lane` hold anything (expired holds included)?
    pub(crate) fn any(&self, lane: usize) -> bool {
        self.lanes
            .get(lane)
            .and_then(|l| l.read().ok().map(|m| !m.is_empty()))
            .unwrap_or(false)
    }

    /// Is `field` of `lane` held at `now_ms`?
    pub(crate) fn held(&self, lane: usize, field: &str, now_ms: u64) -> bool {
        self.lanes
            .get(lane)
            .and_then(|l| l.read().ok().and_then(|m| m.get(field).copied()))
            .is_some_and(|until| until > now_ms)
    }

    /// Replaces every lane's holds with what was read from Redis.
    pub(crate) fn replace(&self, read: Vec<HashMap<String, u64>>) {
        for (lane, map) in self.lanes.iter().zip(read) {
            if let Ok(mut m) = lane.write() {
                *m = map;
            }
        }
    }

    /// Notes a hold this worker set (keeping a longer one).
    pub(crate) fn note(&self, lane: usize, field: String, until: u64) {
        if let Some(Ok(mut m)) = self.lanes.get(lane).map(|l| l.write()) {
            let e = m.entry(field).or_insert(until);
            *e = (*e).max(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_per_lane_and_end_on_time() {
        let h = Holds::new(2);
        assert!(!h.any(0) && !h.any(5));
        h.note(0, "key:a".into(), 1000);
        h.note(0, "key:a".into(), 500);
        assert!(h.any(0) && !h.any(1));
        assert!(h.held(0, "key:a", 999));
        assert!(!h.held(0, "key:a", 1000));
        assert!(!h.held(1, "key:a", 0));
        h.replace(vec![HashMap::new(), HashMap::from([("type:t".into(), 7)])]);
        assert!(!h.any(0) && h.held(1, "type:t", 6));
    }
}
