//! Secrets shared by every process on a prefix: 32 random bytes under
//! `PREFIX:secret:NAME` (64 hex characters), created by whichever process
//! needs one first (`SET NX GET`), read by the others. The dashboard signs its
//! login cookies with `PREFIX:secret:dashboard`, so every replica accepts
//! every other's logins and deleting the key logs everyone out.
//!
//! Whoever can read Redis can read the secret: that is no more than such a
//! client can already do to the queues directly.

use rand::Rng;

use crate::{Error, Redis, Result};

/// The key of secret `name`.
pub fn secret_key(prefix: &str, name: &str) -> String {
    format!("{prefix}:secret:{name}")
}

/// Secret `name` (32 bytes), created if it does not exist. One atomic
/// command, `SET key fresh NX GET`: whichever process comes first writes.
pub async fn shared_secret(redis: &Redis, prefix: &str, name: &str) -> Result<Vec<u8>> {
    let key = secret_key(prefix, name);
    let mut fresh = [0u8; 32];
    rand::rng().fill(&mut fresh);
    let fresh = crate::hex::encode(&fresh);
    // `SET … NX GET` (Redis 7.0+): the value there before, or nil when
    // ours was set, in one atomic command.
    let mut conn = redis.shared();
    let before: Option<Vec<u8>> = redis::cmd("SET")
        .arg(&key)
        .arg(&fresh)
        .arg("NX")
        .arg("GET")
        .query_async(&mut conn)
        .await
        .map_err(|e| redis.error("SET NX GET (shared secret)", e))?;
    let stored = before.unwrap_or_else(|| fresh.into_bytes());
    decode(&stored).ok_or_else(|| {
        Error::Config(format!(
            "{key} is not 64 hex characters (written by hand?): delete it and a new secret is made"
        ))
    })
}

/// A secret as stored: exactly 64 hex digits.
fn decode(hex: &[u8]) -> Option<Vec<u8>> {
    crate::hex::decode(hex).filter(|bytes| bytes.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_hex_characters_are_a_secret() {
        assert_eq!(decode(&[b'a'; 64]), Some(vec![0xaa; 32]));
        assert_eq!(decode(&[b'a'; 63]), None);
        assert_eq!(decode(&[b'g'; 64]), None);
        assert_eq!(decode(b""), None);
        let mut odd = [b'0'; 64];
        odd[10] = 0xc3;
        assert_eq!(decode(&odd), None);
        let mut plus = [b'0'; 64];
        plus[0] = b'+';
        assert_eq!(decode(&plus), None);
    }
}
