//! The login cookie: `<expires>.<mac>`, `expires` in Unix seconds and
//! `mac` the hex HMAC-SHA256 of `jobstream-dashboard session <expires>`
//! keyed by the token. Not the token itself: a cookie that leaks (another
//! app on the same host name receives it, cookies are not port-scoped)
//! expires on its own, cannot be used as a `Bearer` token elsewhere, and
//! every replica that has the token accepts it without shared state.
//! Changing the token ends every session.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How long a login lasts.
pub(crate) const SESSION_SECS: u64 = 12 * 3600;

/// What a cookie value turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Session {
    /// Signed by this token and not expired.
    Valid,
    /// Signed by this token, expired: a stale login, not a guess.
    Expired,
    /// Not signed by this token (a guess, a forgery, an old raw-token
    /// cookie from before sessions were signed).
    Wrong,
}

fn mac(token: &str, expires: u64) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(token.as_bytes()).ok()?;
    m.update(format!("jobstream-dashboard session {expires}").as_bytes());
    Some(m)
}

/// Unix seconds.
pub(crate) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A cookie value for a login at `now` (Unix seconds).
pub(crate) fn issue(token: &str, now: u64) -> String {
    let expires = now.saturating_add(SESSION_SECS);
    let hex: String = mac(token, expires)
        .map(|m| {
            m.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .unwrap_or_default();
    format!("{expires}.{hex}")
}

/// Checks a cookie value against the token at `now`; the MAC is compared
/// in constant time.
pub(crate) fn check(token: &str, value: &str, now: u64) -> Session {
    let Some((expires, hex)) = value.split_once('.') else {
        return Session::Wrong;
    };
    let (Ok(expires), Some(sig)) = (expires.parse::<u64>(), unhex(hex)) else {
        return Session::Wrong;
    };
    if mac(token, expires).is_none_or(|m| m.verify_slice(&sig).is_err()) {
        Session::Wrong
    } else if expires <= now {
        Session::Expired
    } else {
        Session::Valid
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a-test-token-0123456789";

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_for_its_token() {
        let now = 1_800_000_000;
        let c = issue(TOKEN, now);
        assert!(!c.contains(TOKEN));
        assert_eq!(check(TOKEN, &c, now), Session::Valid);
        assert_eq!(check(TOKEN, &c, now + SESSION_SECS - 1), Session::Valid);
        assert_eq!(check(TOKEN, &c, now + SESSION_SECS), Session::Expired);
        assert_eq!(check("another-token-0123456789", &c, now), Session::Wrong);
    }

    #[test]
    fn forged_and_malformed_cookies_are_wrong() {
        let now = 1_800_000_000;
        let c = issue(TOKEN, now);
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
            assert_eq!(check(TOKEN, bad, now), Session::Wrong, "{bad:?}");
        }
    }
}
