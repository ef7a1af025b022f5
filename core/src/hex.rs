//! Lowercase hexadecimal text for bytes: the shared secrets, the
//! dashboard's MACs and CSRF values, packed entries shown as text.

use std::fmt::Write;

/// `bytes` as lowercase hex, two characters a byte.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The bytes `hex` spells (either case), or `None` unless it is an even
/// number of hex digits and nothing else (no sign, no space, no prefix).
pub fn decode(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16);
    hex.chunks(2)
        .map(|pair| Some((nibble(pair[0])? * 16 + nibble(pair[1])?) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_what_is_not_hex() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(encode(&all).as_bytes()), Some(all));
        assert_eq!(encode(&[0x0a, 0xff]), "0aff");
        assert_eq!(decode(b"0AfF"), Some(vec![0x0a, 0xff]));
        assert_eq!(decode(b""), Some(vec![]));
        for bad in [&b"abc"[..], b"+a", b"0x", b" a", b"g0", &[0xc3, 0xa9]] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
