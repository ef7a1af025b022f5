//! Wrong credentials are limited per client address, so a weak basic-auth
//! password or token cannot be guessed at the speed of HTTP.
//!
//! Each address has a budget of [`BURST`] wrong credentials, refilled at
//! one per [`REFILL`]. With the budget spent, every request from that
//! address that presents a token, a password or a login is answered 429
//! before its credential is looked at (answering the right one would tell
//! a guesser it was right); a valid session cookie still works, since it
//! cannot be guessed. A credential that was already refused recently
//! costs nothing again: a stale browser tab or a script retrying an old
//! token is not guessing, and must not lock its address out.
//!
//! The address is the TCP peer (an IPv6 client by its /64): without
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
/// Distinct refused credentials remembered per address.
const RECENT: usize = 16;
/// Addresses tracked; past this the ones with a full budget are forgotten,
/// then (a flood from more addresses than this) all of them.
const MAX_PEERS: usize = 10_000;

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Peer {
    /// No peer address known.
    Unknown,
    V4(u32),
    /// The /64 prefix.
    V6(u64),
}

impl Peer {
    pub(crate) fn of(addr: Option<SocketAddr>) -> Self {
        match addr.map(|a| a.ip().to_canonical()) {
            None => Peer::Unknown,
            Some(IpAddr::V4(v4)) => Peer::V4(u32::from(v4)),
            Some(IpAddr::V6(v6)) => Peer::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Unknown => f.write_str("an unknown address"),
            Peer::V4(v4) => write!(f, "{}", std::net::Ipv4Addr::from(*v4)),
            Peer::V6(prefix) => {
                let ip = std::net::Ipv6Addr::from(u128::from(*prefix) << 64);
                write!(f, "{ip}/64")
            }
        }
    }
}

#[derive(Debug)]
struct Budget {
    /// Wrong credentials still allowed, times 1000 (refills by fractions).
    milli: u64,
    at: Instant,
    recent: VecDeque<u64>,
}

impl Budget {
    fn refill(&mut self, now: Instant) {
        let per = REFILL.as_millis() as u64;
        let gained = now.saturating_duration_since(self.at).as_millis() as u64 * 1000 / per.max(1);
        self.milli = (self.milli + gained).min(u64::from(BURST) * 1000);
        self.at = now;
    }
}

/// The per-address budgets of wrong credentials.
#[derive(Debug, Default)]
pub(crate) struct AuthThrottle {
    peers: Mutex<HashMap<Peer, Budget>>,
    /// Keyed per process: the fingerprints of refused credentials mean
    /// nothing outside it.
    hasher: RandomState,
}

impl AuthThrottle {
    /// How long `peer` must wait before presenting a credential, if its
    /// budget is spent.
    pub(crate) fn wait(&self, peer: Peer, now: Instant) -> Option<Duration> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let budget = peers.get_mut(&peer)?;
        budget.refill(now);
        (budget.milli < 1000).then(|| {
            let missing = 1000 - budget.milli;
            let per = REFILL.as_millis() as u64;
            Duration::from_millis((missing * per).div_ceil(1000).max(1))
        })
    }

    /// Counts a refused `credential` from `peer`; true when this one spent
    /// the last of the budget (worth one log line).
    pub(crate) fn refused(&self, peer: Peer, credential: &[u8], now: Instant) -> bool {
        let fingerprint = self.hasher.hash_one(credential);
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= MAX_PEERS && !peers.contains_key(&peer) {
            peers.retain(|_, b| {
                b.refill(now);
                b.milli < u64::from(BURST) * 1000
            });
            if peers.len() >= MAX_PEERS {
                peers.clear();
            }
        }
        let budget = peers.entry(peer).or_insert_with(|| Budget {
            milli: u64::from(BURST) * 1000,
            at: now,
            recent: VecDeque::new(),
        });
        budget.refill(now);
        if budget.recent.contains(&fingerprint) {
            return false;
        }
        if budget.recent.len() == RECENT {
            budget.recent.pop_front();
        }
        budget.recent.push_back(fingerprint);
        let was_open = budget.milli >= 1000;
        budget.milli = budget.milli.saturating_sub(1000);
        was_open && budget.milli < 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Peer {
        Peer::of(Some(SocketAddr::new(s.parse().unwrap(), 1)))
    }

    #[test]
    fn a_spent_budget_waits_and_refills() {
        let t = AuthThrottle::default();
        let (p, start) = (v4("10.0.0.1"), Instant::now());
        for i in 0..BURST {
            assert_eq!(t.wait(p, start), None, "guess {i}");
            let last = t.refused(p, format!("guess {i}").as_bytes(), start);
            assert_eq!(last, i + 1 == BURST);
        }
        let wait = t.wait(p, start).unwrap();
        assert!(wait <= REFILL && wait > REFILL / 2, "{wait:?}");
        // Another address is not held up.
        assert_eq!(t.wait(v4("10.0.0.2"), start), None);
        // One refill later, one more guess.
        let later = start + REFILL;
        assert_eq!(t.wait(p, later), None);
        t.refused(p, b"one more", later);
        assert!(t.wait(p, later).is_some());
        // A full refill later, the whole burst again.
        assert_eq!(t.wait(p, later + REFILL * BURST), None);
    }

    #[test]
    fn the_same_wrong_credential_again_costs_nothing() {
        let t = AuthThrottle::default();
        let (p, now) = (v4("10.0.0.1"), Instant::now());
        for _ in 0..1000 {
            t.refused(p, b"an old token", now);
        }
        assert_eq!(t.wait(p, now), None);
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let a = Peer::of(Some("[2001:db8:1:2:aaaa::1]:5".parse().unwrap()));
        let b = Peer::of(Some("[2001:db8:1:2:bbbb::9]:6".parse().unwrap()));
        let c = Peer::of(Some("[2001:db8:1:3::1]:6".parse().unwrap()));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            Peer::of(Some("[::ffff:10.0.0.1]:5".parse().unwrap())),
            v4("10.0.0.1")
        );
        assert_eq!(Peer::of(None), Peer::Unknown);
    }

    #[test]
    fn many_addresses_do_not_grow_the_table_without_bound() {
        let t = AuthThrottle::default();
        let now = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 50) {
            t.refused(Peer::V4(i), b"x", now);
        }
        assert!(t.peers.lock().unwrap().len() <= MAX_PEERS);
    }
}
