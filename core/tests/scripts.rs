#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One test per Lua script against a real redis-server: seed, run, read back.

use std::time::Duration;

use jobstream_core::envelope::fields_to_msgpack;
use jobstream_core::{QueueStore, StreamEntry};
use jobstream_testkit::RedisServer;

mod common;
use common::*;

/// Entries pending in the group, from the XPENDING summary.
fn pending_count(server: &RedisServer, s: &QueueStore) -> String {
    cli(server, &["XPENDING", s.keys().ready(), "workers"])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn field<'a>(e: &'a StreamEntry, name: &str) -> Option<&'a [u8]> {
    e.fields
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

#[tokio::test]
async fn ack_deletes_owned_entries_counts_them_and_reports_foreign_ones() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 3).await;
    let mine = fetch(&s, C1, 2).await;
    let theirs = fetch(&s, C2, 1).await;
    let ids: Vec<&str> = mine.iter().chain(&theirs).map(|e| e.id.as_str()).collect();
    let lost = s.ack(C1, "processed", &ids).await.unwrap();
    assert_eq!(lost, vec![theirs[0].id.clone()]);
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "1");
    assert_eq!(cli(&server, &["HGET", s.keys().stats(), "processed"]), "2");
    assert_eq!(pending_count(&server, &s), "1");
}

/// Calls of `command` so far, from INFO commandstats.
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = cli(server, &["INFO", "commandstats"]);
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The ack of `ack_deletes_owned_entries…`, on a fresh queue.
async fn ack_two_of_three(server: &RedisServer, s: &QueueStore) {
    s.ensure_group().await.unwrap();
    add(s, 3).await;
    let mine = fetch(s, C1, 2).await;
    let theirs = fetch(s, C2, 1).await;
    let ids: Vec<&str> = mine.iter().chain(&theirs).map(|e| e.id.as_str()).collect();
    let lost = s.ack(C1, "processed", &ids).await.unwrap();
    assert_eq!(lost, vec![theirs[0].id.clone()]);
    assert_eq!(cli(server, &["XLEN", s.keys().ready()]), "1");
    assert_eq!(cli(server, &["HGET", s.keys().stats(), "processed"]), "2");
    assert_eq!(pending_count(server, s), "1");
}

#[tokio::test]
async fn ack_uses_xackdel_where_the_server_has_it_and_falls_back_where_not() {
    use jobstream_core::{QueueKeys, QueueName, Redis, Timings};
    let server = RedisServer::start();
    let has = !cli(&server, &["COMMAND", "INFO", "XACKDEL"]).is_empty();
    let redis = Redis::open(&server.url(), &Timings::default()).unwrap();
    // A fresh queue on the same connection (the probe's result lives there).
    let queue = || {
        let name = QueueName::new(&jobstream_testkit::unique_queue("ack")).unwrap();
        QueueStore::new(redis.clone(), QueueKeys::new("jobstream", &name), "workers")
    };
    // As probed: XACKDEL on Redis 8.2+, XACK + XDEL elsewhere.
    redis.detect_features().await;
    ack_two_of_three(&server, &queue()).await;
    assert_eq!(
        calls(&server, "xackdel") > 0,
        has,
        "XACKDEL used iff the server has it"
    );
    assert_eq!(calls(&server, "xack") > 0, !has);
    // Forced the other way. With XACKDEL: the old path still works.
    // Without: the forced XACKDEL fails inside the script before any change,
    // the same call falls back, and the fallback sticks.
    redis.use_xackdel(!has);
    let xack_before = calls(&server, "xack");
    ack_two_of_three(&server, &queue()).await;
    assert!(calls(&server, "xack") > xack_before);
    if !has {
        let (xack, evalsha) = (calls(&server, "xack"), calls(&server, "evalsha"));
        ack_two_of_three(&server, &queue()).await;
        assert_eq!(calls(&server, "xack"), xack + 1);
        // One script call for the ack (plus XGROUP and the reads): no
        // failed XACKDEL attempt first.
        assert_eq!(calls(&server, "evalsha"), evalsha + 1);
    }
}

#[tokio::test]
async fn retry_moves_an_owned_entry_to_scheduled_atomically() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 1).await;
    let e = fetch(&s, C1, 1).await.remove(0);
    assert!(
        !s.retry(C2, &e.id, 123, b"m").await.unwrap(),
        "not the owner"
    );
    assert_eq!(cli(&server, &["ZCARD", s.keys().scheduled()]), "0");
    assert!(s.retry(C1, &e.id, 123, b"m").await.unwrap());
    assert_eq!(cli(&server, &["ZSCORE", s.keys().scheduled(), "m"]), "123");
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "0");
    assert_eq!(cli(&server, &["HGET", s.keys().stats(), "retried"]), "1");
}

#[tokio::test]
async fn dead_moves_an_owned_entry_with_its_context() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 1).await;
    let e = fetch(&s, C1, 1).await.remove(0);
    let mut fields = e.fields.clone();
    fields.push((b"reason".to_vec(), b"permanent".to_vec()));
    assert!(!s.dead(C2, &e.id, 0, &fields).await.unwrap());
    assert!(s.dead(C1, &e.id, 1000, &fields).await.unwrap());
    let dead = s.dead_entries("-", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(field(&dead[0], "reason"), Some(&b"permanent"[..]));
    assert_eq!(field(&dead[0], "payload"), field(&e, "payload"));
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "0");
    assert_eq!(cli(&server, &["HGET", s.keys().stats(), "dead"]), "1");
}

#[tokio::test]
async fn promote_moves_due_members_in_bounded_batches_and_reports_the_next_due_time() {
    let server = RedisServer::start();
    let s = store(&server);
    let member = |i: usize| {
        let mut f = job(i);
        f.push((b"id".to_vec(), format!("job-{i}").into_bytes()));
        f.push((b"attempt".to_vec(), b"2".to_vec()));
        fields_to_msgpack(&f)
    };
    let items: Vec<(u64, Vec<u8>)> = (0..5).map(|i| (100 + i as u64, member(i))).collect();
    s.schedule(&items).await.unwrap();
    s.schedule(&[(10_000, member(9))]).await.unwrap();
    assert_eq!(s.promote(1000, 3, 0).await.unwrap(), (3, Some(103), 0));
    assert_eq!(s.promote(1000, 3, 0).await.unwrap(), (2, Some(10_000), 0));
    assert_eq!(s.promote(1000, 3, 0).await.unwrap(), (0, Some(10_000), 0));
    let ready = s.dead_entries("-", 1).await.unwrap();
    assert!(ready.is_empty());
    let out = cli(&server, &["XRANGE", s.keys().ready(), "-", "+"]);
    assert!(out.contains("job-0") && out.contains("job-4") && !out.contains("job-9"));
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "5");
    assert_eq!(s.promote(20_000, 3, 0).await.unwrap(), (1, None, 0));
}

#[tokio::test]
async fn promote_accepts_members_written_by_other_languages_and_dead_letters_garbage() {
    let server = RedisServer::start();
    let s = store(&server);
    // str keys, bin payload, int attempt, bool flag: what msgpack libraries write by default.
    let mut m = vec![0x84];
    m.extend([0xa4]);
    m.extend(b"type");
    m.extend([0xa1, b't']);
    m.extend([0xa7]);
    m.extend(b"payload");
    m.extend([0xc4, 0x02, 0x91, 0x01]);
    m.extend([0xa7]);
    m.extend(b"attempt");
    m.extend([0xcd, 0x01, 0x00]);
    m.extend([0xa4]);
    m.extend(b"flag");
    m.extend([0xc3]);
    s.schedule(&[
        (1, m),
        (2, b"not msgpack".to_vec()),
        (3, vec![0x81, 0xa1, b'k']),
    ])
    .await
    .unwrap();
    assert_eq!(s.promote(10, 10, 0).await.unwrap(), (1, None, 2));
    let mut conn = s.redis().blocking().await.unwrap();
    s.ensure_group().await.unwrap();
    let e = s
        .read(&mut conn, C1, 10, Some(Duration::from_millis(10)))
        .await
        .unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(field(&e[0], "payload"), Some(&[0x91, 0x01][..]));
    assert_eq!(field(&e[0], "attempt"), Some(&b"256"[..]));
    assert_eq!(field(&e[0], "flag"), Some(&b"1"[..]));
    let dead = s.dead_entries("-", 10).await.unwrap();
    assert_eq!(dead.len(), 2, "both undecodable members are kept in dead");
    assert!(
        dead.iter()
            .all(|d| field(d, "reason") == Some(&b"malformed"[..]))
    );
    assert_eq!(field(&dead[0], "raw"), Some(&b"not msgpack"[..]));
}

#[tokio::test]
async fn requeue_gives_unstarted_jobs_back_with_a_stable_id() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let ids = add(&s, 2).await;
    let got = fetch(&s, C1, 2).await;
    let refs: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(s.requeue(C2, &refs).await.unwrap(), 0, "not the owner");
    assert_eq!(s.requeue(C1, &refs).await.unwrap(), 2);
    let again = fetch(&s, C2, 10).await;
    assert_eq!(again.len(), 2);
    assert_eq!(field(&again[0], "id"), Some(ids[0].as_bytes()));
    assert!(field(&again[0], "enqueued_at").is_some());
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "2");
}

#[tokio::test]
async fn extend_resets_idle_time_of_owned_entries_and_reports_lost_ones() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 2).await;
    let a = fetch(&s, C1, 1).await.remove(0);
    let b = fetch(&s, C2, 1).await.remove(0);
    tokio::time::sleep(Duration::from_millis(120)).await;
    let lost = s.extend(C1, &[&a.id, &b.id]).await.unwrap();
    assert_eq!(lost, vec![b.id.clone()]);
    // a was refreshed, b was not: only b is idle long enough to reclaim.
    let claimed = s
        .reclaim(C2, Duration::from_millis(100), "0-0", 10, 5, 0, 1)
        .await
        .unwrap()
        .entries;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].entry.id, b.id);
    let out = cli(
        &server,
        &["XPENDING", s.keys().ready(), "workers", "-", "+", "10"],
    );
    assert!(out.contains(C1), "a stays with its owner: {out}");
}

#[tokio::test]
async fn reclaim_takes_idle_jobs_and_dead_letters_those_delivered_too_often() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 2).await;
    let got = fetch(&s, C1, 2).await;
    let poison = &got[0].id;
    // Deliver the first entry 3 more times (crash loop): deliveries = 4.
    for _ in 0..3 {
        cli(
            &server,
            &["XCLAIM", s.keys().ready(), "workers", C1, "0", poison],
        );
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let r = s
        .reclaim(C2, Duration::from_millis(10), "0-0", 10, 4, 0, 42)
        .await
        .unwrap();
    let claimed = r.entries;
    assert_eq!(r.next_cursor, "0-0");
    assert_eq!((r.abandoned, r.failed), (1, 0));
    assert_eq!(claimed.len(), 1, "the healthy job is claimed");
    assert_eq!(claimed[0].entry.id, got[1].id);
    assert_eq!(claimed[0].deliveries, 2);
    let dead = s.dead_entries("-", 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(field(&dead[0], "reason"), Some(&b"abandoned"[..]));
    assert_eq!(field(&dead[0], "deliveries"), Some(&b"5"[..]));
    assert_eq!(field(&dead[0], "id"), Some(poison.as_bytes()));
    assert_eq!(field(&dead[0], "worker"), Some(C2.as_bytes()));
    assert_eq!(
        field(&dead[0], "queue"),
        Some(s.keys().name().as_str().as_bytes())
    );
    assert!(field(&dead[0], "enqueued_at").is_some());
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "1");
}

#[tokio::test]
async fn reclaim_drops_pending_entries_whose_job_was_deleted() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let ids = add(&s, 1).await;
    fetch(&s, C1, 1).await;
    cli(&server, &["XDEL", s.keys().ready(), &ids[0]]);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let claimed = s
        .reclaim(C2, Duration::from_millis(5), "0-0", 10, 5, 0, 1)
        .await
        .unwrap()
        .entries;
    assert!(claimed.is_empty());
    assert_eq!(pending_count(&server, &s), "0");
}

#[tokio::test]
async fn replay_moves_dead_jobs_back_once_with_attempts_reset() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 1).await;
    let e = fetch(&s, C1, 1).await.remove(0);
    let mut fields = e.fields.clone();
    for (k, v) in [
        ("id", "job-7"),
        ("attempt", "5"),
        ("reason", "exhausted"),
        ("error", "boom"),
        ("traceparent", "00-a-b-01"),
        ("x-tenant", "acme"),
    ] {
        fields.push((k.into(), v.into()));
    }
    assert!(s.dead(C1, &e.id, 0, &fields).await.unwrap());
    let dead = s.dead_entries("-", 10).await.unwrap();
    let dead_id = dead[0].id.as_str();
    assert_eq!(s.replay(&[dead_id, dead_id]).await.unwrap(), 1);
    assert_eq!(
        s.replay(&[dead_id]).await.unwrap(),
        0,
        "replaying twice never duplicates"
    );
    let back = fetch(&s, C2, 10).await;
    assert_eq!(back.len(), 1);
    let e = &back[0];
    assert_eq!(field(e, "id"), Some(&b"job-7"[..]));
    assert_eq!(field(e, "attempt"), Some(&b"1"[..]));
    assert_eq!(field(e, "traceparent"), Some(&b"00-a-b-01"[..]));
    assert_eq!(field(e, "x-tenant"), Some(&b"acme"[..]));
    assert_eq!(field(e, "reason"), None);
    assert_eq!(field(e, "error"), None);
    assert_eq!(cli(&server, &["XLEN", s.keys().dead()]), "0");
}

#[tokio::test]
async fn reap_removes_only_idle_consumers_with_nothing_pending() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 1).await;
    fetch(&s, "busy", 1).await;
    for name in ["idle", "me"] {
        cli(
            &server,
            &[
                "XGROUP",
                "CREATECONSUMER",
                s.keys().ready(),
                "workers",
                name,
            ],
        );
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        s.reap_consumers(Duration::from_millis(150), "me")
            .await
            .unwrap(),
        1
    );
    let out = cli(
        &server,
        &["XINFO", "CONSUMERS", s.keys().ready(), "workers"],
    );
    // Field, value pairs per consumer; how many fields depends on the
    // server (Redis 7.2+ and Valkey add `inactive`).
    let lines: Vec<&str> = out.lines().collect();
    let names: Vec<&str> = lines
        .chunks(2)
        .filter(|kv| kv[0] == "name")
        .map(|kv| kv[1])
        .collect();
    assert_eq!(names, vec!["busy", "me"], "{out}");
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    assert_eq!(s.promote(1, 10, 0).await.unwrap(), (0, None, 0));
    cli(&server, &["SCRIPT", "FLUSH"]);
    assert_eq!(s.promote(1, 10, 0).await.unwrap(), (0, None, 0));
}

#[tokio::test]
async fn stats_match_what_redis_holds() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 5).await;
    let got = fetch(&s, C1, 2).await;
    s.ack(C1, "processed", &[&got[0].id]).await.unwrap();
    s.schedule(&[(u64::MAX / 2, b"x".to_vec())]).await.unwrap();
    let now = jobstream_core::now_ms();
    let st = s.stats(now + 1000).await.unwrap();
    assert_eq!(
        (
            st.ready,
            st.in_flight,
            st.scheduled,
            st.processed,
            st.consumers
        ),
        (3, 1, 1, 1, 1)
    );
    assert!(st.oldest_ready_age_ms >= 1000, "{st:?}");
    let empty = store(&server).stats(now).await.unwrap();
    assert_eq!(empty.ready + empty.in_flight + empty.consumers, 0);
}

// ---------------------------------------------------------------------------
// Never lost: every loss path found by fault injection, reproduced against
// the real server. Each of these tests fails on the scripts as they were
// before the rules of scripts/README.md "Never lost".

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// Largest possible stream id: after it, every `XADD key *` fails.
const MAX_ID: &str = "18446744073709551615-18446744073709551615";

async fn raw_conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every entry of a stream, fields in order, bytes as they are.
async fn xrange(server: &RedisServer, key: &str) -> Vec<(String, Fields)> {
    let mut c = raw_conn(server).await;
    let v: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    v.into_iter()
        .map(|(id, f)| {
            let pairs = f.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            (id, pairs)
        })
        .collect()
}

fn get<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// A counter of the queue's stats hash (0 when missing).
fn stat(server: &RedisServer, s: &QueueStore, name: &str) -> i64 {
    cli(server, &["HGET", s.keys().stats(), name])
        .parse()
        .unwrap_or(0)
}

/// The message of a Redis error from a store call.
fn redis_message(e: jobstream_core::Error) -> String {
    match e {
        jobstream_core::Error::Redis { message, .. } => message,
        other => panic!("not a Redis error: {other}"),
    }
}

/// `n` fields with repeated names (every 7th name repeats), binary values,
/// an empty name and an empty value.
fn wide_fields(n: usize) -> Fields {
    (0..n)
        .map(|i| {
            let name = match i {
                0 => b"type".to_vec(),
                1 => b"payload".to_vec(),
                2 => Vec::new(),
                _ => format!("f{}", i % (n / 7 + 1)).into_bytes(),
            };
            let value = match i {
                0 => b"t".to_vec(),
                1 => vec![0x91, 0x01],
                3 => Vec::new(),
                _ => vec![(i % 256) as u8, 0xff, b'v', (i / 256) as u8],
            };
            (name, value)
        })
        .collect()
}

/// A MessagePack map of str names and bin values, as written by
/// `fields_to_msgpack`, read back with rmp: names and values in order.
fn decode_raw(raw: &[u8]) -> Fields {
    let mut r = raw;
    let n = rmp::decode::read_map_len(&mut r).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let k = rmp::decode::read_str_len(&mut r).unwrap() as usize;
        let name = r[..k].to_vec();
        r = &r[k..];
        let v = rmp::decode::read_bin_len(&mut r).unwrap() as usize;
        let value = r[..v].to_vec();
        r = &r[v..];
        out.push((name, value));
    }
    assert!(r.is_empty(), "trailing bytes after the map");
    out
}

async fn add_fields(s: &QueueStore, fields: &Fields) -> String {
    let refs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    s.add(&refs).await.unwrap()
}

/// A member with every str and bin header size; `cuts` are the prefix
/// lengths that end inside one of its length headers.
fn member_with_every_length_header() -> (Vec<u8>, Vec<usize>) {
    let mut m = vec![0x86];
    let mut cuts = Vec::new();
    let mut put = |m: &mut Vec<u8>, marker: u8, size: usize, data: &[u8]| {
        m.push(marker);
        // Cut right after the marker, and after each length byte but the last.
        cuts.extend(m.len()..m.len() + size);
        m.extend(&(data.len() as u64).to_be_bytes()[8 - size..]);
        m.extend(data);
    };
    put(&mut m, 0xd9, 1, b"type"); // str8
    put(&mut m, 0xc4, 1, b"t"); // bin8
    put(&mut m, 0xda, 2, b"payload"); // str16
    put(&mut m, 0xc5, 2, &[0x91, 0x01]); // bin16
    put(&mut m, 0xdb, 4, b"id"); // str32
    put(&mut m, 0xc6, 4, b"job-1"); // bin32
    for (k, v) in [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")] {
        m.push(0xa1);
        m.extend(k);
        m.push(0xa1);
        m.extend(v);
    }
    (m, cuts)
}

#[tokio::test]
async fn promote_dead_letters_members_cut_inside_a_length_header_with_their_exact_bytes() {
    let server = RedisServer::start();
    let s = store(&server);
    let (whole, cuts) = member_with_every_length_header();
    assert_eq!(cuts.len(), 14);
    let mut items = vec![(1, whole.clone())];
    items.extend(
        cuts.iter()
            .enumerate()
            .map(|(i, &c)| (10 + i as u64, whole[..c].to_vec())),
    );
    s.schedule(&items).await.unwrap();
    assert_eq!(
        s.promote(1000, 100, 0).await.unwrap(),
        (1, None, cuts.len() as u64)
    );
    assert_eq!(cli(&server, &["ZCARD", s.keys().scheduled()]), "0");
    let ready = xrange(&server, s.keys().ready()).await;
    assert_eq!(ready.len(), 1);
    assert_eq!(get(&ready[0].1, "id"), Some(&b"job-1"[..]));
    let dead = xrange(&server, s.keys().dead()).await;
    assert_eq!(dead.len(), cuts.len());
    for ((_, d), &c) in dead.iter().zip(&cuts) {
        assert_eq!(get(d, "raw"), Some(&whole[..c]), "cut at {c}");
        assert_eq!(get(d, "reason"), Some(&b"malformed"[..]));
    }
    assert_eq!(stat(&server, &s, "dead"), cuts.len() as i64);
    assert_eq!(stat(&server, &s, "dead_scheduled"), cuts.len() as i64);
}

#[tokio::test]
async fn promote_sends_members_wider_than_1024_fields_to_dead_whole_and_moves_1024() {
    let server = RedisServer::start();
    let s = store(&server);
    let (w4100, w1001, w1000) = (wide_fields(4100), wide_fields(1025), wide_fields(1024));
    let (m4100, m1001, m1000) = (
        fields_to_msgpack(&w4100),
        fields_to_msgpack(&w1001),
        fields_to_msgpack(&w1000),
    );
    s.schedule(&[(1, m4100.clone()), (2, m1001.clone()), (3, m1000.clone())])
        .await
        .unwrap();
    assert_eq!(s.promote(1000, 10, 0).await.unwrap(), (1, None, 2));
    assert_eq!(cli(&server, &["ZCARD", s.keys().scheduled()]), "0");
    let ready = xrange(&server, s.keys().ready()).await;
    assert_eq!(ready.len(), 1);
    assert_eq!(
        ready[0].1, w1000,
        "all 1024 fields, in order, duplicates kept"
    );
    let dead = xrange(&server, s.keys().dead()).await;
    assert_eq!(dead.len(), 2);
    assert_eq!(get(&dead[0].1, "raw"), Some(m4100.as_slice()));
    assert_eq!(get(&dead[1].1, "raw"), Some(m1001.as_slice()));
    assert_eq!(
        get(&dead[1].1, "error"),
        Some(&b"scheduled member has more than 1024 fields"[..])
    );
    assert_eq!(stat(&server, &s, "dead_scheduled"), 2);
}

#[tokio::test]
async fn promote_rejects_a_map_header_claiming_billions_of_pairs_at_once() {
    let server = RedisServer::start();
    let s = store(&server);
    let mut liar32 = vec![0xdf, 0xff, 0xff, 0xff, 0xff];
    liar32.extend([0x01; 64]);
    let mut liar16 = vec![0xde, 0xff, 0xff];
    liar16.extend(b"\xa1a\xa1b");
    s.schedule(&[(1, liar32.clone()), (2, liar16.clone())])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(s.promote(1000, 10, 0).await.unwrap(), (0, None, 2));
    assert!(started.elapsed() < Duration::from_secs(5));
    let dead = xrange(&server, s.keys().dead()).await;
    assert_eq!(get(&dead[0].1, "raw"), Some(liar32.as_slice()));
    assert_eq!(get(&dead[1].1, "raw"), Some(liar16.as_slice()));
    assert_eq!(stat(&server, &s, "dead_scheduled"), 2);
}

#[tokio::test]
async fn promote_keeps_integers_beyond_2_pow_53_as_raw_instead_of_rounding_them() {
    let server = RedisServer::start();
    let s = store(&server);
    let int_member = |marker: u8, be: [u8; 8]| {
        let mut m = vec![0x82, 0xa4];
        m.extend(b"type");
        m.extend([0xa1, b't', 0xa1, b'n', marker]);
        m.extend(be);
        m
    };
    let p53 = 1u64 << 53;
    let too_big = [
        int_member(0xcf, (p53 + 1).to_be_bytes()),
        int_member(0xcf, u64::MAX.to_be_bytes()),
        int_member(0xd3, (-(p53 as i64) - 1).to_be_bytes()),
        int_member(0xd3, i64::MIN.to_be_bytes()),
        int_member(0xd3, (p53 as i64 + 1).to_be_bytes()),
    ];
    let exact = [
        (int_member(0xcf, p53.to_be_bytes()), "9007199254740992"),
        (
            int_member(0xd3, (-(p53 as i64)).to_be_bytes()),
            "-9007199254740992",
        ),
        (
            int_member(0xd3, (-(p53 as i64) + 1).to_be_bytes()),
            "-9007199254740991",
        ),
        (int_member(0xd3, (-1i64).to_be_bytes()), "-1"),
    ];
    let mut items: Vec<(u64, Vec<u8>)> = Vec::new();
    for (i, m) in too_big.iter().enumerate() {
        items.push((i as u64, m.clone()));
    }
    for (i, (m, _)) in exact.iter().enumerate() {
        items.push((100 + i as u64, m.clone()));
    }
    s.schedule(&items).await.unwrap();
    assert_eq!(s.promote(1000, 100, 0).await.unwrap(), (4, None, 5));
    let dead = xrange(&server, s.keys().dead()).await;
    for (d, m) in dead.iter().zip(&too_big) {
        assert_eq!(get(&d.1, "raw"), Some(m.as_slice()));
    }
    let ready = xrange(&server, s.keys().ready()).await;
    for (r, (_, text)) in ready.iter().zip(&exact) {
        assert_eq!(get(&r.1, "n"), Some(text.as_bytes()));
    }
}

fn valid_member(i: usize) -> Vec<u8> {
    let mut f = job(i);
    f.push((b"id".to_vec(), format!("job-{i}").into_bytes()));
    fields_to_msgpack(&f)
}

#[tokio::test]
async fn promote_into_a_ready_stream_that_cannot_grow_loses_nothing_and_resumes_after_repair() {
    let server = RedisServer::start();
    let s = store(&server);
    let items: Vec<(u64, Vec<u8>)> = (0..20).map(|i| (i as u64, valid_member(i))).collect();
    s.schedule(&items).await.unwrap();
    cli(&server, &["XADD", s.keys().ready(), MAX_ID, "f", "v"]);
    for _ in 0..6 {
        let e = s.promote(1000, 5, 0).await.unwrap_err();
        assert!(redis_message(e).contains("exhausted"));
    }
    assert_eq!(cli(&server, &["ZCARD", s.keys().scheduled()]), "20");
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "1");
    // Repair: move the poisoned stream aside.
    let aside = format!("{}:aside", s.keys().ready());
    cli(&server, &["RENAME", s.keys().ready(), &aside]);
    let mut moved = 0;
    for _ in 0..4 {
        moved += s.promote(1000, 5, 0).await.unwrap().0;
    }
    assert_eq!(moved, 20);
    assert_eq!(cli(&server, &["ZCARD", s.keys().scheduled()]), "0");
    let ready = xrange(&server, s.keys().ready()).await;
    let ids: Vec<&[u8]> = ready.iter().filter_map(|(_, f)| get(f, "id")).collect();
    let want: Vec<String> = (0..20).map(|i| format!("job-{i}")).collect();
    assert_eq!(ids, want.iter().map(|w| w.as_bytes()).collect::<Vec<_>>());
    cli(&server, &["DEL", &aside]);
}

/// Makes the server refuse writes that grow memory: maxmemory just above
/// what is used, noeviction, then one write that crosses it.
fn run_out_of_memory(server: &RedisServer, pad_key: &str) {
    cli(server, &["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    let info = cli(server, &["INFO", "memory"]);
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    cli(
        server,
        &[
            "CONFIG",
            "SET",
            "maxmemory",
            &(used + 256 * 1024).to_string(),
        ],
    );
    // Allowed (the limit is not reached when it starts), and crosses it.
    cli(server, &["SETRANGE", pad_key, "1048576", "x"]);
    let probe = cli(server, &["ZADD", &format!("{pad_key}:z"), "1", "m"]);
    assert!(
        probe.starts_with("OOM"),
        "the server is not out of memory: {probe}"
    );
}

#[tokio::test]
async fn out_of_memory_every_move_fails_with_oom_and_nothing_moves_or_disappears() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let items: Vec<(u64, Vec<u8>)> = (0..3).map(|i| (10 + i as u64, valid_member(i))).collect();
    s.schedule(&items).await.unwrap();
    add(&s, 6).await;
    let got = fetch(&s, C1, 6).await;
    // Two dead entries to replay.
    for e in &got[4..6] {
        let mut f = e.fields.clone();
        f.push((b"reason".to_vec(), b"permanent".to_vec()));
        assert!(s.dead(C1, &e.id, 0, &f).await.unwrap());
    }
    let dead_ids: Vec<String> = xrange(&server, s.keys().dead())
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let dead_refs: Vec<&str> = dead_ids.iter().map(String::as_str).collect();
    let requeue_ids = [got[2].id.as_str(), got[3].id.as_str()];
    let mut dead_fields = got[1].fields.clone();
    dead_fields.push((b"reason".to_vec(), b"permanent".to_vec()));
    // Load every script while memory is available (SCRIPT LOAD is not the
    // subject here).
    s.promote(0, 10, 0).await.unwrap();
    assert!(!s.retry(C2, &got[0].id, 1, b"m").await.unwrap());
    assert!(!s.dead(C2, &got[1].id, 0, &dead_fields).await.unwrap());
    assert_eq!(s.requeue(C2, &requeue_ids).await.unwrap(), 0);
    assert_eq!(s.replay(&["1-1"]).await.unwrap(), 0);

    let state = |server: &RedisServer| {
        (
            cli(server, &["ZCARD", s.keys().scheduled()]),
            cli(server, &["XLEN", s.keys().ready()]),
            cli(server, &["XLEN", s.keys().dead()]),
            pending_count(server, &s),
            cli(server, &["HGETALL", s.keys().stats()]),
        )
    };
    let before = state(&server);
    let pad = format!("{}:pad", s.keys().stats());
    run_out_of_memory(&server, &pad);
    let oom = |r: Result<String, jobstream_core::Error>, what: &str| {
        // The server's reply is `OOM command not allowed ...`; redis-rs
        // renders its code in quotes.
        let message = redis_message(r.unwrap_err());
        assert!(
            message.trim_start_matches('"').starts_with("OOM"),
            "{what}: {message}"
        );
    };
    oom(
        s.promote(1000, 10, 0).await.map(|r| format!("{r:?}")),
        "promote",
    );
    oom(
        s.retry(C1, &got[0].id, 5, b"member")
            .await
            .map(|r| r.to_string()),
        "retry",
    );
    oom(
        s.dead(C1, &got[1].id, 0, &dead_fields)
            .await
            .map(|r| r.to_string()),
        "dead",
    );
    oom(
        s.dead(C1, &got[1].id, 1000, &dead_fields)
            .await
            .map(|r| r.to_string()),
        "dead with MAXLEN",
    );
    oom(
        s.requeue(C1, &requeue_ids).await.map(|r| r.to_string()),
        "requeue",
    );
    oom(s.replay(&dead_refs).await.map(|r| r.to_string()), "replay");
    assert_eq!(state(&server), before, "nothing moved, nothing disappeared");

    cli(&server, &["CONFIG", "SET", "maxmemory", "0"]);
    cli(&server, &["DEL", &pad]);
    assert_eq!(s.promote(1000, 10, 0).await.unwrap(), (3, None, 0));
    assert!(s.retry(C1, &got[0].id, 5, b"member").await.unwrap());
    assert!(s.dead(C1, &got[1].id, 1000, &dead_fields).await.unwrap());
    assert_eq!(s.requeue(C1, &requeue_ids).await.unwrap(), 2);
    assert_eq!(s.replay(&dead_refs).await.unwrap(), 2);
    assert_eq!(cli(&server, &["ZCARD", s.keys().scheduled()]), "1");
    // 3 promoted + 2 requeued + 2 replayed; the 6 original entries are gone.
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "7");
    assert_eq!(cli(&server, &["XLEN", s.keys().dead()]), "1");
    assert_eq!(pending_count(&server, &s), "0");
}

#[tokio::test]
async fn reclaim_dead_letters_a_4100_field_entry_as_raw_and_still_returns_the_others() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let wide = wide_fields(4100);
    let mut ids = add(&s, 2).await;
    ids.push(add_fields(&s, &wide).await);
    ids.extend(add(&s, 2).await);
    assert_eq!(fetch(&s, C1, 5).await.len(), 5);
    // Three more deliveries (a crash loop): 4, then 5 with the reclaim.
    for _ in 0..3 {
        cli(
            &server,
            &["XCLAIM", s.keys().ready(), "workers", C1, "0", &ids[2]],
        );
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    let r = s
        .reclaim(C2, Duration::from_millis(10), "0-0", 10, 3, 0, 42)
        .await
        .unwrap();
    assert_eq!((r.abandoned, r.failed), (1, 0));
    let returned: Vec<&str> = r.entries.iter().map(|c| c.entry.id.as_str()).collect();
    assert_eq!(returned, [&ids[0], &ids[1], &ids[3], &ids[4]]);
    let dead = xrange(&server, s.keys().dead()).await;
    assert_eq!(dead.len(), 1);
    let d = &dead[0].1;
    let raw = get(d, "raw").unwrap();
    assert_eq!(
        decode_raw(raw),
        wide,
        "every field, in order, duplicates kept"
    );
    assert_eq!(
        raw,
        fields_to_msgpack(&wide).as_slice(),
        "same bytes as Rust"
    );
    assert_eq!(get(d, "id"), Some(ids[2].as_bytes()));
    assert!(get(d, "enqueued_at").is_some());
    assert_eq!(get(d, "reason"), Some(&b"abandoned"[..]));
    assert_eq!(get(d, "deliveries"), Some(&b"5"[..]));
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "4");
    assert_eq!(pending_count(&server, &s), "4");
    assert_eq!(stat(&server, &s, "dead"), 1);
}

#[tokio::test]
async fn reclaim_leaves_an_abandoned_entry_pending_when_dead_refuses_it() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let ids = add(&s, 3).await;
    fetch(&s, C1, 3).await;
    for _ in 0..3 {
        cli(
            &server,
            &["XCLAIM", s.keys().ready(), "workers", C1, "0", &ids[1]],
        );
    }
    cli(&server, &["XADD", s.keys().dead(), MAX_ID, "f", "v"]);
    tokio::time::sleep(Duration::from_millis(30)).await;
    for dead_max_len in [1000, 0] {
        let r = s
            .reclaim(
                C2,
                Duration::from_millis(10),
                "0-0",
                10,
                3,
                dead_max_len,
                42,
            )
            .await
            .unwrap();
        assert_eq!((r.abandoned, r.failed), (0, 1));
        let returned: Vec<&str> = r.entries.iter().map(|c| c.entry.id.as_str()).collect();
        assert_eq!(returned, [&ids[0], &ids[2]]);
        assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "3");
        assert_eq!(cli(&server, &["XLEN", s.keys().dead()]), "1");
        let pel = cli(
            &server,
            &[
                "XPENDING",
                s.keys().ready(),
                "workers",
                &ids[1],
                &ids[1],
                "1",
            ],
        );
        assert!(pel.contains(&ids[1]), "still pending: {pel}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(stat(&server, &s, "dead"), 0);
}

#[tokio::test]
async fn entries_trimmed_from_dead_are_counted_in_dead_trimmed() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let xlen_dead =
        |server: &RedisServer| -> i64 { cli(server, &["XLEN", s.keys().dead()]).parse().unwrap() };
    // promote-4: 200 malformed members.
    let garbage: Vec<(u64, Vec<u8>)> = (0..200)
        .map(|i| (i, format!("garbage-{i}").into_bytes()))
        .collect();
    s.schedule(&garbage).await.unwrap();
    assert_eq!(s.promote(1000, 1000, 10).await.unwrap(), (0, None, 200));
    assert!(xlen_dead(&server) < 200, "the trim removed something");
    assert_eq!(stat(&server, &s, "dead_trimmed"), 200 - xlen_dead(&server));
    // dead-3: 150 more.
    add(&s, 150).await;
    for e in fetch(&s, C1, 150).await {
        assert!(s.dead(C1, &e.id, 10, &e.fields).await.unwrap());
    }
    assert_eq!(stat(&server, &s, "dead_trimmed"), 350 - xlen_dead(&server));
    // reclaim-3: 120 abandoned (delivered twice, max 1).
    add(&s, 120).await;
    fetch(&s, C1, 120).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = s
        .reclaim(C2, Duration::from_millis(5), "0-0", 120, 1, 10, 42)
        .await
        .unwrap();
    assert_eq!((r.abandoned, r.failed, r.entries.len()), (120, 0, 0));
    assert_eq!(stat(&server, &s, "dead_trimmed"), 470 - xlen_dead(&server));
    assert_eq!(stat(&server, &s, "dead"), 470);
    assert_eq!(stat(&server, &s, "dead_scheduled"), 200);
}

#[tokio::test]
async fn replay_skips_raw_and_too_wide_dead_entries() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    s.schedule(&[(1, b"garbage".to_vec())]).await.unwrap();
    s.promote(10, 10, 0).await.unwrap();
    add(&s, 1).await;
    add_fields(&s, &wide_fields(1025)).await;
    add_fields(&s, &wide_fields(1024)).await;
    for e in fetch(&s, C1, 3).await {
        let mut f = e.fields.clone();
        f.push((b"reason".to_vec(), b"permanent".to_vec()));
        f.push((b"attempt".to_vec(), b"3".to_vec()));
        assert!(s.dead(C1, &e.id, 0, &f).await.unwrap());
    }
    let dead = xrange(&server, s.keys().dead()).await;
    assert_eq!(dead.len(), 4);
    let ids: Vec<&str> = dead.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        s.replay(&ids).await.unwrap(),
        2,
        "the job and the 1024-field job"
    );
    let left = xrange(&server, s.keys().dead()).await;
    assert_eq!(left.len(), 2);
    assert!(get(&left[0].1, "raw").is_some());
    assert_eq!(left[1].0, ids[2], "the 1025-field job stays in dead");
    let ready = xrange(&server, s.keys().ready()).await;
    assert_eq!(ready.len(), 2);
    assert_eq!(ready[1].1.len(), 1025, "1024 fields and attempt");
    assert_eq!(stat(&server, &s, "replayed"), 2);
}

#[tokio::test]
async fn requeue_skips_entries_wider_than_1024_fields_and_leaves_them_pending() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let ids = [
        add(&s, 1).await.remove(0),
        add_fields(&s, &wide_fields(4100)).await,
        add_fields(&s, &wide_fields(1025)).await,
        add_fields(&s, &wide_fields(1024)).await,
    ];
    assert_eq!(fetch(&s, C1, 4).await.len(), 4);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(s.requeue(C1, &refs).await.unwrap(), 2);
    let out = cli(
        &server,
        &["XPENDING", s.keys().ready(), "workers", "-", "+", "10", C1],
    );
    assert!(out.contains(&ids[1]) && out.contains(&ids[2]), "{out}");
    assert_eq!(pending_count(&server, &s), "2");
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "4");
    assert_eq!(stat(&server, &s, "requeued"), 2);
}

#[tokio::test]
async fn requeue_returns_the_error_of_a_stream_that_cannot_grow_and_keeps_the_entries() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let ids = add(&s, 2).await;
    fetch(&s, C1, 2).await;
    cli(&server, &["XADD", s.keys().ready(), MAX_ID, "f", "v"]);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let e = s.requeue(C1, &refs).await.unwrap_err();
    assert!(redis_message(e).contains("exhausted"));
    assert_eq!(pending_count(&server, &s), "2");
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "3");
}

// ---------------------------------------------------------------------------
// Property: whatever bytes sit in `scheduled`, promote never loses a member
// and never fails. Deterministic: the seed is in every failure message and
// can be changed with JOBSTREAM_PROP_SEED=<u64>.

/// splitmix64: small, deterministic, good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pct(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

fn gen_text(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(100) {
        0..=9 => 0,
        10..=69 => 1 + rng.below(8),
        70..=89 => 8 + rng.below(40),
        90..=98 => 250 + rng.below(60),
        _ => 65_530 + rng.below(10),
    } as usize;
    rng.bytes(len)
}

/// `data` as str or bin, with the smallest header or a larger one.
fn put_bytes(rng: &mut Rng, m: &mut Vec<u8>, data: &[u8]) {
    let n = data.len();
    let mut options: Vec<(u8, usize)> = vec![(0xdb, 4), (0xc6, 4)];
    if n < 32 {
        options.push((0xa0, 0));
    }
    if n < 256 {
        options.extend([(0xd9, 1), (0xc4, 1)]);
    }
    if n < 65_536 {
        options.extend([(0xda, 2), (0xc5, 2)]);
    }
    let (marker, size) = rng.pick(&options);
    if size == 0 {
        m.push(0xa0 | n as u8);
    } else {
        m.push(marker);
        m.extend(&(n as u64).to_be_bytes()[8 - size..]);
    }
    m.extend(data);
}

/// An integer at the edges of its encoding (2^53 included; beyond it only
/// when not `clean`).
fn put_int(rng: &mut Rng, m: &mut Vec<u8>, clean: bool) {
    let p53 = 1u64 << 53;
    match rng.below(if clean { 7 } else { 9 }) {
        0 => m.push(rng.below(128) as u8),
        1 => m.push(0xe0 | rng.below(32) as u8),
        2 => {
            m.push(0xcc);
            m.push(rng.pick(&[0, 1, 127, 128, 255]));
        }
        3 => {
            m.push(0xcd);
            m.extend(rng.pick(&[0u16, 255, 256, u16::MAX]).to_be_bytes());
        }
        4 => {
            m.push(0xce);
            m.extend(rng.pick(&[0u32, 65_536, u32::MAX]).to_be_bytes());
        }
        5 => {
            m.push(0xd0);
            m.extend(rng.pick(&[i8::MIN, -1, 0, i8::MAX]).to_be_bytes());
        }
        6 => {
            m.push(rng.pick(&[0xd1, 0xd2]));
            if m.last() == Some(&0xd1) {
                m.extend(rng.pick(&[i16::MIN, -1, i16::MAX]).to_be_bytes());
            } else {
                m.extend(rng.pick(&[i32::MIN, -1, i32::MAX]).to_be_bytes());
            }
        }
        7 => {
            m.push(0xcf);
            let v = [0, 1, p53 - 1, p53, p53 + 1, u64::MAX, rng.next()];
            m.extend(rng.pick(&v).to_be_bytes());
        }
        _ => {
            m.push(0xd3);
            let p = p53 as i64;
            let v = [i64::MIN, -p - 1, -p, -p + 1, -1, 0, p, p + 1, i64::MAX];
            m.extend(rng.pick(&v).to_be_bytes());
        }
    }
}

fn put_scalar(rng: &mut Rng, m: &mut Vec<u8>, clean: bool) {
    match rng.below(if clean { 95 } else { 100 }) {
        0..=69 => {
            let t = gen_text(rng);
            put_bytes(rng, m, &t);
        }
        70..=89 => put_int(rng, m, clean),
        90..=94 => m.push(rng.pick(&[0xc2, 0xc3])),
        // Not a scalar: nil, float32, float64, array, map, ext, never used.
        _ => match rng.below(7) {
            0 => m.push(0xc0),
            1 => m.extend([0xca, 0x3f, 0x80, 0, 0]),
            2 => m.extend([0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]),
            3 => m.extend([0x91, 0x01]),
            4 => m.extend([0x81, 0xa1, b'k', 0x01]),
            5 => m.extend([0xd4, 0x01, 0x02]),
            _ => m.push(0xc1),
        },
    }
}

/// A map with 0..1200 fields, duplicate names, every encoding of scalars.
/// Most members are clean (every value a scalar that fits); the others may
/// hold non-scalars and integers beyond 2^53 anywhere.
fn gen_member(rng: &mut Rng) -> Vec<u8> {
    let clean = rng.pct(70);
    let width = match rng.below(100) {
        0..=4 => 0,
        5..=64 => 1 + rng.below(20),
        65..=84 => 20 + rng.below(180),
        85..=89 => 1024,
        90..=92 => 1025,
        _ => 1000 + rng.below(50),
    } as usize;
    let mut m = Vec::new();
    match (width < 16, rng.below(3)) {
        (true, 0) => m.push(0x80 | width as u8),
        (_, 1) | (false, 0) => {
            m.push(0xde);
            m.extend((width as u16).to_be_bytes());
        }
        _ => {
            m.push(0xdf);
            m.extend((width as u32).to_be_bytes());
        }
    }
    let names: [&[u8]; 6] = [b"type", b"payload", b"id", b"attempt", b"", b"x"];
    for _ in 0..width {
        if rng.pct(5) {
            put_int(rng, &mut m, clean);
        } else {
            let name = if rng.pct(30) {
                rng.pick(&names).to_vec()
            } else {
                gen_text(rng)
            };
            put_bytes(rng, &mut m, &name);
        }
        put_scalar(rng, &mut m, clean);
    }
    m
}

fn gen_case(rng: &mut Rng) -> Vec<u8> {
    match rng.below(100) {
        0..=39 => gen_member(rng),
        40..=59 => {
            let m = gen_member(rng);
            let cut = rng.below(m.len() as u64 + 1) as usize;
            m[..cut].to_vec()
        }
        60..=69 => {
            let mut m = gen_member(rng);
            if !m.is_empty() {
                let i = rng.below(m.len() as u64) as usize;
                m[i] = rng.next() as u8;
            }
            m
        }
        70..=79 => {
            let n = rng.below(65) as usize;
            rng.bytes(n)
        }
        80..=89 => {
            let n = rng.below(40) as usize;
            let mut m = vec![rng.pick(&[0x80, 0x81, 0x85, 0x8f, 0xde, 0xdf])];
            m.extend(rng.bytes(n));
            m
        }
        90..=94 => {
            // A map header that lies about the number of pairs.
            let m = gen_member(rng);
            let body = match m.first() {
                Some(0x80..=0x8f) => &m[1..],
                Some(0xde) => &m[3..],
                _ => &m[5..],
            };
            let mut out = vec![0xdf];
            let lie = rng.pick(&[u32::MAX, 1 << 31, 1001, 1000, 1, 2]);
            out.extend(lie.to_be_bytes());
            out.extend(body);
            out
        }
        _ => {
            let mut m = gen_member(rng);
            let n = 1 + rng.below(3) as usize;
            m.extend(rng.bytes(n));
            m
        }
    }
}

/// What promote-4 must make of a member: its fields for `ready`, or None
/// for `dead` (the contract of scripts/README.md, written independently).
fn reference_decode(m: &[u8]) -> Option<Fields> {
    struct R<'a>(&'a [u8], usize);
    impl R<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            let s = self.0.get(self.1..self.1.checked_add(n)?)?;
            self.1 += n;
            Some(s)
        }
        fn uint(&mut self, n: usize) -> Option<u64> {
            Some(
                self.take(n)?
                    .iter()
                    .fold(0u64, |v, b| v << 8 | u64::from(*b)),
            )
        }
        fn scalar(&mut self) -> Option<Vec<u8>> {
            let b = self.uint(1)? as u8;
            let text = |v: i128| Some(v.to_string().into_bytes());
            let len = match b {
                0x00..=0x7f => return text(i128::from(b)),
                0xe0..=0xff => return text(i128::from(b as i8)),
                0xa0..=0xbf => u64::from(b - 0xa0),
                0xd9 | 0xc4 => self.uint(1)?,
                0xda | 0xc5 => self.uint(2)?,
                0xdb | 0xc6 => self.uint(4)?,
                0xc2 => return Some(b"0".to_vec()),
                0xc3 => return Some(b"1".to_vec()),
                0xcc => return text(i128::from(self.uint(1)?)),
                0xcd => return text(i128::from(self.uint(2)?)),
                0xce => return text(i128::from(self.uint(4)?)),
                0xd0 => return text(i128::from(self.uint(1)? as u8 as i8)),
                0xd1 => return text(i128::from(self.uint(2)? as u16 as i16)),
                0xd2 => return text(i128::from(self.uint(4)? as u32 as i32)),
                0xcf | 0xd3 => {
                    let raw = self.uint(8)?;
                    let v = if b == 0xd3 {
                        i128::from(raw as i64)
                    } else {
                        i128::from(raw)
                    };
                    return (v.unsigned_abs() <= 1 << 53).then(|| v.to_string().into_bytes());
                }
                _ => return None,
            };
            Some(self.take(usize::try_from(len).ok()?)?.to_vec())
        }
    }
    let mut r = R(m, 0);
    let count = match r.uint(1)? as u8 {
        b @ 0x80..=0x8f => u64::from(b - 0x80),
        0xde => r.uint(2)?,
        0xdf => r.uint(4)?,
        _ => return None,
    };
    if count == 0 || count * 2 > (m.len() - r.1) as u64 || count > 1024 {
        return None;
    }
    let mut fields = Vec::new();
    for _ in 0..count {
        let name = r.scalar()?;
        let value = r.scalar()?;
        fields.push((name, value));
    }
    (r.1 == m.len()).then_some(fields)
}

#[tokio::test]
async fn promote_never_loses_a_member_whatever_its_bytes() {
    let seed = std::env::var("JOBSTREAM_PROP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6a6f_6273_7472_6561_u64);
    const CASES: usize = 2000;
    const BATCH: usize = 100;
    let server = RedisServer::start();
    let s = store(&server);
    let mut rng = Rng(seed);
    let mut seen = std::collections::HashSet::new();
    let (mut to_ready, mut to_dead, mut wide, mut at_cap) = (0, 0, 0, 0);
    let mut case = 0;
    while case < CASES {
        // One batch of distinct members, scored in order.
        let mut batch = Vec::new();
        while batch.len() < BATCH && case < CASES {
            let m = gen_case(&mut rng);
            case += 1;
            if seen.insert(m.clone()) {
                batch.push((case, m));
            }
        }
        let items: Vec<(u64, Vec<u8>)> =
            batch.iter().map(|(i, m)| (*i as u64, m.clone())).collect();
        s.schedule(&items).await.unwrap();
        let expect: Vec<Option<Fields>> = batch.iter().map(|(_, m)| reference_decode(m)).collect();
        let want_ready: Vec<&Fields> = expect.iter().flatten().collect();
        let want_dead: Vec<(usize, &Vec<u8>)> = batch
            .iter()
            .zip(&expect)
            .filter(|(_, e)| e.is_none())
            .map(|((i, m), _)| (*i, m))
            .collect();
        let got = s.promote(u64::MAX / 4, 1000, 0).await;
        let ctx = |what: &str| format!("seed {seed:#x}, cases up to {case}: {what}");
        let (moved, next_due, malformed) =
            got.unwrap_or_else(|e| panic!("{}", ctx(&e.to_string())));
        assert_eq!(next_due, None, "{}", ctx("scheduled is empty"));
        assert_eq!(
            cli(&server, &["ZCARD", s.keys().scheduled()]),
            "0",
            "{}",
            ctx("scheduled is empty")
        );
        assert_eq!(
            (moved as usize, malformed as usize),
            (want_ready.len(), want_dead.len()),
            "{}",
            ctx("counts")
        );
        let ready = xrange(&server, s.keys().ready()).await;
        assert_eq!(ready.len(), want_ready.len(), "{}", ctx("ready entries"));
        for ((_, got), want) in ready.iter().zip(&want_ready) {
            assert_eq!(
                got,
                *want,
                "{}",
                ctx("a ready entry has the member's fields")
            );
        }
        let dead = xrange(&server, s.keys().dead()).await;
        assert_eq!(dead.len(), want_dead.len(), "{}", ctx("dead entries"));
        for ((_, got), (i, member)) in dead.iter().zip(&want_dead) {
            assert_eq!(
                get(got, "raw"),
                Some(member.as_slice()),
                "{}",
                ctx(&format!("case {i}: raw is the member, byte for byte"))
            );
            assert_eq!(get(got, "reason"), Some(&b"malformed"[..]));
        }
        to_ready += want_ready.len();
        to_dead += want_dead.len();
        at_cap += want_ready.iter().filter(|f| f.len() == 1024).count();
        wide += batch
            .iter()
            .filter(|(_, m)| match m.first() {
                Some(0xde) if m.len() > 3 => u16::from_be_bytes([m[1], m[2]]) > 1024,
                _ => false,
            })
            .count();
        // This test's own keys: start the next batch from empty streams.
        cli(&server, &["DEL", s.keys().ready(), s.keys().dead()]);
    }
    // The generator must reach both outcomes and the width limit.
    assert!(
        to_ready > 300 && to_dead > 600,
        "seed {seed:#x}: {to_ready} ready, {to_dead} dead"
    );
    assert!(
        wide > 20 && at_cap > 20,
        "seed {seed:#x}: {wide} wider than 1024, {at_cap} at 1024"
    );
    assert_eq!(
        stat(&server, &s, "dead_scheduled"),
        to_dead as i64,
        "seed {seed:#x}"
    );
    eprintln!(
        "seed {seed:#x}: {to_ready} to ready ({at_cap} with exactly 1024 fields), {to_dead} to dead, {wide} wider than 1024 (map16)"
    );
}
