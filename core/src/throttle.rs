//! Rate limits for warnings that repeat (Redis away for a minute must not
//! write thousands of identical lines): each call site's warning passes
//! once per interval, and the next one that passes says how many were held
//! back.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// One warning per call site per interval.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    sites: Mutex<HashMap<&'static str, Site>>,
}

#[derive(Debug)]
struct Site {
    last: Instant,
    held: u64,
}

impl Throttle {
    /// A throttle that lets each site through once per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            sites: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(held back since the last one)` when the warning of `site` may
    /// be written now; `None` when it is held back (and counted).
    pub fn allow(&self, site: &'static str) -> Option<u64> {
        self.allow_at(site, Instant::now())
    }

    fn allow_at(&self, site: &'static str, now: Instant) -> Option<u64> {
        let Ok(mut sites) = self.sites.lock() else {
            return Some(0);
        };
        match sites.get_mut(site) {
            Some(s) if now.saturating_duration_since(s.last) < self.every => {
                s.held += 1;
                None
            }
            Some(s) => {
                let held = s.held;
                s.last = now;
                s.held = 0;
                Some(held)
            }
            None => {
                sites.insert(site, Site { last: now, held: 0 });
                Some(0)
            }
        }
    }
}

/// The process's throttle for repeated warnings: once per 10 s per site.
pub fn warnings() -> &'static Throttle {
    static WARNINGS: LazyLock<Throttle> = LazyLock::new(|| Throttle::new(Duration::from_secs(10)));
    &WARNINGS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_passes_once_per_interval_and_counts_what_it_held() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.allow_at("a", t0), Some(0));
        assert_eq!(t.allow_at("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(t.allow_at("a", t0 + Duration::from_secs(2)), None);
        assert_eq!(
            t.allow_at("b", t0 + Duration::from_secs(2)),
            Some(0),
            "sites are apart"
        );
        assert_eq!(t.allow_at("a", t0 + Duration::from_secs(11)), Some(2));
        assert_eq!(t.allow_at("a", t0 + Duration::from_secs(12)), None);
    }
}
