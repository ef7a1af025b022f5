//! The login cookie: `<expires>.<mac>`, `expires` in Unix seconds and
//! `mac` the hex HMAC-SHA256, keyed by the shared secret
//! `PREFIX:secret:dashboard` (32 random bytes in Redis), of
//! `jobstream-dashboard session <expires> <token>`.
//!
//! Keyed by a random secret, not by the token: a cookie cannot be forged
//! by guessing the token (a guess would test itself, unthrottled, through
//! a forged cookie), and a leaked cookie gives nothing to guess the token
//! with offline. The token in the message ends every login when the token
//! changes; deleting the secret does too. Every replica reads the same
//! secret, so any replica accepts a login made on another.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use jobstream_core::hex;
use jobstream_producer::inspect::Inspector;
use sha2::Sha256;

/// How long a login lasts.
pub(crate) const SESSION_SECS: u64 = 12 * 3600;

/// The shared secret's name (`PREFIX:secret:dashboard`).
const SECRET: &str = "dashboard";

/// How long a read secret is used before it is read again (a deleted
/// secret ends the logins on every replica within this).
const SECRET_TTL: Duration = Duration::from_secs(60);

/// After a failed read of the secret, how long before trying again (so a
/// Redis outage does not cost every request a timeout).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// What a cookie value turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// Signed with this secret for this token and not expired.
    Valid,
    /// Anything else: expired, signed for another token or secret,
    /// forged, malformed. Not counted as a guess: a 256-bit secret is
    /// not guessed.
    Invalid,
}

fn keyed(secret: &[u8], message: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(message);
    Some(m)
}

/// The MAC a login cookie carries for `expires`.
fn mac(secret: &[u8], token: &str, expires: u64) -> Option<Hmac<Sha256>> {
    keyed(
        secret,
        format!("jobstream-dashboard session {expires} {token}").as_bytes(),
    )
}

fn hex_of(m: Option<Hmac<Sha256>>) -> String {
    m.map(|m| hex::encode(&m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// The CSRF value of every dashboard with this secret (`api/config`
/// gives it out; it only has to be sent back as a header, which a
/// cross-site page cannot do): replicas behind a load balancer agree on
/// it, so a page loaded from one may act through another.
pub(crate) fn csrf_of(secret: &[u8]) -> String {
    hex_of(keyed(secret, b"jobstream-dashboard csrf"))
}

/// Unix seconds.
pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A cookie value for a login at `now` (Unix seconds).
pub(crate) fn issue(secret: &[u8], token: &str, now: u64) -> String {
    let expires = now.saturating_add(SESSION_SECS);
    format!("{expires}.{}", hex_of(mac(secret, token, expires)))
}

/// Checks a cookie value at `now`; the MAC is compared in constant time.
pub(crate) fn check(secret: &[u8], token: &str, value: &str, now: u64) -> Session {
    let Some((expires, sig_hex)) = value.split_once('.') else {
        return Session::Invalid;
    };
    let sig = hex::decode(sig_hex.as_bytes()).filter(|sig| sig.len() == 32);
    let (Ok(expires), Some(sig)) = (expires.parse::<u64>(), sig) else {
        return Session::Invalid;
    };
    let signed = mac(secret, token, expires).is_some_and(|m| m.verify_slice(&sig).is_ok());
    if signed && expires > now {
        Session::Valid
    } else {
        Session::Invalid
    }
}

/// How long a secret read before is still used while it cannot be read
/// again (Redis unreachable): a replica cut off longer stops accepting
/// logins rather than honour a secret that may have been deleted.
const MAX_STALE: Duration = Duration::from_secs(300);

/// How long one read of the secret may be in flight before another
/// request tries again.
const READ_IN_FLIGHT: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
struct Cached {
    secret: Option<Arc<[u8]>>,
    read_at: Option<Instant>,
    failed_at: Option<Instant>,
    reading_since: Option<Instant>,
}

impl Cached {
    /// The secret, if read recently enough to use while no fresh read is
    /// possible.
    fn usable(&self) -> Option<Arc<[u8]>> {
        let recent = self.read_at.is_some_and(|at| at.elapsed() < MAX_STALE);
        self.secret.clone().filter(|_| recent)
    }
}

/// The shared secret, read from Redis at most once a minute per process,
/// by one request at a time.
#[derive(Debug, Default)]
pub(crate) struct SessionSecret {
    cached: Mutex<Cached>,
}

impl SessionSecret {
    /// The secret; while it cannot be read, the last one read (for five
    /// minutes); `None` when there is none (logins fail with 503, cookies
    /// are not accepted).
    pub(crate) async fn get(&self, inspector: &Inspector) -> Option<Arc<[u8]>> {
        {
            let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = c.read_at.is_some_and(|at| at.elapsed() < SECRET_TTL);
            let backing_off = c
                .failed_at
                .is_some_and(|at| at.elapsed() < RETRY_AFTER_FAILURE);
            let in_flight = c
                .reading_since
                .is_some_and(|at| at.elapsed() < READ_IN_FLIGHT);
            if fresh {
                return c.secret.clone();
            }
            if backing_off || in_flight {
                return c.usable();
            }
            // This request reads; the others meanwhile use what there is
            // (no stampede on Redis when the minute ends, nor a timeout
            // for each of them while Redis is away).
            c.reading_since = Some(Instant::now());
        }
        let read = inspector.shared_secret(SECRET).await;
        let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        c.reading_since = None;
        match read {
            Ok(secret) => {
                let secret: Arc<[u8]> = secret.into();
                c.secret = Some(secret.clone());
                c.read_at = Some(Instant::now());
                c.failed_at = None;
                Some(secret)
            }
            Err(e) => {
                tracing::warn!(error = %e, "dashboard: could not read the login secret; logins wait for it");
                c.failed_at = Some(Instant::now());
                // Junk in the key: nothing signed with the old secret is
                // honoured any more, as on the replicas that never read it.
                if matches!(e, jobstream_core::Error::Config(_)) {
                    c.secret = None;
                    c.read_at = None;
                }
                c.usable()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a-test-token-0123456789";
    const SECRET: &[u8] = &[7u8; 32];

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_for_its_token_and_secret() {
        let now = 1_800_000_000;
        let c = issue(SECRET, TOKEN, now);
        assert!(!c.contains(TOKEN));
        assert_eq!(check(SECRET, TOKEN, &c, now), Session::Valid);
        assert_eq!(
            check(SECRET, TOKEN, &c, now + SESSION_SECS - 1),
            Session::Valid
        );
        assert_eq!(
            check(SECRET, TOKEN, &c, now + SESSION_SECS),
            Session::Invalid
        );
        assert_eq!(
            check(SECRET, "another-token-0123456789", &c, now),
            Session::Invalid
        );
        assert_eq!(check(&[8u8; 32], TOKEN, &c, now), Session::Invalid);
    }

    #[test]
    fn a_cookie_made_with_the_token_as_key_is_refused() {
        // What one who guessed the token could make without the secret.
        let now = 1_800_000_000;
        let forged = issue(TOKEN.as_bytes(), TOKEN, now);
        assert_eq!(check(SECRET, TOKEN, &forged, now), Session::Invalid);
    }

    #[test]
    fn forged_and_malformed_cookies_are_invalid() {
        let now = 1_800_000_000;
        let c = issue(SECRET, TOKEN, now);
        let (expires, sig) = c.split_once('.').unwrap();
        // A later expiry with the same MAC.
        let later = format!("{}.{sig}", expires.parse::<u64>().unwrap() + 1);
        let mut flipped = c.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            later.as_str(),
            flipped.as_str(),
            TOKEN,
            "",
            ".",
            "1.",
            &format!("{expires}.{}", &sig[..62]),
            &format!("{expires}.{}", "zz".repeat(32)),
            &format!("18446744073709551616.{sig}"),
            &format!("{expires}.{sig}.x"),
            "é.é",
        ] {
            assert_eq!(check(SECRET, TOKEN, bad, now), Session::Invalid, "{bad:?}");
        }
    }
}
