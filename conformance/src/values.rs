//! The value language of the conformance files (conformance/README.md,
//! "Values"): JSON that stands for exact bytes, scheduled members and
//! matchers. Everything here is pure: no Redis.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value as Json;

/// What the runner knows when it turns a case into bytes or checks them.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// The Redis server's time when the case was written (unix ms).
    pub now_ms: i64,
    /// The id `XADD` returned for the case, if it was an `XADD`.
    pub entry_id: Option<String>,
    /// The queue's name.
    pub queue: String,
    /// The exact bytes of the case's `scheduled` member, if any.
    pub member: Option<Vec<u8>>,
    /// The fields the case wrote (for `packed_fields`).
    pub written: Vec<(Vec<u8>, Vec<u8>)>,
    /// The id the producer driver printed for this job.
    pub returned_id: Option<String>,
}

/// One field value: `"text"`, `{"hex"}`, `{"msgpack"}` or `{"now_ms"}`.
pub fn field_value(v: &Json, env: &Env) -> Result<Vec<u8>> {
    match v {
        Json::String(s) => Ok(s.as_bytes().to_vec()),
        Json::Object(m) if m.len() == 1 => {
            let (tag, inner) = m.iter().next().ok_or_else(|| anyhow!("empty object"))?;
            match tag.as_str() {
                "hex" => hex(inner),
                "msgpack" => {
                    let mut out = Vec::new();
                    encode_json(inner, &mut out)?;
                    Ok(out)
                }
                "now_ms" => {
                    let offset = inner
                        .as_i64()
                        .ok_or_else(|| anyhow!("now_ms takes an integer, got {inner}"))?;
                    Ok((env.now_ms + offset).to_string().into_bytes())
                }
                other => bail!("unknown field value tag {other:?}"),
            }
        }
        other => bail!("not a field value: {other}"),
    }
}

/// The bytes of a `{"hex": "…"}` string.
fn hex(v: &Json) -> Result<Vec<u8>> {
    let s = v.as_str().ok_or_else(|| anyhow!("hex takes a string"))?;
    if s.len() % 2 != 0 {
        bail!("hex {s:?} has an odd length");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).with_context(|| format!("hex {s:?}")))
        .collect()
}

/// The MessagePack encoding of a JSON value, as the other languages'
/// default encoders write it: integers in their smallest form, other
/// numbers as float 64, strings as str, objects as maps in order.
pub fn encode_json(v: &Json, out: &mut Vec<u8>) -> Result<()> {
    use rmp::encode as e;
    match v {
        Json::Null => e::write_nil(out)?,
        Json::Bool(b) => e::write_bool(out, *b)?,
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                e::write_uint(out, u)?;
            } else if let Some(i) = n.as_i64() {
                e::write_sint(out, i)?;
            } else {
                e::write_f64(out, n.as_f64().unwrap_or(f64::NAN))?;
            }
        }
        Json::String(s) => e::write_str(out, s)?,
        Json::Array(items) => {
            e::write_array_len(out, len32(items.len())?)?;
            for item in items {
                encode_json(item, out)?;
            }
        }
        Json::Object(map) => {
            e::write_map_len(out, len32(map.len())?)?;
            for (k, item) in map {
                e::write_str(out, k)?;
                encode_json(item, out)?;
            }
        }
    }
    Ok(())
}

fn len32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| anyhow!("too long for MessagePack"))
}

/// A scheduled member: `{"map": [[key, V], …]}` or `{"hex": "…"}`.
pub fn member(v: &Json, env: &Env) -> Result<Vec<u8>> {
    let obj = v
        .as_object()
        .ok_or_else(|| anyhow!("a member is an object"))?;
    if let Some(h) = obj.get("hex") {
        return hex(h);
    }
    let pairs = obj
        .get("map")
        .and_then(Json::as_array)
        .ok_or_else(|| anyhow!("a member is {{\"map\": [...]}} or {{\"hex\": ...}}"))?;
    let mut out = Vec::new();
    rmp::encode::write_map_len(&mut out, len32(pairs.len())?)?;
    for pair in pairs {
        let [k, val] = pair.as_array().map(Vec::as_slice).unwrap_or_default() else {
            bail!("a map entry is [key, value], got {pair}");
        };
        member_scalar(k, env, &mut out)?;
        member_scalar(val, env, &mut out)?;
    }
    Ok(out)
}

/// One key or value of a member map: text as str, other field values as
/// bin, or a typed scalar.
fn member_scalar(v: &Json, env: &Env, out: &mut Vec<u8>) -> Result<()> {
    use rmp::encode as e;
    if let Json::String(s) = v {
        e::write_str(out, s)?;
        return Ok(());
    }
    let obj = v.as_object().filter(|o| o.len() == 1);
    let Some((tag, inner)) = obj.and_then(|o| o.iter().next()) else {
        bail!("not a member value: {v}");
    };
    match tag.as_str() {
        "int" => encode_json(inner, out)?,
        "bool" => e::write_bool(
            out,
            inner.as_bool().ok_or_else(|| anyhow!("bool: {inner}"))?,
        )?,
        "nil" => e::write_nil(out)?,
        "float" => e::write_f64(
            out,
            inner.as_f64().ok_or_else(|| anyhow!("float: {inner}"))?,
        )?,
        "str_hex" => {
            let bytes = hex(inner)?;
            e::write_str_len(out, len32(bytes.len())?)?;
            out.extend_from_slice(&bytes);
        }
        // A MessagePack value written in place (an array, a nested map):
        // what a producer must not write, for malformed cases.
        "inline" => encode_json(inner, out)?,
        _ => {
            let bytes = field_value(v, env)?;
            e::write_bin(out, &bytes)?;
        }
    }
    Ok(())
}

/// An expected value: exact bytes, or a matcher `{"is": …}`.
#[derive(Debug, Clone)]
pub enum Expected {
    /// These bytes.
    Exact(Vec<u8>),
    /// Anything of this kind (README "Matchers").
    Is(String),
}

impl Expected {
    /// Reads an expected value of a case.
    pub fn parse(v: &Json, env: &Env) -> Result<Self> {
        if let Some(kind) = v.as_object().and_then(|o| o.get("is")) {
            let kind = kind.as_str().ok_or_else(|| anyhow!("is takes a string"))?;
            return Ok(Self::Is(kind.to_owned()));
        }
        field_value(v, env).map(Self::Exact)
    }

    /// Whether `actual` is what this expects; `Err` says why not.
    pub fn check(&self, actual: &[u8], env: &Env) -> Result<(), String> {
        let text = std::str::from_utf8(actual).ok();
        let ok = match self {
            Self::Exact(bytes) => bytes == actual,
            Self::Is(kind) => match kind.as_str() {
                "any" => true,
                "entry_id" => env.entry_id.as_deref().is_some_and(|id| text == Some(id)),
                "returned_id" => env
                    .returned_id
                    .as_deref()
                    .is_some_and(|id| text == Some(id)),
                "entry_id_like" => text.is_some_and(is_entry_id),
                "decimal" => {
                    text.is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                }
                "unix_ms" => text
                    .and_then(|t| t.parse::<i64>().ok())
                    .is_some_and(|ms| (ms - env.now_ms).abs() < 60_000),
                "consumer" => text.is_some_and(|t| !t.is_empty()),
                "queue" => text == Some(env.queue.as_str()),
                "member" => env.member.as_deref() == Some(actual),
                "packed_fields" => packed_fields_match(actual, &env.written),
                other => return Err(format!("unknown matcher {other:?}")),
            },
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}, got {}", self.show(), show(actual)))
        }
    }

    fn show(&self) -> String {
        match self {
            Self::Exact(b) => show(b),
            Self::Is(k) => format!("<{k}>"),
        }
    }
}

/// `123-4`.
fn is_entry_id(t: &str) -> bool {
    let mut parts = t.split('-');
    let digits =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// A packed `raw`: a map of the written fields in order, duplicates kept.
fn packed_fields_match(raw: &[u8], written: &[(Vec<u8>, Vec<u8>)]) -> bool {
    let mut cursor = raw;
    let Ok(rmpv::Value::Map(pairs)) = rmpv::decode::read_value(&mut cursor) else {
        return false;
    };
    cursor.is_empty()
        && pairs.len() == written.len()
        && pairs.iter().zip(written).all(|((k, v), (wk, wv))| {
            bytes_of(k) == Some(wk.as_slice()) && bytes_of(v) == Some(wv.as_slice())
        })
}

/// The bytes of a str or bin value.
pub fn bytes_of(v: &rmpv::Value) -> Option<&[u8]> {
    match v {
        rmpv::Value::String(s) => Some(s.as_bytes()),
        rmpv::Value::Binary(b) => Some(b),
        _ => None,
    }
}

/// Bytes for a message: text when printable UTF-8, else escaped.
pub fn show(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(t) if !t.chars().any(char::is_control) => format!("{t:?}"),
        _ => format!("b{:?}", bytes.escape_ascii().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn msgpack_values_encode_like_the_other_languages() {
        let env = Env::default();
        let bytes = field_value(
            &json!({"msgpack": {"n": 1, "big": 300, "neg": -2, "s": "é"}}),
            &env,
        )
        .unwrap();
        assert_eq!(
            bytes,
            b"\x84\xa1n\x01\xa3big\xcd\x01\x2c\xa3neg\xfe\xa1s\xa2\xc3\xa9"
        );
    }

    #[test]
    fn members_write_text_as_str_and_other_values_as_bin() {
        let env = Env::default();
        let m = member(
            &json!({"map": [["type", "t"], ["payload", {"hex": "c0"}], ["n", {"int": 3}]]}),
            &env,
        )
        .unwrap();
        assert_eq!(m, b"\x83\xa4type\xa1t\xa7payload\xc4\x01\xc0\xa1n\x03");
    }

    #[test]
    fn matchers() {
        let env = Env {
            entry_id: Some("1-0".into()),
            now_ms: 1000,
            ..Env::default()
        };
        assert!(Expected::Is("entry_id".into()).check(b"1-0", &env).is_ok());
        assert!(Expected::Is("entry_id".into()).check(b"1-1", &env).is_err());
        assert!(Expected::Is("unix_ms".into()).check(b"2000", &env).is_ok());
        assert!(
            Expected::Is("unix_ms".into())
                .check(b"99999999", &env)
                .is_err()
        );
        assert!(Expected::Is("decimal".into()).check(b"-1", &env).is_err());
    }
}
