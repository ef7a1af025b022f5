//! MessagePack to JSON for people: a payload or a result as readable JSON,
//! or why it cannot be shown.

use jobstream_producer::inspect::{DeadJob, QueuedJob};
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

/// Fields whose values are job data, not metadata: a chain's steps carry
/// their payloads, `prev_result` is the previous step's result, `raw` is
/// a whole packed job. Hidden with the payload.
const DATA_FIELDS: &[&str] = &["payload", "chain", "prev_result", "raw"];

/// The longest field value a page gets, in bytes: fields are shown as
/// text (lossy for binary), and a wide job must not make a page of
/// megabytes.
const FIELD_BYTES: usize = 1024;

/// A job's fields as a page may see them: job data hidden when payloads
/// are, and every value cut to [`FIELD_BYTES`].
pub(crate) fn scrub_fields(fields: &mut [(String, String)], hide: bool) {
    for (name, value) in fields.iter_mut() {
        if hide && DATA_FIELDS.contains(&name.as_str()) {
            *value = format!("(hidden: {} bytes)", value.len());
        } else if value.len() > FIELD_BYTES {
            let mut cut = FIELD_BYTES;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            *value = format!("{}… ({} bytes in all)", &value[..cut], value.len());
        }
    }
}

/// A job of a list or a search, scrubbed ([`scrub_fields`]).
pub(crate) fn scrub_job(job: &mut QueuedJob, hide: bool) {
    scrub_fields(&mut job.fields, hide);
}

/// A dead letter, scrubbed: its fields and a packed job's fields, and no
/// `raw_hex` ever (the page does not use it; `jobstream dlq list --json`
/// gives it).
pub(crate) fn scrub_dead(job: &mut DeadJob, hide: bool) {
    scrub_fields(&mut job.fields, hide);
    scrub_fields(&mut job.raw_fields, hide);
    job.raw_hex = String::new();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_fields_are_hidden_and_long_ones_cut() {
        let long = "é".repeat(FIELD_BYTES);
        let mut fields = vec![
            ("chain".to_owned(), "secret steps".to_owned()),
            ("prev_result".to_owned(), "secret result".to_owned()),
            ("type".to_owned(), "email".to_owned()),
            ("note".to_owned(), long.clone()),
        ];
        let mut shown = fields.clone();
        scrub_fields(&mut shown, false);
        assert_eq!(shown[0].1, "secret steps");
        assert!(shown[3].1.len() < FIELD_BYTES + 40, "{}", shown[3].1.len());
        assert!(
            shown[3]
                .1
                .ends_with(&format!("({} bytes in all)", long.len()))
        );
        scrub_fields(&mut fields, true);
        assert_eq!(fields[0].1, "(hidden: 12 bytes)");
        assert_eq!(fields[1].1, "(hidden: 13 bytes)");
        assert_eq!(fields[2].1, "email");
    }

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
