//! The raw Redis Streams cycle, written as plainly as a user of the client
//! library would: the limit jobstream is measured against. Same client
//! library (redis-rs), same payloads, same server, same run.

use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::MultiplexedConnection;

use crate::Payload;

fn xadd(key: &str, payload: &[u8]) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key)
        .arg("*")
        .arg("type")
        .arg("bench")
        .arg("payload")
        .arg(payload);
    cmd
}

/// `n` sequential awaited XADDs.
pub async fn single_xadd(
    conn: &mut MultiplexedConnection,
    key: &str,
    n: usize,
    payload: &Payload,
) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let _: redis::RedisResult<String> = xadd(key, &payload.bytes()).query_async(conn).await;
    }
    t.elapsed()
}

/// `n` XADDs in pipelines of `batch`.
pub async fn bulk_xadd(
    conn: &mut MultiplexedConnection,
    key: &str,
    n: usize,
    batch: usize,
    payload: &Payload,
) -> Duration {
    bulk_xadd_wait(conn, key, n, batch, None, payload).await
}

/// `n` XADDs in pipelines of `batch`, each pipeline ending with `WAIT
/// replicas 1000` when `replicas` is given: the raw limit of an enqueue
/// acknowledged by replicas.
pub async fn bulk_xadd_wait(
    conn: &mut MultiplexedConnection,
    key: &str,
    n: usize,
    batch: usize,
    replicas: Option<u32>,
    payload: &Payload,
) -> Duration {
    let t = Instant::now();
    let bytes = payload.bytes();
    let mut left = n;
    while left > 0 {
        let k = left.min(batch);
        let mut pipe = redis::pipe();
        for _ in 0..k {
            pipe.add_command(xadd(key, &bytes)).ignore();
        }
        if let Some(replicas) = replicas {
            pipe.cmd("WAIT").arg(replicas).arg(1000).ignore();
        }
        let _: redis::RedisResult<()> = pipe.query_async(conn).await;
        left -= k;
    }
    t.elapsed()
}

/// Entry ids (and the payload of each) of an XREADGROUP reply.
fn entries(v: Value) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Value::Array(streams) = v else { return out };
    for s in streams {
        let Value::Array(mut parts) = s else { continue };
        let Some(Value::Array(list)) = parts.pop() else {
            continue;
        };
        for e in list {
            let Value::Array(mut kv) = e else { continue };
            let fields = kv.pop();
            let Some(Value::BulkString(id)) = kv.pop() else {
                continue;
            };
            let mut payload = Vec::new();
            if let Some(Value::Array(f)) = fields {
                let mut it = f.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    if let (Value::BulkString(k), Value::BulkString(v)) = (k, v)
                        && k == b"payload"
                    {
                        payload = v;
                    }
                }
            }
            out.push((String::from_utf8_lossy(&id).into_owned(), payload));
        }
    }
    out
}

fn read_cmd(key: &str, count: usize, block_ms: u64) -> redis::Cmd {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg("raw")
        .arg("c1")
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(block_ms);
    cmd.arg("STREAMS").arg(key).arg(">");
    cmd
}

async fn ack_del(conn: &mut MultiplexedConnection, key: &str, ids: &[String]) {
    let mut pipe = redis::pipe();
    pipe.cmd("XACK").arg(key).arg("raw").arg(ids).ignore();
    pipe.cmd("XDEL").arg(key).arg(ids).ignore();
    let _: redis::RedisResult<()> = pipe.query_async(conn).await;
}

pub async fn create_group(conn: &mut MultiplexedConnection, key: &str) {
    let _: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("raw")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(conn)
        .await;
}

/// XREADGROUP COUNT 100, then one pipeline of XACK + XDEL per batch, until
/// `n` entries are done.
pub async fn drain(conn: &mut MultiplexedConnection, key: &str, n: usize) -> Duration {
    let t = Instant::now();
    create_group(conn, key).await;
    let mut done = 0;
    while done < n {
        let v: Value = read_cmd(key, 100, 1000)
            .query_async(conn)
            .await
            .unwrap_or(Value::Nil);
        let batch = entries(v);
        if batch.is_empty() {
            continue;
        }
        let ids: Vec<String> = batch.into_iter().map(|(id, _)| id).collect();
        ack_del(conn, key, &ids).await;
        done += ids.len();
    }
    t.elapsed()
}

/// A blocked consumer: for `n` entries, the time from the payload's send
/// stamp to the moment the entry is in hand, in ms.
pub async fn pickup(conn: &mut MultiplexedConnection, key: &str, n: usize) -> Vec<f64> {
    let mut lat = Vec::with_capacity(n);
    while lat.len() < n {
        let v: Value = read_cmd(key, 100, 1000)
            .query_async(conn)
            .await
            .unwrap_or(Value::Nil);
        let batch = entries(v);
        let now = crate::now_ns();
        let mut ids = Vec::with_capacity(batch.len());
        for (id, payload) in batch {
            if let Ok(p) = rmp_serde::from_slice::<Payload>(&payload) {
                lat.push(now.saturating_sub(p.sent_ns) as f64 / 1e6);
            }
            ids.push(id);
        }
        if !ids.is_empty() {
            ack_del(conn, key, &ids).await;
        }
    }
    lat
}
