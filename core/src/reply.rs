//! Parsing of stream replies from `redis::Value`, by hand: no per-entry
//! `HashMap`, and any shape Redis (or a proxy) might send is an error, never
//! a panic.

use redis::Value;

use crate::error::{Error, Result};

/// One stream entry: its id and its fields in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// Entry id, `ms-seq`.
    pub id: String,
    /// Field, value pairs.
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

pub(crate) fn bytes(op: &'static str, v: Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        other => Err(Error::protocol(
            op,
            format!("expected a string, got {other:?}"),
        )),
    }
}

pub(crate) fn string(op: &'static str, v: Value) -> Result<String> {
    String::from_utf8(bytes(op, v)?).map_err(|_| Error::protocol(op, "string is not UTF-8"))
}

pub(crate) fn int(op: &'static str, v: &Value) -> Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::BulkString(b) => std::str::from_utf8(b)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::protocol(op, "expected an integer")),
        other => Err(Error::protocol(
            op,
            format!("expected an integer, got {other:?}"),
        )),
    }
}

pub(crate) fn array(op: &'static str, v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(Error::protocol(
            op,
            format!("expected an array, got {other:?}"),
        )),
    }
}

/// Field, value pairs from a flat array (`f1 v1 f2 v2 ...`).
pub(crate) fn pairs(op: &'static str, v: Value) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let items = array(op, v)?;
    if items.len() % 2 != 0 {
        return Err(Error::protocol(op, "odd number of field values"));
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((bytes(op, k)?, bytes(op, v)?));
    }
    Ok(out)
}

/// One `[id, [f, v, ...]]` entry.
pub(crate) fn entry(op: &'static str, v: Value) -> Result<StreamEntry> {
    let mut parts = array(op, v)?.into_iter();
    let (Some(id), Some(fields)) = (parts.next(), parts.next()) else {
        return Err(Error::protocol(op, "stream entry without id and fields"));
    };
    Ok(StreamEntry {
        id: string(op, id)?,
        fields: pairs(op, fields)?,
    })
}

/// A list of entries, as XRANGE returns it.
pub(crate) fn entries(op: &'static str, v: Value) -> Result<Vec<StreamEntry>> {
    array(op, v)?.into_iter().map(|e| entry(op, e)).collect()
}

/// The entries of the single stream in an XREADGROUP reply (nil on timeout).
pub(crate) fn read_reply(op: &'static str, v: Value) -> Result<Vec<StreamEntry>> {
    let streams = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(kv) => kv.into_iter().map(|(_, e)| e).collect(),
        other => array(op, other)?
            .into_iter()
            .map(|s| {
                let mut parts = array(op, s)?.into_iter();
                parts
                    .nth(1)
                    .ok_or_else(|| Error::protocol(op, "stream without entries"))
            })
            .collect::<Result<Vec<_>>>()?,
    };
    let mut out = Vec::new();
    for s in streams {
        out.extend(entries(op, s)?);
    }
    Ok(out)
}

/// Field, value pairs of a flat reply as a lookup (XINFO replies).
pub(crate) fn info_map(op: &'static str, v: Value) -> Result<Vec<(String, Value)>> {
    let items = match v {
        Value::Map(kv) => {
            return kv
                .into_iter()
                .map(|(k, v)| Ok((string(op, k)?, v)))
                .collect();
        }
        other => array(op, other)?,
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((string(op, k)?, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn read_reply_parses_resp2_and_tolerates_nil() {
        let v = Value::Array(vec![Value::Array(vec![
            bs("q"),
            Value::Array(vec![Value::Array(vec![
                bs("1-0"),
                Value::Array(vec![bs("type"), bs("t"), bs("payload"), bs("x")]),
            ])]),
        ])]);
        let e = read_reply("t", v).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].id, "1-0");
        assert_eq!(e[0].fields[0], (b"type".to_vec(), b"t".to_vec()));
        assert!(read_reply("t", Value::Nil).unwrap().is_empty());
    }

    #[test]
    fn odd_shapes_are_errors_not_panics() {
        for v in [
            Value::Int(3),
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![Value::Array(vec![
                bs("q"),
                Value::Array(vec![bs("1-0")]),
            ])]),
            Value::Array(vec![Value::Array(vec![
                bs("q"),
                Value::Array(vec![Value::Array(vec![
                    bs("1-0"),
                    Value::Array(vec![bs("f")]),
                ])]),
            ])]),
        ] {
            assert!(read_reply("t", v).is_err());
        }
    }
}
