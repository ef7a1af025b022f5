//! The worker's concurrency slots, shared by every queue it serves.
//!
//! One pool of `concurrency` slots; each queue (a *lane*: one stream) takes
//! slots for the jobs it runs, at most its own cap. Who gets a freed slot
//! is decided here, one slot at a time, among the lanes that have work
//! (*active*: their last read filled every slot it asked for, or they hold
//! a fetched job waiting for a slot):
//! - **weighted**: stride scheduling. Each lane has a *pass* that grows by
//!   `1 / weight` per slot it is given, and the active lane with the lowest
//!   pass gets the next slot. Under backlog everywhere, slots (and so
//!   started jobs) follow the weights; a lane that was idle rejoins at the
//!   others' pass, so idling earns no burst of credit; every active lane
//!   keeps getting slots, so none starves.
//! - **strict**: the first active lane in priority order gets every slot
//!   it asks for; a lower lane gets slots only while every higher one is
//!   idle (its queue came back empty) or at its cap.
//!
//! A slot given to an active lane is *reserved* for it until its fetcher
//! collects it (the fetcher is usually mid-read for a moment): a lane that
//! is away for one round trip loses nothing. A lane that goes idle hands
//! its reservations back at once.
//!
//! Idle lanes block on their stream holding no slot; what they read takes
//! a spare slot, or waits here for one like any active lane's (see
//! `fetcher.rs`).

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// How a worker serving several queues shares its slots among them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueueOrder {
    /// Under backlog, each queue gets slots in proportion to its weight;
    /// no queue with work starves (the default).
    #[default]
    Weighted,
    /// Queues in the order they were added: a queue's jobs start only
    /// while every queue before it is empty (or at its concurrency cap).
    Strict,
}

/// One lane's share of the pool.
#[derive(Debug)]
struct Lane {
    weight: u32,
    cap: usize,
    /// Slots taken: running jobs, slots a fetcher holds, and reservations.
    held: usize,
    /// Reserved for this lane, not yet collected by its fetcher.
    reserved: usize,
    /// How many slots the fetcher asks for while active.
    want: usize,
    active: bool,
    /// Stride scheduling's virtual time for this lane.
    pass: f64,
}

#[derive(Debug)]
struct State {
    free: usize,
    order: QueueOrder,
    closed: bool,
    lanes: Vec<Lane>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    /// One per lane: woken when a slot is reserved for it.
    wake: Vec<Notify>,
}

/// The shared pool. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Slots {
    inner: Arc<Inner>,
}

/// One slot, held by a lane; given back when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    inner: Arc<Inner>,
    lane: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = lock(&self.inner.state);
        let lane = &mut s.lanes[self.lane];
        lane.held = lane.held.saturating_sub(1);
        s.free += 1;
        distribute(&mut s, &self.inner.wake);
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every change under this lock is a few integer updates that cannot
    // panic halfway, so a poisoned lock holds a consistent state.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gives free slots to active lanes, one at a time, by the order's rule.
fn distribute(s: &mut State, wake: &[Notify]) {
    if s.closed {
        return;
    }
    while s.free > 0 {
        let eligible = |l: &Lane| l.active && l.reserved < l.want && l.held < l.cap;
        let pick = match s.order {
            QueueOrder::Strict => s.lanes.iter().position(eligible),
            QueueOrder::Weighted => s
                .lanes
                .iter()
                .enumerate()
                .filter(|(_, l)| eligible(l))
                .min_by(|(_, a), (_, b)| a.pass.total_cmp(&b.pass))
                .map(|(i, _)| i),
        };
        let Some(i) = pick else { return };
        let lane = &mut s.lanes[i];
        lane.reserved += 1;
        lane.held += 1;
        lane.pass += 1.0 / f64::from(lane.weight);
        s.free -= 1;
        wake[i].notify_one();
    }
}

/// A lane's configuration: its weight and its cap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Share {
    pub(crate) weight: u32,
    pub(crate) cap: usize,
}

impl Slots {
    /// A pool of `total` slots over lanes with `shares`. Every lane starts
    /// active, asking for `want` slots: until its first read, a queue may
    /// have a backlog, and the first slots are given by the order's rule
    /// (in strict order, a lower queue must not start before a higher one
    /// had a look).
    pub(crate) fn new(total: usize, order: QueueOrder, shares: &[Share], want: usize) -> Self {
        let lanes = shares
            .iter()
            .map(|s| Lane {
                weight: s.weight.max(1),
                cap: s.cap.clamp(1, total),
                held: 0,
                reserved: 0,
                want: want.max(1),
                active: true,
                pass: 0.0,
            })
            .collect::<Vec<_>>();
        let wake: Vec<Notify> = lanes.iter().map(|_| Notify::new()).collect();
        let mut state = State {
            free: total,
            order,
            closed: false,
            lanes,
        };
        distribute(&mut state, &wake);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                wake,
            }),
        }
    }

    fn permits(&self, lane: usize, n: usize) -> Vec<Permit> {
        (0..n)
            .map(|_| Permit {
                inner: Arc::clone(&self.inner),
                lane,
            })
            .collect()
    }

    /// Marks `lane` as having work, asking for up to `want` slots at a time.
    fn activate(s: &mut State, lane: usize, want: usize) {
        if !s.lanes[lane].active {
            // Rejoin at the pass of the lanes already competing: time spent
            // idle earns no credit.
            let floor = s
                .lanes
                .iter()
                .filter(|l| l.active)
                .map(|l| l.pass)
                .min_by(f64::total_cmp);
            let l = &mut s.lanes[lane];
            l.active = true;
            if let Some(floor) = floor {
                l.pass = l.pass.max(floor);
            }
        }
        s.lanes[lane].want = want.max(1);
    }

    /// Waits until at least one slot is reserved for `lane` (which becomes
    /// active, asking for up to `want`), then takes every reservation, up
    /// to `want`. Empty only once the pool is closed.
    pub(crate) async fn acquire(&self, lane: usize, want: usize) -> Vec<Permit> {
        {
            let mut s = lock(&self.inner.state);
            Self::activate(&mut s, lane, want);
            distribute(&mut s, &self.inner.wake);
        }
        loop {
            let n = self.collect(lane, want);
            if n > 0 {
                return self.permits(lane, n);
            }
            if lock(&self.inner.state).closed {
                return Vec::new();
            }
            self.inner.wake[lane].notified().await;
        }
    }

    /// Takes what is reserved for `lane` now, at most `max` (more is given
    /// back). Never waits.
    pub(crate) fn collect_more(&self, lane: usize, max: usize) -> Vec<Permit> {
        let n = self.collect(lane, max);
        self.permits(lane, n)
    }

    fn collect(&self, lane: usize, max: usize) -> usize {
        let mut s = lock(&self.inner.state);
        let l = &mut s.lanes[lane];
        let n = l.reserved.min(max);
        l.reserved -= n;
        n
    }

    /// Slots for an idle `lane`, up to `max`, that no active lane is
    /// waiting for (and within the lane's cap). Never waits; may be empty.
    pub(crate) fn try_acquire(&self, lane: usize, max: usize) -> Vec<Permit> {
        let mut s = lock(&self.inner.state);
        distribute(&mut s, &self.inner.wake);
        if s.closed {
            return Vec::new();
        }
        let l = &s.lanes[lane];
        let n = s.free.min(max).min(l.cap.saturating_sub(l.held));
        s.free -= n;
        s.lanes[lane].held += n;
        drop(s);
        self.permits(lane, n)
    }

    /// How many slots an idle `lane` could take now (free, wanted by no
    /// active lane, within its cap), up to `max`; takes none.
    pub(crate) fn spare(&self, lane: usize, max: usize) -> usize {
        let mut s = lock(&self.inner.state);
        distribute(&mut s, &self.inner.wake);
        if s.closed {
            return 0;
        }
        let l = &s.lanes[lane];
        s.free.min(max).min(l.cap.saturating_sub(l.held))
    }

    /// `lane` has no backlog (its last read came back short): it stops
    /// competing and hands back what was reserved for it.
    pub(crate) fn idle(&self, lane: usize) {
        let mut s = lock(&self.inner.state);
        let l = &mut s.lanes[lane];
        l.active = false;
        l.want = 0;
        let back = std::mem::take(&mut l.reserved);
        l.held -= back;
        s.free += back;
        distribute(&mut s, &self.inner.wake);
    }

    /// No slot is given out any more (shutdown): reservations come back
    /// and every waiting fetcher wakes up empty-handed.
    pub(crate) fn close(&self) {
        let mut s = lock(&self.inner.state);
        s.closed = true;
        let mut back = 0;
        for l in &mut s.lanes {
            let r = std::mem::take(&mut l.reserved);
            l.held -= r;
            l.active = false;
            back += r;
        }
        s.free += back;
        drop(s);
        for w in &self.inner.wake {
            w.notify_one();
        }
    }

    /// Slots held by `lane` (running, fetching or reserved).
    #[cfg(test)]
    fn held(&self, lane: usize) -> usize {
        lock(&self.inner.state).lanes[lane].held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(w: &[(u32, usize)]) -> Vec<Share> {
        w.iter()
            .map(|&(weight, cap)| Share { weight, cap })
            .collect()
    }

    /// Three lanes always backlogged, one slot freed at a time: the slots
    /// follow the weights.
    #[tokio::test]
    async fn under_backlog_slots_follow_the_weights() {
        let slots = Slots::new(
            10,
            QueueOrder::Weighted,
            &shares(&[(6, 10), (3, 10), (1, 10)]),
            10,
        );
        let mut given = [0usize; 3];
        let mut running: Vec<Permit> = Vec::new();
        for round in 0..10_000 {
            for (lane, given) in given.iter_mut().enumerate() {
                for p in slots.collect_more(lane, 10) {
                    *given += 1;
                    running.push(p);
                }
            }
            // Finish the oldest job: one slot frees.
            if !running.is_empty() {
                running.remove(round % running.len());
            }
        }
        let total: usize = given.iter().sum();
        for (lane, share) in [(0, 0.6), (1, 0.3), (2, 0.1)] {
            let got = given[lane] as f64 / total as f64;
            assert!(
                (got - share).abs() < share * 0.05,
                "lane {lane}: {got} of {total} ({given:?})"
            );
        }
    }

    #[tokio::test]
    async fn strict_order_serves_a_lower_lane_only_when_higher_ones_are_idle() {
        let slots = Slots::new(4, QueueOrder::Strict, &shares(&[(1, 4), (1, 4)]), 4);
        // Both start active: the higher lane gets every slot.
        assert_eq!(slots.collect_more(1, 4).len(), 0);
        let high = slots.acquire(0, 4).await;
        assert_eq!(high.len(), 4);
        drop(high);
        // Every freed slot went back to the active higher lane.
        assert_eq!(slots.collect_more(1, 4).len(), 0);
        assert_eq!(slots.held(0), 4);
        slots.idle(0);
        assert_eq!(slots.collect_more(1, 4).len(), 4);
    }

    #[tokio::test]
    async fn a_capped_lane_never_holds_more_than_its_cap() {
        let slots = Slots::new(10, QueueOrder::Weighted, &shares(&[(1, 2), (1, 10)]), 10);
        let slow = slots.acquire(0, 10).await;
        assert_eq!(slow.len(), 2);
        slots.idle(1);
        assert_eq!(slots.try_acquire(0, 10).len(), 0);
        // The fast lane finds the other eight free at once.
        assert_eq!(slots.try_acquire(1, 10).len(), 8);
    }

    #[tokio::test]
    async fn close_wakes_a_waiting_fetcher_empty_handed() {
        let slots = Slots::new(1, QueueOrder::Weighted, &shares(&[(1, 1)]), 1);
        let held = slots.acquire(0, 1).await;
        let s2 = slots.clone();
        let waiter = tokio::spawn(async move { s2.acquire(0, 1).await.len() });
        tokio::task::yield_now().await;
        slots.close();
        assert_eq!(waiter.await.unwrap(), 0);
        drop(held);
    }
}
