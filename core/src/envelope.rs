//! Wire format v1: a job as a set of string fields (see docs/wire-format.md).
//!
//! In `ready` and `dead` the fields are stream entry fields; in `scheduled`
//! the member is a MessagePack map of the same fields, so a Lua script can
//! move it without a round trip (`promote-4.lua` decodes it with its own
//! small reader: Redis's bundled cmsgpack cannot read bin types). Unknown fields are kept and
//! written back unchanged on every move.

/// Field names of wire format v1 (a **contract**: other languages write them).
pub mod field {
    /// Handler name. Required.
    pub const TYPE: &str = "type";
    /// Arguments, MessagePack bytes. Required.
    pub const PAYLOAD: &str = "payload";
    /// Job id, stable across retries; the entry id when absent.
    pub const ID: &str = "id";
    /// Handler attempt, 1 on the first run.
    pub const ATTEMPT: &str = "attempt";
    /// Unix ms of the first enqueue; from the entry id when absent.
    pub const ENQUEUED_AT: &str = "enqueued_at";
    /// Per-job override of the handler's maximum attempts.
    pub const MAX_ATTEMPTS: &str = "max_attempts";
    /// Per-job override of the handler's timeout, ms.
    pub const TIMEOUT_MS: &str = "timeout_ms";
    /// The caller's stable business key.
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state.
    pub const TRACESTATE: &str = "tracestate";
    /// Class of the last failed attempt (set by the worker on retry).
    pub const LAST_ERROR_CLASS: &str = "last_error_class";
    /// Message of the last failed attempt (set by the worker on retry).
    pub const LAST_ERROR: &str = "last_error";
    /// Dead entries: why the job is dead.
    pub const REASON: &str = "reason";
    /// Dead entries: class of the final error.
    pub const ERROR_CLASS: &str = "error_class";
    /// Dead entries: message of the final error (truncated, no payload).
    pub const ERROR: &str = "error";
    /// Dead entries: deliveries of the final attempt.
    pub const DELIVERIES: &str = "deliveries";
    /// Dead entries: unix ms when the job died.
    pub const FAILED_AT: &str = "failed_at";
    /// Dead entries: the consumer that dead-lettered it.
    pub const WORKER: &str = "worker";
    /// Dead entries: the queue the job came from.
    pub const QUEUE: &str = "queue";
    /// Dead entries: an undecodable `scheduled` member, whole.
    pub const RAW: &str = "raw";
}

/// Longest error message kept in `last_error` and `error` fields.
pub const MAX_ERROR_LEN: usize = 512;

/// Most fields (name, value pairs) a job may have; wider ones go to `dead` packed in `raw`.
pub const MAX_FIELDS: usize = 1000;

/// A job decoded from its fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// Handler name.
    pub job_type: String,
    /// MessagePack payload.
    pub payload: Vec<u8>,
    /// Job id, if the entry carries one.
    pub id: Option<String>,
    /// Handler attempt, 1-based.
    pub attempt: u32,
    /// First enqueue time, unix ms, if the entry carries it.
    pub enqueued_at_ms: Option<u64>,
    /// Per-job maximum attempts.
    pub max_attempts: Option<u32>,
    /// Per-job timeout, ms.
    pub timeout_ms: Option<u64>,
    /// Caller's business key.
    pub idempotency_key: Option<String>,
    /// W3C traceparent.
    pub traceparent: Option<String>,
    /// W3C tracestate.
    pub tracestate: Option<String>,
    /// Class of the last failed attempt.
    pub last_error_class: Option<String>,
    /// Message of the last failed attempt.
    pub last_error: Option<String>,
    /// Fields this version does not know, kept in order.
    pub extra: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Why an entry could not be decoded into a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Human-readable reason, without payload bytes.
    pub detail: String,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

fn malformed(detail: impl Into<String>) -> Malformed {
    Malformed {
        detail: detail.into(),
    }
}

fn text(name: &str, value: Vec<u8>) -> Result<String, Malformed> {
    String::from_utf8(value).map_err(|_| malformed(format!("field {name:?} is not UTF-8")))
}

fn number<T: std::str::FromStr>(name: &str, value: &[u8]) -> Result<T, Malformed> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| malformed(format!("field {name:?} is not a whole number")))
}

impl Envelope {
    /// Decodes the fields of a stream entry. Fails on a missing or empty
    /// `type`, a missing `payload`, a payload that is not one MessagePack
    /// value, and numeric fields that are not numbers.
    pub fn decode(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Self, Malformed> {
        Self::decode_or_return(fields).map_err(|(bad, _)| bad)
    }

    /// [`Envelope::decode`], giving the fields back untouched when they are
    /// malformed (so they can be dead-lettered as they were, without a copy
    /// of every entry made just in case).
    #[allow(clippy::type_complexity)]
    pub fn decode_or_return(
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Self, (Malformed, Vec<(Vec<u8>, Vec<u8>)>)> {
        if let Err(bad) = Self::check(&fields) {
            return Err((bad, fields));
        }
        Self::decode_checked(fields).map_err(|bad| (bad, Vec::new()))
    }

    /// The checks of [`Envelope::decode`], by reference.
    fn check(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<(), Malformed> {
        let mut has_type = false;
        let mut payload = None;
        for (name, value) in fields {
            match name.as_slice() {
                b"type" => has_type = !value.is_empty() && std::str::from_utf8(value).is_ok(),
                b"payload" => payload = Some(value),
                b"id" | b"idempotency_key" | b"traceparent" | b"tracestate"
                | b"last_error_class" | b"last_error"
                    if std::str::from_utf8(value).is_err() =>
                {
                    return Err(malformed(format!(
                        "field {:?} is not UTF-8",
                        String::from_utf8_lossy(name)
                    )));
                }
                b"attempt" | b"max_attempts" => {
                    number::<u32>(&String::from_utf8_lossy(name), value)?;
                }
                b"enqueued_at" | b"timeout_ms" => {
                    number::<u64>(&String::from_utf8_lossy(name), value)?;
                }
                _ => {}
            }
        }
        if !has_type {
            let bad_utf8 = fields.iter().any(|(k, v)| k == b"type" && !v.is_empty());
            return Err(malformed(if bad_utf8 {
                "field \"type\" is not UTF-8"
            } else {
                "entry has no \"type\" field"
            }));
        }
        let Some(payload) = payload else {
            return Err(malformed("entry has no \"payload\" field"));
        };
        check_msgpack(payload).map_err(|e| malformed(format!("payload is not MessagePack: {e}")))
    }

    fn decode_checked(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Self, Malformed> {
        let mut env = Envelope {
            attempt: 1,
            ..Default::default()
        };
        let mut has_type = false;
        let mut has_payload = false;
        for (name, value) in fields {
            match name.as_slice() {
                b"type" => {
                    env.job_type = text(field::TYPE, value)?;
                    has_type = true;
                }
                b"payload" => {
                    env.payload = value;
                    has_payload = true;
                }
                b"id" => env.id = Some(text(field::ID, value)?),
                b"attempt" => env.attempt = number(field::ATTEMPT, &value)?,
                b"enqueued_at" => env.enqueued_at_ms = Some(number(field::ENQUEUED_AT, &value)?),
                b"max_attempts" => env.max_attempts = Some(number(field::MAX_ATTEMPTS, &value)?),
                b"timeout_ms" => env.timeout_ms = Some(number(field::TIMEOUT_MS, &value)?),
                b"idempotency_key" => {
                    env.idempotency_key = Some(text(field::IDEMPOTENCY_KEY, value)?)
                }
                b"traceparent" => env.traceparent = Some(text(field::TRACEPARENT, value)?),
                b"tracestate" => env.tracestate = Some(text(field::TRACESTATE, value)?),
                b"last_error_class" => {
                    env.last_error_class = Some(text(field::LAST_ERROR_CLASS, value)?)
                }
                b"last_error" => env.last_error = Some(text(field::LAST_ERROR, value)?),
                _ => env.extra.push((name, value)),
            }
        }
        if !has_type || env.job_type.is_empty() {
            return Err(malformed("entry has no \"type\" field"));
        }
        if !has_payload {
            return Err(malformed("entry has no \"payload\" field"));
        }
        if env.attempt == 0 {
            env.attempt = 1;
        }
        Ok(env)
    }

    /// The job id: the `id` field, else the stream entry id it was read from.
    pub fn job_id<'a>(&'a self, entry_id: &'a str) -> &'a str {
        self.id.as_deref().unwrap_or(entry_id)
    }

    /// First enqueue time: the `enqueued_at` field, else the entry id's time.
    pub fn enqueued_at(&self, entry_id: &str) -> Option<u64> {
        self.enqueued_at_ms.or_else(|| entry_id_ms(entry_id))
    }

    /// All fields, known ones first, then unknown ones in their order.
    /// Optional fields that are unset are left out.
    pub fn to_fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(8 + self.extra.len());
        let mut put = |name: &str, value: Vec<u8>| out.push((name.as_bytes().to_vec(), value));
        put(field::TYPE, self.job_type.as_bytes().to_vec());
        put(field::PAYLOAD, self.payload.clone());
        let opt = |v: &Option<String>| v.as_ref().map(|s| s.as_bytes().to_vec());
        let num = |v: Option<u64>| v.map(|n| n.to_string().into_bytes());
        for (name, value) in [
            (field::ID, opt(&self.id)),
            (field::ATTEMPT, Some(self.attempt.to_string().into_bytes())),
            (field::ENQUEUED_AT, num(self.enqueued_at_ms)),
            (field::MAX_ATTEMPTS, num(self.max_attempts.map(u64::from))),
            (field::TIMEOUT_MS, num(self.timeout_ms)),
            (field::IDEMPOTENCY_KEY, opt(&self.idempotency_key)),
            (field::TRACEPARENT, opt(&self.traceparent)),
            (field::TRACESTATE, opt(&self.tracestate)),
            (field::LAST_ERROR_CLASS, opt(&self.last_error_class)),
            (field::LAST_ERROR, opt(&self.last_error)),
        ] {
            if let Some(v) = value {
                put(name, v);
            }
        }
        out.extend(self.extra.iter().cloned());
        out
    }
}

/// Encodes fields as the MessagePack map stored as a `scheduled` member:
/// names as MessagePack strings, values as binary.
pub fn fields_to_msgpack(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
    let mut buf = Vec::with_capacity(size + 5);
    // Writing into a Vec cannot fail; the results are ignored on purpose.
    let _ = rmp::encode::write_map_len(&mut buf, fields.len() as u32);
    for (name, value) in fields {
        let _ = rmp::encode::write_str_len(&mut buf, name.len() as u32);
        buf.extend_from_slice(name);
        let _ = rmp::encode::write_bin(&mut buf, value);
    }
    buf
}

/// The unix ms part of a stream entry id (`1700000000000-0`).
pub fn entry_id_ms(entry_id: &str) -> Option<u64> {
    entry_id.split('-').next()?.parse().ok()
}

/// Checks that `bytes` hold exactly one well-formed MessagePack value.
pub fn check_msgpack(bytes: &[u8]) -> Result<(), String> {
    use serde::Deserialize;
    let mut de = rmp_serde::Deserializer::new(bytes);
    serde::de::IgnoredAny::deserialize(&mut de).map_err(|e| e.to_string())?;
    let rest = de.into_inner();
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("{} trailing bytes after the value", rest.len()))
    }
}

/// Cuts `message` to [`MAX_ERROR_LEN`] bytes on a character boundary.
pub fn truncate_error(message: &str) -> String {
    if message.len() <= MAX_ERROR_LEN {
        return message.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
            .collect()
    }

    fn payload() -> Vec<u8> {
        rmp_serde::to_vec_named(&serde_json_like()).unwrap()
    }

    fn serde_json_like() -> std::collections::BTreeMap<String, u32> {
        [("n".to_owned(), 7)].into_iter().collect()
    }

    #[test]
    fn minimal_entry_decodes_with_defaults() {
        let env = Envelope::decode(f(&[("type", b"send_email"), ("payload", &payload())])).unwrap();
        assert_eq!(env.job_type, "send_email");
        assert_eq!(env.attempt, 1);
        assert_eq!(env.job_id("1700000000000-3"), "1700000000000-3");
        assert_eq!(env.enqueued_at("1700000000000-3"), Some(1_700_000_000_000));
    }

    #[test]
    fn unknown_fields_survive_a_round_trip_in_order() {
        let p = payload();
        let fields = f(&[
            ("x-tenant", b"acme"),
            ("type", b"t"),
            ("payload", &p),
            ("id", b"job-1"),
            ("attempt", b"3"),
            ("traceparent", b"00-abc-def-01"),
            ("z", b"\xff\x00"),
        ]);
        let env = Envelope::decode(fields).unwrap();
        assert_eq!(env.attempt, 3);
        assert_eq!(env.extra, f(&[("x-tenant", b"acme"), ("z", b"\xff\x00")]));
        let again = Envelope::decode(env.to_fields()).unwrap();
        assert_eq!(again, env);
    }

    #[test]
    fn malformed_entries_say_why() {
        let p = payload();
        type Case = (Vec<(Vec<u8>, Vec<u8>)>, &'static str);
        let cases: Vec<Case> = vec![
            (f(&[("payload", &p)]), "no \"type\""),
            (f(&[("type", b""), ("payload", &p)]), "no \"type\""),
            (f(&[("type", b"t")]), "no \"payload\""),
            (
                f(&[("type", b"t"), ("payload", b"\xc1")]),
                "not MessagePack",
            ),
            (f(&[("type", b"t"), ("payload", b"\x01\x02")]), "trailing"),
            (
                f(&[("type", b"t"), ("payload", &p), ("attempt", b"x")]),
                "attempt",
            ),
            (f(&[("type", b"\xff"), ("payload", &p)]), "UTF-8"),
        ];
        for (fields, expect) in cases {
            let err = Envelope::decode(fields).unwrap_err();
            assert!(err.detail.contains(expect), "{err} should mention {expect}");
        }
    }

    #[test]
    fn scheduled_member_is_a_msgpack_map_of_the_fields() {
        let fields = f(&[("type", b"t"), ("payload", &[0x90]), ("attempt", b"2")]);
        let packed = fields_to_msgpack(&fields);
        let map: std::collections::BTreeMap<String, serde_bytes_like::Bytes> =
            rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(map["type"].0, b"t");
        assert_eq!(map["payload"].0, vec![0x90]);
        assert_eq!(map["attempt"].0, b"2");
    }

    /// Minimal bytes wrapper so the test needs no extra crate.
    mod serde_bytes_like {
        pub struct Bytes(pub Vec<u8>);
        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Bytes, E> {
                        Ok(Bytes(v.as_bytes().to_vec()))
                    }
                }
                d.deserialize_any(V)
            }
        }
    }

    #[test]
    fn errors_are_truncated_on_char_boundaries() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = truncate_error(&long);
        assert!(cut.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert_eq!(truncate_error("short"), "short");
    }
}
