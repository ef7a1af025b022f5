//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the strict
//! check of a job's `traceparent` field, so a worker can put the trace id on
//! the job's span (and in JSON logs) without OpenTelemetry, and ignore a
//! malformed value from a careless or hostile producer.
//!
//! ```
//! use jobstream_core::trace::trace_id;
//!
//! let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
//! assert_eq!(trace_id(tp), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
//! assert_eq!(trace_id("00-garbage"), None);
//! ```

/// Length of a version-00 `traceparent`: `vv-<32 hex>-<16 hex>-ff`.
pub const TRACEPARENT_LEN: usize = 55;

/// The parts of a valid `traceparent`, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent<'a> {
    /// The version, two lowercase hex digits (`00` today; never `ff`).
    pub version: &'a str,
    /// The trace id: 32 lowercase hex digits, not all zero.
    pub trace_id: &'a str,
    /// The parent (span) id: 16 lowercase hex digits, not all zero.
    pub parent_id: &'a str,
    /// The trace flags, two lowercase hex digits (bit 0: sampled).
    pub flags: &'a str,
}

impl TraceParent<'_> {
    /// Whether the caller sampled the trace (flags bit 0).
    pub fn sampled(&self) -> bool {
        u8::from_str_radix(self.flags, 16).is_ok_and(|f| f & 1 == 1)
    }
}

/// Parses `value` as a W3C `traceparent`, strictly: lowercase hex only, the
/// ids not all zero, version `ff` refused, a version-00 value exactly
/// [`TRACEPARENT_LEN`] bytes. A later version may carry more after the
/// flags, behind a `-` (the spec's rule for versions it does not know).
/// Never panics, whatever the bytes; allocates nothing.
pub fn parse_traceparent(value: &str) -> Option<TraceParent<'_>> {
    let b = value.as_bytes();
    if b.len() < TRACEPARENT_LEN {
        return None;
    }
    let hex = |range: std::ops::Range<usize>| {
        b[range.clone()]
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            .then(|| &value[range])
    };
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let version = hex(0..2)?;
    let trace_id = hex(3..35)?;
    let parent_id = hex(36..52)?;
    let flags = hex(53..55)?;
    let zero = |s: &str| s.bytes().all(|c| c == b'0');
    if version == "ff" || zero(trace_id) || zero(parent_id) {
        return None;
    }
    let rest_ok = match version {
        "00" => b.len() == TRACEPARENT_LEN,
        _ => b.len() == TRACEPARENT_LEN || b[TRACEPARENT_LEN] == b'-',
    };
    rest_ok.then_some(TraceParent {
        version,
        trace_id,
        parent_id,
        flags,
    })
}

/// The trace id of a valid `traceparent` (see [`parse_traceparent`]), or
/// `None` for anything else.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    parse_traceparent(traceparent).map(|p| p.trace_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_split_into_its_parts() {
        let p = parse_traceparent(GOOD).unwrap();
        assert_eq!(p.version, "00");
        assert_eq!(p.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id, "00f067aa0ba902b7");
        assert_eq!(p.flags, "01");
        assert!(p.sampled());
        let unsampled = GOOD.replace("-01", "-00");
        assert!(!parse_traceparent(&unsampled).unwrap().sampled());
    }

    #[test]
    fn malformed_values_are_refused() {
        let bad = [
            "",
            "00",
            "garbage",
            // Uppercase hex.
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            // All-zero ids.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version ff.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Wrong separators, lengths.
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            // Not hex.
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            // A later version's extra part must follow a `-`.
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            // Multi-byte characters where hex digits should be.
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ];
        for v in bad {
            assert_eq!(parse_traceparent(v), None, "{v:?} must be refused");
        }
    }

    #[test]
    fn a_later_version_may_carry_more_after_a_dash() {
        let v = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert_eq!(trace_id(v), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        let v = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(parse_traceparent(v).is_some());
    }

    #[test]
    fn every_prefix_of_a_valid_value_is_refused() {
        for end in 0..GOOD.len() {
            assert_eq!(parse_traceparent(&GOOD[..end]), None, "{end}");
        }
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// The rules of the spec, written another way (char by char over the
    /// pattern), to check the parser against on random inputs.
    fn oracle(v: &str) -> bool {
        let pattern = "vv-tttttttttttttttttttttttttttttttt-pppppppppppppppp-ff";
        let b = v.as_bytes();
        if b.len() < pattern.len() {
            return false;
        }
        for (i, p) in pattern.bytes().enumerate() {
            let c = b[i];
            let ok = match p {
                b'-' => c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            };
            if !ok {
                return false;
            }
        }
        let version = &v[0..2];
        if version == "ff"
            || v[3..35].bytes().all(|c| c == b'0')
            || v[36..52].bytes().all(|c| c == b'0')
        {
            return false;
        }
        match (version, b.len()) {
            (_, 55) => true,
            ("00", _) => false,
            _ => b[55] == b'-',
        }
    }

    #[test]
    fn random_bytes_and_mutations_never_panic_and_match_the_rules() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"0123456789abcdefABCDEF-xz \x00\xff";
        let mut accepted = 0;
        for round in 0..20_000 {
            let bytes: Vec<u8> = match round % 3 {
                // Random bytes of random length (mostly invalid UTF-8).
                0 => (0..rng.below(70))
                    .map(|_| (rng.next() & 0xff) as u8)
                    .collect(),
                // Random characters from a near-miss alphabet, near the
                // right length.
                1 => (0..50 + rng.below(12))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect(),
                // A valid value with one or two characters changed, or
                // truncated, or extended.
                _ => {
                    let mut b = GOOD.as_bytes().to_vec();
                    for _ in 0..1 + rng.below(2) {
                        let i = rng.below(b.len());
                        b[i] = alphabet[rng.below(alphabet.len())];
                    }
                    match rng.below(4) {
                        0 => b.truncate(rng.below(b.len() + 1)),
                        1 => b.extend_from_slice(b"-extra"),
                        _ => {}
                    }
                    b
                }
            };
            let Ok(text) = std::str::from_utf8(&bytes) else {
                // The envelope only hands over text; bytes that are not
                // UTF-8 never get here. Lossy text must still be safe.
                let lossy = String::from_utf8_lossy(&bytes);
                assert_eq!(parse_traceparent(&lossy).is_some(), oracle(&lossy));
                continue;
            };
            let got = parse_traceparent(text);
            assert_eq!(got.is_some(), oracle(text), "{text:?}");
            if let Some(p) = got {
                accepted += 1;
                assert_eq!(p.trace_id.len(), 32);
                assert_eq!(p.parent_id.len(), 16);
            }
        }
        // The mutations keep some values valid: both sides were exercised.
        assert!(accepted > 100, "{accepted}");
    }
}
