//! Wrong credentials are limited per client address, so a weak basic-auth
//! password or token cannot be guessed at the speed of HTTP.
//!
//! Each address has a budget of [`BURST`] wrong credentials, refilled at
//! one per [`REFILL`]. With the budget spent, every request from that
//! address that presents a token, a password or a login is answered 429
//! before its credential is looked at (answering the right one would tell
//! a guesser it was right); a valid login cookie still works, since it is
//! signed with a random secret and cannot be guessed (see `session`). A credential that was already refused recently
//! costs nothing again: a stale browser tab or a script retrying an old
//! token is not guessing, and must not lock its address out.
//!
//! All addresses together share a second budget, [`GLOBAL_BURST`] wrong
//! credentials refilled one per [`GLOBAL_REFILL`]: many addresses do not
//! multiply the guessing rate. Spent, it answers 429 to new credentials
//! from anywhere (login cookies still work).
//!
//! The address is the TCP peer (an IPv6 client by its /56, what one
//! customer or tunnel is usually given): without
//! `ConnectInfo` (a router served without
//! `into_make_service_with_connect_info`), or behind a proxy, every client
//! shares one budget.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong credentials an address may send before it waits.
pub(crate) const BURST: u32 = 20;
/// One more wrong credential allowed per this long.
pub(crate) const REFILL: Duration = Duration::from_secs(3);
/// Wrong credentials all addresses together may send before they wait:
/// guesses spread over many addresses (a tunnel broker hands out /48s)
/// still go no faster than [`GLOBAL_REFILL`] allows.
pub(crate) const GLOBAL_BURST: u32 = 100;
/// One more wrong credential, from anywhere, per this long.
pub(crate) const GLOBAL_REFILL: Duration = Duration::from_millis(500);
/// Distinct refused credentials remembered per address.
const RECENT: usize = 16;
/// Addresses tracked; past this the ones whose budget is whole again are
/// forgotten, and while that leaves no room (a flood from more addresses
/// than this) new addresses share one budget.
const MAX_PEERS: usize = 10_000;

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// No peer address known.
    Unknown,
    V4(u32),
    /// The /56 prefix.
    V6(u64),
}

impl Peer {
    pub(crate) fn of(addr: Option<SocketAddr>) -> Self {
        match addr.map(|a| a.ip().to_canonical()) {
            None => Peer::Unknown,
            Some(IpAddr::V4(v4)) => Peer::V4(u32::from(v4)),
            Some(IpAddr::V6(v6)) => Peer::V6((u128::from(v6) >> 72) as u64),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Unknown => f.write_str("an unknown address"),
            Peer::V4(v4) => write!(f, "{}", std::net::Ipv4Addr::from(*v4)),
            Peer::V6(prefix) => {
                let ip = std::net::Ipv6Addr::from(u128::from(*prefix) << 72);
                write!(f, "{ip}/56")
            }
        }
    }
}

/// A token bucket of wrong credentials, counted in thousandths so that
/// it refills by fractions.
#[derive(Debug)]
struct Budget {
    /// Wrong credentials still allowed, times 1000.
    milli: u64,
    /// The most it holds, times 1000.
    full: u64,
    /// One more comes back per this long.
    per: Duration,
    at: Instant,
    recent: VecDeque<u64>,
    logged_at: Option<Instant>,
}

impl Budget {
    fn new(burst: u32, per: Duration, now: Instant) -> Self {
        let full = u64::from(burst) * 1000;
        Budget {
            milli: full,
            full,
            per,
            at: now,
            recent: VecDeque::new(),
            logged_at: None,
        }
    }

    /// An address's budget, whole.
    fn per_address(now: Instant) -> Self {
        Self::new(BURST, REFILL, now)
    }

    fn refill(&mut self, now: Instant) {
        let per = self.per.as_millis() as u64;
        let gained = now.saturating_duration_since(self.at).as_millis() as u64 * 1000 / per.max(1);
        self.milli = (self.milli + gained).min(self.full);
        self.at = now;
    }

    fn is_whole(&self) -> bool {
        self.milli >= self.full
    }

    /// How long until one unit is back.
    fn wait(&self) -> Duration {
        let missing = 1000u64.saturating_sub(self.milli);
        Duration::from_millis(
            (missing * self.per.as_millis() as u64)
                .div_ceil(1000)
                .max(1),
        )
    }

    fn give_back(&mut self) {
        self.milli = (self.milli + 1000).min(self.full);
    }
}

/// Which kind of secret a credential was tried as: the same string tried
/// as a token and as a password is two guesses.
#[derive(Debug, Clone, Copy, Hash)]
pub(crate) enum Kind {
    /// A Bearer token or a login form's token.
    Token,
    /// Basic auth's `user:password`.
    Basic,
}

/// A guess in progress: one unit of its address's budget is held until
/// [`AuthThrottle::end`] says how it went, so parallel requests cannot
/// spend more than the budget.
#[derive(Debug)]
#[must_use]
pub(crate) struct Attempt {
    slot: Peer,
}

#[derive(Debug)]
struct Table {
    budgets: HashMap<Peer, Budget>,
    pruned_at: Option<Instant>,
    /// Every address's wrong credentials together.
    global: Budget,
}

impl Table {
    /// Whose budget `peer` spends: its own, or (the table full of
    /// addresses still paying off wrong guesses) the shared one of
    /// [`Peer::Unknown`]; never a reset of everyone's.
    fn slot(&mut self, peer: Peer, now: Instant) -> Peer {
        if self.budgets.contains_key(&peer) || self.budgets.len() < MAX_PEERS {
            return peer;
        }
        // Forget the addresses whose budget is whole again, at most once
        // a second (a flood of new addresses must not cost a sweep each).
        if self
            .pruned_at
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1))
        {
            self.pruned_at = Some(now);
            self.budgets.retain(|p, b| {
                b.refill(now);
                *p == Peer::Unknown || !b.is_whole()
            });
        }
        if self.budgets.len() < MAX_PEERS {
            peer
        } else {
            Peer::Unknown
        }
    }
}

/// The per-address budgets of wrong credentials, and the global one.
#[derive(Debug)]
pub(crate) struct AuthThrottle {
    table: Mutex<Table>,
    /// Keyed per process: the fingerprints of refused credentials mean
    /// nothing outside it.
    hasher: RandomState,
}

impl Default for AuthThrottle {
    fn default() -> Self {
        Self::with_global_burst(GLOBAL_BURST)
    }
}

impl AuthThrottle {
    fn with_global_burst(global_burst: u32) -> Self {
        Self {
            table: Mutex::new(Table {
                budgets: HashMap::new(),
                pruned_at: None,
                global: Budget::new(global_burst, GLOBAL_REFILL, Instant::now()),
            }),
            hasher: RandomState::default(),
        }
    }

    /// Takes one unit of `peer`'s budget for a credential about to be
    /// checked, or says how long to wait when the budget is spent.
    pub(crate) fn begin(&self, peer: Peer, now: Instant) -> Result<Attempt, Duration> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let slot = table.slot(peer, now);
        table.global.refill(now);
        let global_wait = (table.global.milli < 1000).then(|| table.global.wait());
        let budget = table
            .budgets
            .entry(slot)
            .or_insert_with(|| Budget::per_address(now));
        budget.refill(now);
        if budget.milli < 1000 {
            return Err(budget.wait());
        }
        if let Some(wait) = global_wait {
            return Err(wait);
        }
        budget.milli -= 1000;
        table.global.milli -= 1000;
        Ok(Attempt { slot })
    }

    /// Ends `attempt`: a right credential (`wrong: None`) or a wrong one
    /// refused recently gives the unit back; a new wrong one keeps it
    /// spent. True when that spent the budget and it was not said in the
    /// last minute (worth one log line).
    pub(crate) fn end(&self, attempt: Attempt, wrong: Option<(Kind, &[u8])>, now: Instant) -> bool {
        let fingerprint = wrong.map(|w| self.hasher.hash_one(w));
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let Table {
            budgets, global, ..
        } = &mut *table;
        let Some(budget) = budgets.get_mut(&attempt.slot) else {
            return false;
        };
        // Not a new wrong guess: both units come back.
        if fingerprint.is_none_or(|f| budget.recent.contains(&f)) {
            budget.give_back();
            global.give_back();
            return false;
        }
        let Some(fingerprint) = fingerprint else {
            return false;
        };
        if budget.recent.len() == RECENT {
            budget.recent.pop_front();
        }
        budget.recent.push_back(fingerprint);
        let say = budget.milli < 1000
            && budget
                .logged_at
                .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(60));
        if say {
            budget.logged_at = Some(now);
        }
        say
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Peer {
        Peer::of(Some(SocketAddr::new(s.parse().unwrap(), 1)))
    }

    /// One wrong guess from `p`: false when it was refused outright.
    fn guess(t: &AuthThrottle, p: Peer, what: &str, now: Instant) -> bool {
        match t.begin(p, now) {
            Ok(a) => {
                let _ = t.end(a, Some((Kind::Token, what.as_bytes())), now);
                true
            }
            Err(_) => false,
        }
    }

    #[test]
    fn a_spent_budget_waits_and_refills() {
        let t = AuthThrottle::default();
        let (p, start) = (v4("10.0.0.1"), Instant::now());
        for i in 0..BURST {
            assert!(guess(&t, p, &format!("guess {i}"), start), "guess {i}");
        }
        let wait = t.begin(p, start).unwrap_err();
        assert!(wait <= REFILL && wait > REFILL / 2, "{wait:?}");
        // Another address is not held up.
        assert!(t.begin(v4("10.0.0.2"), start).is_ok());
        // One refill later, one more guess, then none.
        let later = start + REFILL;
        assert!(guess(&t, p, "one more", later));
        assert!(!guess(&t, p, "and another", later));
        // A full refill later, the whole burst again.
        let much_later = later + REFILL * BURST;
        for i in 0..BURST {
            assert!(guess(&t, p, &format!("again {i}"), much_later));
        }
    }

    #[test]
    fn right_credentials_and_repeats_cost_nothing() {
        let t = AuthThrottle::default();
        let (p, now) = (v4("10.0.0.1"), Instant::now());
        for _ in 0..1000 {
            assert!(guess(&t, p, "an old token", now));
            let a = t.begin(p, now).unwrap();
            assert!(!t.end(a, None, now));
        }
        // 19 more distinct guesses fit; the 20th distinct is the last.
        for i in 0..BURST - 1 {
            assert!(guess(&t, p, &format!("new {i}"), now));
        }
        assert!(t.begin(p, now).is_err());
    }

    #[test]
    fn the_same_string_as_token_and_as_password_is_two_guesses() {
        let t = AuthThrottle::default();
        let (p, now) = (v4("10.0.0.1"), Instant::now());
        for i in 0..BURST / 2 {
            let s = format!("guess {i}");
            for kind in [Kind::Token, Kind::Basic] {
                let a = t.begin(p, now).unwrap();
                let _ = t.end(a, Some((kind, s.as_bytes())), now);
            }
        }
        assert!(t.begin(p, now).is_err());
    }

    #[test]
    fn parallel_attempts_cannot_overspend() {
        let t = AuthThrottle::default();
        let (p, now) = (v4("10.0.0.1"), Instant::now());
        // All begun before any ends: only the budget's worth get through.
        let begun: Vec<Attempt> = (0..100).filter_map(|_| t.begin(p, now).ok()).collect();
        assert_eq!(begun.len(), BURST as usize);
        for (i, a) in begun.into_iter().enumerate() {
            let _ = t.end(a, Some((Kind::Token, format!("g{i}").as_bytes())), now);
        }
        assert!(t.begin(p, now).is_err());
    }

    #[test]
    fn spending_the_budget_is_said_once_a_minute() {
        let t = AuthThrottle::default();
        let (p, now) = (v4("10.0.0.1"), Instant::now());
        let said = |t: &AuthThrottle, i: u32, at: Instant| {
            let a = t.begin(p, at).unwrap();
            t.end(a, Some((Kind::Token, format!("g{i}").as_bytes())), at)
        };
        let says: Vec<bool> = (0..BURST).map(|i| said(&t, i, now)).collect();
        assert_eq!(says.iter().filter(|&&s| s).count(), 1);
        assert!(says[BURST as usize - 1]);
        // Spent again 3 s on: not said again within the minute.
        assert!(!said(&t, 100, now + REFILL));
        // A minute on, spent again: said again.
        let later = now + Duration::from_secs(63);
        let says: Vec<bool> = (0..BURST).map(|i| said(&t, 200 + i, later)).collect();
        assert_eq!(says.iter().filter(|&&s| s).count(), 1);
    }

    #[test]
    fn guesses_spread_over_addresses_meet_the_global_budget() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        // Five guesses from each of many addresses: the global budget ends it.
        let mut made = 0;
        for i in 0..100u32 {
            for g in 0..5 {
                if guess(&t, Peer::V4(i), &format!("{i}-{g}"), now) {
                    made += 1;
                }
            }
        }
        assert_eq!(made, GLOBAL_BURST);
        let wait = t.begin(Peer::V4(9999), now).unwrap_err();
        assert!(wait <= GLOBAL_REFILL, "{wait:?}");
        // Right credentials and repeats give their units back.
        let later = now + GLOBAL_REFILL;
        let a = t.begin(Peer::V4(9999), later).unwrap();
        assert!(!t.end(a, None, later));
        assert!(t.begin(Peer::V4(9998), later).is_ok());
    }

    #[test]
    fn an_ipv6_client_is_its_56() {
        let a = Peer::of(Some("[2001:db8:1:2:aaaa::1]:5".parse().unwrap()));
        let b = Peer::of(Some("[2001:db8:1:ff:bbbb::9]:6".parse().unwrap()));
        let c = Peer::of(Some("[2001:db8:1:100::1]:6".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1::/56");
        assert_eq!(
            Peer::of(Some("[::ffff:10.0.0.1]:5".parse().unwrap())),
            v4("10.0.0.1")
        );
        assert_eq!(Peer::of(None), Peer::Unknown);
    }

    #[test]
    fn a_flood_of_addresses_shares_one_budget_and_resets_no_one() {
        // The global budget out of the way: this is about the table.
        let t = AuthThrottle::with_global_burst(1_000_000);
        let now = Instant::now();
        let attacker = Peer::V4(u32::MAX);
        for i in 0..BURST {
            assert!(guess(&t, attacker, &format!("g{i}"), now));
        }
        // Fill the table exactly (the attacker is in it).
        for i in 0..MAX_PEERS as u32 - 1 {
            guess(&t, Peer::V4(i), "x", now);
        }
        assert!(t.table.lock().unwrap().budgets.len() <= MAX_PEERS + 1);
        // The attacker's own budget is still spent...
        assert!(t.begin(attacker, now).is_err());
        // ...and new addresses share one budget, which a flood spends.
        let overflow: Vec<bool> = (0..BURST + 5)
            .map(|i| guess(&t, Peer::V4(1 << 31 | i), &format!("o{i}"), now))
            .collect();
        assert_eq!(overflow.iter().filter(|&&g| g).count(), BURST as usize);
        // A minute on, the full budgets are forgotten and room is made.
        let later = now + REFILL * BURST + Duration::from_secs(1);
        assert!(guess(&t, Peer::V4(3 << 30), "fresh", later));
        assert!(t.table.lock().unwrap().budgets.len() < MAX_PEERS);
    }
}
