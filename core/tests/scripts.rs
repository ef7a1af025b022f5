#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One test per Lua script against a real redis-server: seed, run, read back.

use std::time::Duration;

use jobstream_core::envelope::fields_to_msgpack;
use jobstream_core::{QueueKeys, QueueName, QueueStore, Redis, StreamEntry, Timings};
use jobstream_testkit::{RedisServer, unique_queue};

const C1: &str = "worker-a";
const C2: &str = "worker-b";

fn store(server: &RedisServer) -> QueueStore {
    let redis = Redis::open(&server.url(), &Timings::default()).unwrap();
    let name = QueueName::new(&unique_queue("scripts")).unwrap();
    QueueStore::new(redis, QueueKeys::new("jobstream", &name), "workers")
}

fn job(i: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (b"type".to_vec(), b"t".to_vec()),
        (b"payload".to_vec(), vec![0x91, i as u8 & 0x7f]),
    ]
}

async fn add(store: &QueueStore, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let f = job(i);
        let refs: Vec<(&[u8], &[u8])> = f
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        ids.push(store.add(&refs).await.unwrap());
    }
    ids
}

async fn fetch(store: &QueueStore, consumer: &str, n: usize) -> Vec<StreamEntry> {
    let mut conn = store.redis().blocking().await.unwrap();
    store
        .read(&mut conn, consumer, n, Duration::from_millis(50))
        .await
        .unwrap()
}

fn cli(server: &RedisServer, args: &[&str]) -> String {
    server.cli(args).unwrap().trim().to_owned()
}

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
    assert_eq!(s.promote(1000, 3, 0).await.unwrap(), (3, Some(103)));
    assert_eq!(s.promote(1000, 3, 0).await.unwrap(), (2, Some(10_000)));
    assert_eq!(s.promote(1000, 3, 0).await.unwrap(), (0, Some(10_000)));
    let ready = s.dead_entries("-", 1).await.unwrap();
    assert!(ready.is_empty());
    let out = cli(&server, &["XRANGE", s.keys().ready(), "-", "+"]);
    assert!(out.contains("job-0") && out.contains("job-4") && !out.contains("job-9"));
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "5");
    assert_eq!(s.promote(20_000, 3, 0).await.unwrap(), (1, None));
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
    assert_eq!(s.promote(10, 10, 0).await.unwrap(), (1, None));
    let mut conn = s.redis().blocking().await.unwrap();
    s.ensure_group().await.unwrap();
    let e = s
        .read(&mut conn, C1, 10, Duration::from_millis(10))
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
    let (_, claimed, _) = s
        .reclaim(C2, Duration::from_millis(100), "0-0", 10, 5, 0, 1)
        .await
        .unwrap();
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
    let (cursor, claimed, abandoned) = s
        .reclaim(C2, Duration::from_millis(10), "0-0", 10, 4, 0, 42)
        .await
        .unwrap();
    assert_eq!(cursor, "0-0");
    assert_eq!(abandoned, 1);
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
    let (_, claimed, _) = s
        .reclaim(C2, Duration::from_millis(5), "0-0", 10, 5, 0, 1)
        .await
        .unwrap();
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
    assert_eq!(s.promote(1, 10, 0).await.unwrap(), (0, None));
    cli(&server, &["SCRIPT", "FLUSH"]);
    assert_eq!(s.promote(1, 10, 0).await.unwrap(), (0, None));
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
