//! MessagePack to JSON for people: a payload or a result as readable JSON,
//! or why it cannot be shown.

use serde_json::Value;

/// Payloads larger than this are not decoded for the page.
const MAX_SHOWN: usize = 256 * 1024;

/// The bytes as JSON, or a reason they are not shown.
pub(crate) fn to_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    if bytes.len() > MAX_SHOWN {
        return Err(format!(
            "{} bytes: too large to show here (the dashboard shows up to {} KiB)",
            bytes.len(),
            MAX_SHOWN / 1024
        ));
    }
    rmp_serde::from_slice::<Value>(bytes).map_err(|e| {
        format!(
            "{} bytes that are not MessagePack JSON can show ({e})",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_decode_and_garbage_is_explained() {
        let bytes = rmp_serde::to_vec_named(&serde_json::json!({"to": "a@b.c", "n": [1, 2]}))
            .unwrap_or_default();
        assert_eq!(
            to_json(&bytes),
            Ok(serde_json::json!({"to": "a@b.c", "n": [1, 2]}))
        );
        assert!(to_json(b"\xc1\xc1").is_err());
        assert_eq!(to_json(b""), Ok(Value::Null));
    }
}
