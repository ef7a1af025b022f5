//! The worker's concurrency slots, shared by every queue it serves.
//!
//! One pool of `concurrency` slots; each queue (a *lane*: one stream) takes
//! slots for the jobs it runs, at most its own cap. Who gets a freed slot
//! is decided here, one slot at a time, among the lanes that have work
//! (*active*: their last read filled every slot it asked for, or they hold
//! a fetched job waiting for a slot, or they are having a look):
//! - **weighted**: stride scheduling on integer virtual time. Each lane has
//!   a *pass* that grows by its stride (`2^64 / weight`) per slot it is
//!   given, and the active lane with the lowest pass gets the next slot.
//!   Under backlog everywhere, slots (and so started jobs) follow the
//!   weights. A lane that becomes active starts at the pool's virtual time
//!   (the pass of the last slot given), give or take one stride: time
//!   spent idle earns no credit, and time spent running alone earns no
//!   debt, so no lane starves when another comes back. Slots a lane was
//!   given but did not use (its read came back short) are refunded.
//! - **strict**: the first active lane in priority order below its cap
//!   gets every slot; a lower lane gets slots only while every higher one
//!   is idle (its queue came back empty) or at its cap.
//!
//! A slot given to an active lane is *reserved* for it until its fetcher
//! collects it (the fetcher is usually mid-read for a moment): a lane that
//! is away for one round trip loses nothing. A lane that goes idle hands
//! its reservations back at once.
//!
//! Idle lanes read only with a slot in sight: they take a *promise* of the
//! spare slots (free, wanted by no active lane, not promised to another
//! idle lane), or read one job when a slot is free but promised elsewhere,
//! and block on their stream holding no slot; when jobs arrive the promise
//! turns into slots. Promises are soft: an active lane may still take the
//! slot, and a job that finds none is given back to its queue at once. An
//! idle lane with no free slot claims nothing: it waits for a new job
//! without claiming it, then competes for a slot as an active lane (see
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

/// Virtual time of one slot at weight 1. Passes are `u128`, so a lane of
/// weight 1 can be given 2^64 slots before they could overflow.
const STRIDE_ONE: u128 = 1 << 64;

/// One lane's share of the pool.
#[derive(Debug)]
struct Lane {
    stride: u128,
    cap: usize,
    /// Slots taken: running jobs, slots a fetcher holds, and reservations.
    held: usize,
    /// Reserved for this lane, not yet collected by its fetcher.
    reserved: usize,
    /// Spare slots promised to this lane's idle read.
    promised: usize,
    active: bool,
    /// Stride scheduling's virtual time for this lane.
    pass: u128,
}

#[derive(Debug)]
struct State {
    free: usize,
    order: QueueOrder,
    closed: bool,
    lanes: Vec<Lane>,
    /// The pass of the last slot given: where a lane that becomes active
    /// starts.
    vtime: u128,
    /// Sum of the lanes' promises.
    promised: usize,
}

impl State {
    /// Whether idle `lane` may read (claim) at all: a slot is free now
    /// (promised to another idle lane or not), the lane is below its cap,
    /// and in strict order no higher lane has work.
    fn may_read(&self, lane: usize) -> bool {
        let l = &self.lanes[lane];
        !self.closed
            && self.free > 0
            && l.held + l.promised < l.cap
            && !(self.order == QueueOrder::Strict
                && self.lanes[..lane]
                    .iter()
                    .any(|l| l.active && l.held < l.cap))
    }

    /// Spare slots `lane` may be promised now: free, and not promised to
    /// another idle lane.
    fn spare(&self, lane: usize) -> usize {
        if !self.may_read(lane) {
            return 0;
        }
        let l = &self.lanes[lane];
        self.free
            .saturating_sub(self.promised)
            .min(l.cap.saturating_sub(l.held + l.promised))
    }
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
        distribute(&mut s, &self.inner);
    }
}

/// Spare slots promised to an idle lane's read; released when dropped
/// unless turned into slots with [`Promise::fulfil`].
#[derive(Debug)]
pub(crate) struct Promise {
    slots: Slots,
    lane: usize,
    /// Slots promised (counted against the spare).
    n: usize,
    /// Jobs the read may ask for: the promise, or one when a slot is free
    /// but promised to another lane (every idle lane can see its jobs
    /// while any slot is free); none when no slot is free.
    read: usize,
}

impl Promise {
    /// How many jobs the read may ask for; 0: do not read.
    pub(crate) fn len(&self) -> usize {
        self.read
    }

    /// How many slots are promised (may be fewer than [`Promise::len`]).
    pub(crate) fn promised(&self) -> usize {
        self.n
    }

    /// Slots for `jobs` jobs that arrived, as many as are free (an active
    /// lane may have taken promised slots meanwhile); the rest of the
    /// promise is released.
    pub(crate) fn fulfil(mut self, jobs: usize) -> Vec<Permit> {
        let n = {
            let mut s = lock(&self.slots.inner.state);
            Self::release(&mut s, self.lane, self.n);
            self.n = 0;
            let l = &s.lanes[self.lane];
            let n = jobs.min(s.free).min(l.cap.saturating_sub(l.held));
            s.free -= n;
            s.lanes[self.lane].held += n;
            distribute(&mut s, &self.slots.inner);
            n
        };
        self.slots.permits(self.lane, n)
    }

    fn release(s: &mut State, lane: usize, n: usize) {
        s.lanes[lane].promised -= n;
        s.promised -= n;
    }
}

impl Drop for Promise {
    fn drop(&mut self) {
        if self.n > 0 {
            let mut s = lock(&self.slots.inner.state);
            Self::release(&mut s, self.lane, self.n);
            distribute(&mut s, &self.slots.inner);
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every change under this lock is a few integer updates that cannot
    // panic halfway, so a poisoned lock holds a consistent state.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Gives free slots to active lanes, one at a time, by the order's rule.
fn distribute(s: &mut State, inner: &Inner) {
    if s.closed {
        return;
    }
    while s.free > 0 {
        let eligible = |l: &Lane| l.active && l.held < l.cap;
        let pick = match s.order {
            QueueOrder::Strict => s.lanes.iter().position(eligible),
            QueueOrder::Weighted => s
                .lanes
                .iter()
                .enumerate()
                .filter(|(_, l)| eligible(l))
                .min_by_key(|(_, l)| l.pass)
                .map(|(i, _)| i),
        };
        let Some(i) = pick else { break };
        let lane = &mut s.lanes[i];
        lane.reserved += 1;
        lane.held += 1;
        s.vtime = lane.pass;
        lane.pass = lane.pass.saturating_add(lane.stride);
        s.free -= 1;
        inner.wake[i].notify_one();
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
    /// active: until its first read, a queue may have a backlog, and the
    /// first slots are given by the order's rule (in strict order, a lower
    /// queue must not start before a higher one had a look).
    pub(crate) fn new(total: usize, order: QueueOrder, shares: &[Share]) -> Self {
        let lanes = shares
            .iter()
            .map(|s| Lane {
                stride: STRIDE_ONE / u128::from(s.weight.max(1)),
                cap: s.cap.clamp(1, total),
                held: 0,
                reserved: 0,
                promised: 0,
                active: true,
                pass: 0,
            })
            .collect::<Vec<_>>();
        let inner = Inner {
            wake: lanes.iter().map(|_| Notify::new()).collect(),
            state: Mutex::new(State {
                free: total,
                order,
                closed: false,
                lanes,
                vtime: 0,
                promised: 0,
            }),
        };
        distribute(&mut lock(&inner.state), &inner);
        Self {
            inner: Arc::new(inner),
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

    /// Marks `lane` as having work.
    fn activate(s: &mut State, lane: usize) {
        let vtime = s.vtime;
        let l = &mut s.lanes[lane];
        if !l.active {
            // Start at the pool's virtual time, give or take one stride:
            // no credit for idling, no debt for having run alone.
            l.pass = l.pass.clamp(
                vtime.saturating_sub(l.stride),
                vtime.saturating_add(l.stride),
            );
            l.active = true;
        }
    }

    /// Waits until at least one slot is reserved for `lane` (which becomes
    /// active), then takes its reservations, up to `max`. Empty only once
    /// the pool is closed.
    pub(crate) async fn acquire(&self, lane: usize, max: usize) -> Vec<Permit> {
        {
            let mut s = lock(&self.inner.state);
            Self::activate(&mut s, lane);
            distribute(&mut s, &self.inner);
        }
        loop {
            let n = self.collect(lane, max);
            if n > 0 {
                return self.permits(lane, n);
            }
            if lock(&self.inner.state).closed {
                return Vec::new();
            }
            self.inner.wake[lane].notified().await;
        }
    }

    /// Takes what is reserved for `lane` now, at most `max`. Never waits.
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

    /// Promises an idle `lane` the spare slots, up to `max`; the promise
    /// may be empty (no slot to spare).
    pub(crate) fn promise(&self, lane: usize, max: usize) -> Promise {
        let mut s = lock(&self.inner.state);
        let n = s.spare(lane).min(max);
        let read = if s.may_read(lane) { n.max(1) } else { 0 };
        s.lanes[lane].promised += n;
        s.promised += n;
        drop(s);
        Promise {
            slots: self.clone(),
            lane,
            n,
            read,
        }
    }

    /// `permits` were given to `lane` but not used (its read came back
    /// short): they go back, and so does the virtual time they cost it.
    /// Call [`Slots::idle`] first when the lane goes idle, so they are not
    /// reserved for it again.
    pub(crate) fn unused(&self, lane: usize, permits: Vec<Permit>) {
        if permits.is_empty() {
            return;
        }
        Self::refund(&mut lock(&self.inner.state), lane, permits.len());
        drop(permits);
    }

    /// Takes back the virtual time of `n` slots `lane` did not use; the
    /// pool's virtual time goes back with it when it was past.
    fn refund(s: &mut State, lane: usize, n: usize) {
        let l = &mut s.lanes[lane];
        l.pass = l.pass.saturating_sub(l.stride.saturating_mul(n as u128));
        s.vtime = s.vtime.min(l.pass);
    }

    /// `lane` has no backlog (its last read came back short): it stops
    /// competing and hands back (and is refunded) what was reserved for it.
    pub(crate) fn idle(&self, lane: usize) {
        let mut s = lock(&self.inner.state);
        let l = &mut s.lanes[lane];
        l.active = false;
        let back = std::mem::take(&mut l.reserved);
        l.held -= back;
        s.free += back;
        Self::refund(&mut s, lane, back);
        distribute(&mut s, &self.inner);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(w: &[(u32, usize)]) -> Vec<Share> {
        w.iter()
            .map(|&(weight, cap)| Share { weight, cap })
            .collect()
    }

    fn held(slots: &Slots, lane: usize) -> usize {
        lock(&slots.inner.state).lanes[lane].held
    }

    fn activate(slots: &Slots, lane: usize) {
        let mut s = lock(&slots.inner.state);
        Slots::activate(&mut s, lane);
        distribute(&mut s, &slots.inner);
    }

    /// Lanes always backlogged, one slot freed at a time: the slots follow
    /// the weights.
    fn shares_under_backlog(weights: &[u32], total: usize, rounds: usize) -> Vec<f64> {
        let caps: Vec<(u32, usize)> = weights.iter().map(|&w| (w, total)).collect();
        let slots = Slots::new(total, QueueOrder::Weighted, &shares(&caps));
        let mut given = vec![0usize; weights.len()];
        let mut running: Vec<Permit> = Vec::new();
        for round in 0..rounds {
            for (lane, given) in given.iter_mut().enumerate() {
                for p in slots.collect_more(lane, total) {
                    *given += 1;
                    running.push(p);
                }
            }
            if !running.is_empty() {
                running.remove(round % running.len());
            }
        }
        let sum: usize = given.iter().sum();
        given.iter().map(|&g| g as f64 / sum as f64).collect()
    }

    #[test]
    fn under_backlog_slots_follow_the_weights() {
        for (weights, total) in [
            (vec![6, 3, 1], 10),
            (vec![1, 1], 1),
            (vec![1, 1000], 4),
            (vec![u32::MAX, 1, 7], 16),
        ] {
            let sum: f64 = weights.iter().map(|&w| f64::from(w)).sum();
            let got = shares_under_backlog(&weights, total, 20_000);
            for (w, g) in weights.iter().zip(&got) {
                let want = f64::from(*w) / sum;
                assert!(
                    (g - want).abs() <= want * 0.05 + 0.001,
                    "weights {weights:?}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn a_lane_back_from_idle_is_not_starved_by_a_lane_that_ran_alone() {
        let slots = Slots::new(1, QueueOrder::Weighted, &shares(&[(1, 1), (1, 1)]));
        slots.idle(1);
        for _ in 0..10_000 {
            drop(slots.collect_more(0, 1));
        }
        slots.idle(0);
        // B comes back first, then A, after A ran alone for long.
        activate(&slots, 1);
        activate(&slots, 0);
        let mut given = [0usize; 2];
        for _ in 0..5_000 {
            for (lane, g) in given.iter_mut().enumerate() {
                *g += slots.collect_more(lane, 1).len();
            }
        }
        assert!(given[0] > 2_000 && given[1] > 2_000, "{given:?}");
    }

    #[test]
    fn slots_given_back_unused_cost_no_virtual_time() {
        let slots = Slots::new(10, QueueOrder::Weighted, &shares(&[(1, 10), (1, 10)]));
        slots.idle(1);
        let before = lock(&slots.inner.state).lanes[0].pass;
        for _ in 0..100 {
            activate(&slots, 0);
            let mut p = slots.collect_more(0, 10);
            let used = p.pop();
            slots.idle(0);
            slots.unused(0, p);
            drop(used);
        }
        let grew = lock(&slots.inner.state).lanes[0].pass - before;
        assert!(grew <= 100 * STRIDE_ONE, "{}", grew / STRIDE_ONE);
    }

    #[test]
    fn strict_order_serves_a_lower_lane_only_when_higher_ones_are_idle() {
        let slots = Slots::new(4, QueueOrder::Strict, &shares(&[(1, 4), (1, 4)]));
        // Both start active: the higher lane gets every slot.
        assert_eq!(slots.collect_more(1, 4).len(), 0);
        let high = slots.collect_more(0, 2);
        assert_eq!(high.len(), 2);
        drop(high);
        // Freed slots go back to the higher lane, even beyond one read.
        assert_eq!(slots.collect_more(1, 4).len(), 0);
        assert_eq!(held(&slots, 0), 4);
        assert_eq!(
            slots.promise(1, 4).len(),
            0,
            "no spare while higher is busy"
        );
        slots.idle(0);
        assert_eq!(slots.collect_more(1, 4).len(), 4);
    }

    #[test]
    fn a_capped_lane_never_holds_more_than_its_cap() {
        let slots = Slots::new(10, QueueOrder::Weighted, &shares(&[(1, 2), (1, 10)]));
        let slow = slots.collect_more(0, 10);
        assert_eq!(slow.len(), 2);
        slots.idle(1);
        assert_eq!(slots.promise(0, 10).len(), 0);
        // The other lane is promised the other eight.
        let p = slots.promise(1, 10);
        assert_eq!(p.len(), 8);
        assert_eq!(p.fulfil(8).len(), 8);
    }

    #[test]
    fn idle_lanes_share_the_spare_slots_and_an_active_lane_may_take_them() {
        let slots = Slots::new(4, QueueOrder::Weighted, &shares(&[(1, 4), (1, 4), (1, 4)]));
        for lane in 0..3 {
            slots.idle(lane);
        }
        let a = slots.promise(0, 4);
        assert_eq!(a.len(), 4);
        // Promised already: the next lane reads one job against the free
        // slots, and a third the same.
        let b = slots.promise(1, 4);
        assert_eq!((b.n, b.len()), (0, 1));
        // An active lane still takes free slots; the promise is soft.
        activate(&slots, 2);
        assert_eq!(slots.collect_more(2, 4).len(), 4);
        assert_eq!(a.fulfil(3).len(), 0);
        drop(b);
        assert_eq!(slots.promise(1, 4).len(), 0, "no free slot: no read");
    }

    #[tokio::test]
    async fn close_wakes_a_waiting_fetcher_empty_handed() {
        let slots = Slots::new(1, QueueOrder::Weighted, &shares(&[(1, 1)]));
        let held = slots.acquire(0, 1).await;
        let s2 = slots.clone();
        let waiter = tokio::spawn(async move { s2.acquire(0, 1).await.len() });
        tokio::task::yield_now().await;
        slots.close();
        assert_eq!(waiter.await.unwrap(), 0);
        drop(held);
    }
}
