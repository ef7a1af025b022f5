//! Times as every command shows them: RFC 3339 (UTC, milliseconds) and
//! relative to now ("3 min ago", "in 20 s").

use std::time::{Duration, UNIX_EPOCH};

/// A unix ms time as RFC 3339 (UTC, milliseconds).
/// A time RFC 3339 cannot write (after the year 9999, which a hostile or
/// broken producer can store) is shown as its number, never a panic.
pub(crate) fn rfc3339(ms: u64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let written = UNIX_EPOCH
        .checked_add(Duration::from_millis(ms))
        .map(|t| write!(out, "{}", humantime::format_rfc3339_millis(t)));
    match written {
        Some(Ok(())) => out,
        _ => format!("(out of range: {ms} ms)"),
    }
}

/// A span of ms as "4 s", "3 min", "2 h", "5 d" (whole units, rounded down).
pub(crate) fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// `ms` relative to `now`: "3 min ago", or "in 20 s" for a time to come.
pub(crate) fn relative(ms: u64, now: u64) -> String {
    if ms > now {
        format!("in {}", span(ms - now))
    } else {
        format!("{} ago", span(now - ms))
    }
}

/// This host's clock, unix ms.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_say_them() {
        assert_eq!(relative(1_000, 5_000), "4 s ago");
        assert_eq!(relative(0, 180_000), "3 min ago");
        assert_eq!(relative(0, 7_200_000), "2 h ago");
        assert_eq!(relative(0, 5 * 86_400_000), "5 d ago");
        assert_eq!(relative(30_000, 10_000), "in 20 s");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(99_999_999_999_999_999),
            "(out of range: 99999999999999999 ms)"
        );
        assert_eq!(
            rfc3339(u64::MAX),
            format!("(out of range: {} ms)", u64::MAX)
        );
    }
}
