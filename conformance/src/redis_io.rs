//! The few Redis reads and writes the runner makes, with a plain client:
//! the runner checks bytes as another language would see them.

use anyhow::{Context, Result, anyhow, bail};
use redis::Value;
use redis::aio::MultiplexedConnection;

/// Field/value pairs, in order, duplicates kept.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// A connection to the server under test.
pub async fn connect(url: &str) -> Result<MultiplexedConnection> {
    let client = redis::Client::open(url).context("the Redis URL")?;
    client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")
}

/// The server's clock, unix ms (`TIME`).
pub async fn server_ms(conn: &mut MultiplexedConnection) -> Result<i64> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await?;
    Ok(secs * 1000 + micros / 1000)
}

/// `XADD key * fields…`: the entry id.
pub async fn xadd(conn: &mut MultiplexedConnection, key: &str, fields: &Fields) -> Result<String> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*");
    for (k, v) in fields {
        cmd.arg(k.as_slice()).arg(v.as_slice());
    }
    Ok(cmd.query_async(conn).await?)
}

/// Every entry of a stream: (entry id, fields).
pub async fn xrange(conn: &mut MultiplexedConnection, key: &str) -> Result<Vec<(String, Fields)>> {
    let reply: Value = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await?;
    let Value::Array(entries) = reply else {
        bail!("XRANGE {key}: not an array")
    };
    entries
        .into_iter()
        .map(|entry| {
            let Value::Array(mut parts) = entry else {
                bail!("XRANGE {key}: an entry is not an array")
            };
            if parts.len() != 2 {
                bail!("XRANGE {key}: an entry is not [id, fields]");
            }
            let fields = parts.pop().ok_or_else(|| anyhow!("no fields"))?;
            let id = bulk(parts.pop().ok_or_else(|| anyhow!("no id"))?)?;
            let Value::Array(flat) = fields else {
                bail!("XRANGE {key}: fields are not an array")
            };
            let mut pairs = Vec::with_capacity(flat.len() / 2);
            let mut flat = flat.into_iter();
            while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
                pairs.push((bulk(k)?, bulk(v)?));
            }
            Ok((String::from_utf8(id).context("entry id")?, pairs))
        })
        .collect()
}

/// Every member of a sorted set with its score.
pub async fn zrange(conn: &mut MultiplexedConnection, key: &str) -> Result<Vec<(Vec<u8>, f64)>> {
    Ok(redis::cmd("ZRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?)
}

fn bulk(v: Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        other => bail!("expected a string, got {other:?}"),
    }
}

/// The decoded fields of a `scheduled` member, as a worker reads them
/// (str or bin as bytes, integers as decimal text, booleans as 1/0);
/// `None` for a member that is not such a map.
pub fn member_fields(member: &[u8]) -> Option<Fields> {
    let mut cursor = member;
    let rmpv::Value::Map(pairs) = rmpv::decode::read_value(&mut cursor).ok()? else {
        return None;
    };
    if !cursor.is_empty() {
        return None;
    }
    pairs
        .iter()
        .map(|(k, v)| Some((scalar(k)?, scalar(v)?)))
        .collect()
}

fn scalar(v: &rmpv::Value) -> Option<Vec<u8>> {
    match v {
        rmpv::Value::String(s) => Some(s.as_bytes().to_vec()),
        rmpv::Value::Binary(b) => Some(b.clone()),
        rmpv::Value::Integer(i) => Some(i.to_string().into_bytes()),
        rmpv::Value::Boolean(b) => Some(if *b { b"1".to_vec() } else { b"0".to_vec() }),
        _ => None,
    }
}

/// The value of the first field named `name`.
pub fn first<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// The value of the last field named `name` (the context a worker appends
/// to a dead entry comes last).
pub fn last<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .rev()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// A `stats` counter (0 when absent).
pub async fn counter(conn: &mut MultiplexedConnection, key: &str, name: &str) -> Result<i64> {
    let v: Option<i64> = redis::cmd("HGET")
        .arg(key)
        .arg(name)
        .query_async(conn)
        .await?;
    Ok(v.unwrap_or(0))
}

/// `XLEN` + `ZCARD`: jobs still in `ready` or `scheduled`.
pub async fn backlog(
    conn: &mut MultiplexedConnection,
    ready: &str,
    scheduled: &str,
) -> Result<(u64, u64)> {
    let r: u64 = redis::cmd("XLEN").arg(ready).query_async(conn).await?;
    let s: u64 = redis::cmd("ZCARD").arg(scheduled).query_async(conn).await?;
    Ok((r, s))
}

/// What a producer must write (docs/wire-format.md): a map whose keys are
/// str and whose values are str or bin. Workers accept more (integers,
/// booleans, bin keys); a producer should not rely on it.
pub fn strict_member(member: &[u8]) -> Result<(), String> {
    let mut cursor = member;
    let Ok(rmpv::Value::Map(pairs)) = rmpv::decode::read_value(&mut cursor) else {
        return Err("the scheduled member is not a MessagePack map".into());
    };
    for (k, v) in &pairs {
        let Some(name) = k.as_str() else {
            return Err(format!("a scheduled member's key is not a str: {k}"));
        };
        if !matches!(v, rmpv::Value::String(_) | rmpv::Value::Binary(_)) {
            return Err(format!(
                "field {name:?} of the scheduled member is neither str nor bin: {v}"
            ));
        }
    }
    Ok(())
}
