#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The books of a queue against a real redis-server: every script keeps
//! them balanced, and a deletion outside jobstream shows as a difference.

use std::time::Duration;

use jobstream_core::envelope::fields_to_msgpack;
use jobstream_core::{Books, BooksStatus, QueueStore, Redis, Timings};
use jobstream_testkit::RedisServer;

mod common;
use common::*;

/// The ids of up to `n` entries read as `consumer`.
async fn fetch_ids(store: &QueueStore, consumer: &str, n: usize) -> Vec<String> {
    fetch(store, consumer, n)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect()
}

async fn balanced(s: &QueueStore, step: &str) -> Books {
    let b = s.books().await.unwrap();
    assert_eq!(
        (b.difference, b.status),
        (Some(0), BooksStatus::Ok),
        "after {step}: {b:?}"
    );
    b
}

#[tokio::test]
async fn every_script_keeps_the_books_balanced() {
    let server = RedisServer::start();
    let s = store(&server);
    let b = balanced(&s, "nothing yet").await;
    assert_eq!((b.entries_added, b.in_stream), (Some(0), 0));

    s.ensure_group().await.unwrap();
    add(&s, 10).await;
    balanced(&s, "enqueue").await;
    let got = fetch_ids(&s, C1, 8).await;

    s.ack(C1, "processed", &[&got[0], &got[1]]).await.unwrap();
    balanced(&s, "ack processed").await;
    s.ack(C1, "discarded", &[&got[2]]).await.unwrap();
    balanced(&s, "ack discarded").await;

    let member = fields_to_msgpack(&job(3));
    assert!(s.retry(C1, &got[3], 1, &member).await.unwrap());
    balanced(&s, "retry").await;
    assert_eq!(s.promote(10, 10, 0).await.unwrap(), (1, None, 0));
    balanced(&s, "promote").await;

    assert!(s.dead(C1, &got[4], 0, &job(4)).await.unwrap());
    balanced(&s, "dead").await;
    let dead = s.dead_entries("-", 10).await.unwrap();
    assert_eq!(s.replay(&[dead[0].id.as_str()]).await.unwrap(), 1);
    balanced(&s, "replay").await;

    assert_eq!(s.requeue(C1, &[&got[5]]).await.unwrap(), 1);
    balanced(&s, "requeue").await;

    // got[6] delivered a second time by the claim: more than 1 → abandoned.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = s
        .reclaim(C2, Duration::from_millis(5), &got[6], 1, 1, 0, 1)
        .await
        .unwrap();
    assert_eq!((r.entries.len(), r.abandoned), (0, 1));
    balanced(&s, "reclaim (abandoned)").await;

    let b = balanced(&s, "the end").await;
    // 10 enqueued + promote + replay + requeue's new entry.
    assert_eq!(b.entries_added, Some(13));
    assert_eq!(
        (b.processed, b.discarded, b.retried, b.requeued, b.dead),
        (2, 1, 1, 1, 2)
    );
    assert_eq!((b.replayed, b.dead_scheduled, b.dead_trimmed), (1, 0, 0));
    assert_eq!(b.in_stream, 6);
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "6");
    assert_eq!(b.accounted, 13);
}

#[tokio::test]
async fn an_xdel_by_hand_on_ready_is_a_difference_of_exactly_one() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    let ids = add(&s, 5).await;
    let got = fetch_ids(&s, C1, 2).await;
    s.ack(C1, "processed", &[&got[0]]).await.unwrap();
    balanced(&s, "setup").await;
    assert_eq!(cli(&server, &["XDEL", s.keys().ready(), &ids[4]]), "1");
    let b = s.books().await.unwrap();
    assert_eq!((b.entries_added, b.in_stream), (Some(5), 3));
    assert_eq!((b.difference, b.status), (Some(1), BooksStatus::Mismatch));
    assert!(
        b.verdict()
            .starts_with("MISMATCH: 1 entries added to ready are not accounted for"),
        "{}",
        b.verdict()
    );
}

#[tokio::test]
async fn a_deleted_ready_stream_shows_as_more_accounted_than_added() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 3).await;
    let got = fetch_ids(&s, C1, 2).await;
    s.ack(C1, "processed", &[&got[0], &got[1]]).await.unwrap();
    cli(&server, &["DEL", s.keys().ready()]);
    let b = s.books().await.unwrap();
    assert_eq!((b.entries_added, b.in_stream), (Some(0), 0));
    assert_eq!((b.difference, b.status), (Some(-2), BooksStatus::Mismatch));
    assert!(b.verdict().starts_with("MISMATCH: 2 more entries"));
}

#[tokio::test]
async fn dead_letters_from_scheduled_are_left_out_of_the_equation() {
    let server = RedisServer::start();
    let s = store(&server);
    add(&s, 2).await;
    // What promote-4 will write when it dead-letters a scheduled member:
    // dead and dead_scheduled both + 1, nothing removed from ready.
    cli(&server, &["HINCRBY", s.keys().stats(), "dead", "1"]);
    cli(
        &server,
        &["HINCRBY", s.keys().stats(), "dead_scheduled", "1"],
    );
    cli(&server, &["HINCRBY", s.keys().stats(), "dead_trimmed", "7"]);
    let b = balanced(&s, "a dead letter from scheduled").await;
    assert_eq!((b.dead, b.dead_scheduled, b.dead_trimmed), (1, 1, 7));
    let st = s.stats(jobstream_core::now_ms()).await.unwrap();
    assert_eq!((st.dead_scheduled, st.dead_trimmed), (1, 7));
}

#[tokio::test]
async fn a_read_only_acl_user_can_read_the_books() {
    let server = RedisServer::start();
    let s = store(&server);
    add(&s, 2).await;
    cli(
        &server,
        &[
            "ACL", "SETUSER", "monitor", "on", "nopass", "~*", "+@read", "+ping", "+multi", "+exec",
        ],
    );
    let url = format!("redis://monitor:x@127.0.0.1:{}", server.port());
    let ro = QueueStore::new(
        Redis::open(&url, &Timings::default()).unwrap(),
        s.keys().clone(),
        "workers",
    );
    let b = ro.books().await.unwrap();
    assert_eq!((b.entries_added, b.difference), (Some(2), Some(0)), "{b:?}");
    assert!(
        ro.add(&[(b"type", b"t")]).await.is_err(),
        "the user cannot write"
    );
}
