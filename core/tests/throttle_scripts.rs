#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `throttle-6` and `hold-4` against a real redis-server: who runs, who is
//! deferred where, reservations, holds that never shorten, ownership, and
//! out of memory (nothing moves, nothing disappears).

use std::time::Duration;

use jobstream_core::envelope::{Envelope, fields_to_msgpack, msgpack_to_fields};
use jobstream_core::rate::{ThrottleJob, Throttled};
use jobstream_core::{QueueStore, RateLimit, StreamEntry};
use jobstream_testkit::RedisServer;

mod common;
use common::*;

fn member(e: &StreamEntry) -> Vec<u8> {
    let env = Envelope::decode(e.fields.clone()).unwrap();
    fields_to_msgpack(&env.deferred(&e.id))
}

async fn check(
    s: &QueueStore,
    consumer: &str,
    e: &StreamEntry,
    member: &[u8],
    limit: Option<&RateLimit>,
    hold: bool,
) -> Throttled {
    s.throttle(&ThrottleJob {
        consumer,
        entry_id: &e.id,
        job_id: &e.id,
        member,
        job_type: "t",
        rate_key: None,
        check_hold: hold,
        type_limit: limit,
        key_limit: None,
        spread: 500_000,
    })
    .await
    .unwrap()
}

fn stat(server: &RedisServer, s: &QueueStore, name: &str) -> String {
    cli(server, &["HGET", s.keys().stats(), name])
}

#[tokio::test]
async fn a_type_limit_runs_the_burst_defers_the_rest_in_line_with_reservations() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 5).await;
    let got = fetch(&s, C1, 5).await;
    // 10 per second, burst 2: two run, three are deferred 100 ms apart.
    let limit = RateLimit::per_second(10).unwrap().burst(2);
    let mut dues = Vec::new();
    for (i, e) in got.iter().enumerate() {
        match check(&s, C1, e, &member(e), Some(&limit), false).await {
            Throttled::Run => assert!(i < 2, "job {i} ran"),
            Throttled::Deferred { due_ms, held } => {
                assert!(i >= 2 && !held, "job {i}");
                dues.push(due_ms);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(dues.len(), 3);
    for w in dues.windows(2) {
        let gap = w[1] - w[0];
        assert!((60..=140).contains(&gap), "{dues:?}");
    }
    assert_eq!(stat(&server, &s, "throttled"), "3");
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "2");
    assert_eq!(cli(&server, &["ZCARD", s.keys().scheduled()]), "3");
    // The members are the job's fields: attempt not added, id explicit.
    let members = cli(&server, &["ZRANGE", s.keys().scheduled(), "0", "-1"]);
    assert!(!members.contains("attempt"), "{members}");
    let bucket = s.keys().rate_type("t");
    assert_eq!(
        cli(&server, &["HLEN", &bucket]),
        "4",
        "tat and 3 reservations"
    );
    // Back after its deferral (promoted early here, all three at once: no
    // token is free for most of them), a job runs on its reservation, and
    // the reservation is used up.
    assert_eq!(s.promote(u64::MAX / 2, 10, 0).await.unwrap().0, 3);
    let back = fetch(&s, C1, 3).await;
    for e in &back {
        let env = Envelope::decode(e.fields.clone()).unwrap();
        let fields = msgpack_to_fields(&member(e)).unwrap();
        assert!(fields.iter().any(|(k, _)| k == b"prev_entry"));
        let id = env.id.clone().unwrap();
        let r = s
            .throttle(&ThrottleJob {
                consumer: C1,
                entry_id: &e.id,
                job_id: &id,
                member: &member(e),
                job_type: "t",
                rate_key: None,
                check_hold: false,
                type_limit: Some(&limit),
                key_limit: None,
                spread: 0,
            })
            .await
            .unwrap();
        assert_eq!(r, Throttled::Run, "a reservation lets it run");
    }
    assert_eq!(
        cli(&server, &["HLEN", &bucket]),
        "1",
        "reservations used up"
    );
}

#[tokio::test]
async fn a_foreign_entry_is_left_alone_and_takes_no_token() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 1).await;
    let got = fetch(&s, C1, 1).await;
    let limit = RateLimit::per_second(1).unwrap();
    let r = check(&s, C2, &got[0], &member(&got[0]), Some(&limit), false).await;
    assert_eq!(r, Throttled::Lost);
    assert_eq!(cli(&server, &["EXISTS", &s.keys().rate_type("t")]), "0");
    assert_eq!(cli(&server, &["XLEN", s.keys().ready()]), "1");
}

#[tokio::test]
async fn holds_defer_to_their_end_never_shorten_and_expire() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 3).await;
    let got = fetch(&s, C1, 3).await;
    // A 429 on the first job: held 1 s, the job deferred past the hold.
    let (moved, until) = s
        .hold(
            C1,
            &got[0].id,
            &member(&got[0]),
            "type:t",
            Duration::from_secs(1),
            999_999,
        )
        .await
        .unwrap();
    assert!(moved);
    assert_eq!(stat(&server, &s, "held"), "1");
    let due: u64 = cli(
        &server,
        &["ZRANGE", s.keys().scheduled(), "0", "0", "WITHSCORES"],
    )
    .lines()
    .nth(1)
    .unwrap()
    .parse()
    .unwrap();
    assert!(due >= until && due <= until + 100, "{due} vs {until}");
    // A shorter hold does not shorten it; the hold only (no entry id).
    let (moved2, until2) = s
        .hold(C1, "", b"", "type:t", Duration::from_millis(10), 0)
        .await
        .unwrap();
    assert!(!moved2);
    assert_eq!(until2, until);
    // Another job of the key, checked for its hold: deferred to its end.
    match check(&s, C1, &got[1], &member(&got[1]), None, true).await {
        Throttled::Deferred { due_ms, held } => {
            assert!(held);
            assert!(
                due_ms >= until && due_ms <= until + 100,
                "{due_ms} vs {until}"
            );
        }
        other => panic!("{other:?}"),
    }
    let holds = s.holds().await.unwrap();
    assert_eq!(holds.get("type:t"), Some(&until));
    // After the hold: runs, and the expired field is removed.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        check(&s, C1, &got[2], &member(&got[2]), None, true).await,
        Throttled::Run
    );
    assert!(s.holds().await.unwrap().is_empty());
    assert_eq!(stat(&server, &s, "throttled"), "1");
    let books = s.books().await.unwrap();
    assert!(books.balances(), "{books:?}");
}

#[tokio::test]
async fn out_of_memory_a_deferral_fails_whole() {
    let server = RedisServer::start();
    let s = store(&server);
    s.ensure_group().await.unwrap();
    add(&s, 3).await;
    let got = fetch(&s, C1, 3).await;
    let limit = RateLimit::per_second(1).unwrap().burst(1);
    assert_eq!(
        check(&s, C1, &got[0], &member(&got[0]), Some(&limit), false).await,
        Throttled::Run
    );
    // Scripts loaded while memory is available.
    s.hold(C1, "", b"", "type:x", Duration::from_millis(1), 0)
        .await
        .unwrap();
    let state = |server: &RedisServer| {
        (
            cli(server, &["ZCARD", s.keys().scheduled()]),
            cli(server, &["XLEN", s.keys().ready()]),
            cli(server, &["HGETALL", s.keys().stats()]),
        )
    };
    let before = state(&server);
    cli(
        &server,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    );
    cli(&server, &["CONFIG", "SET", "maxmemory", "1"]);
    let r = s
        .throttle(&ThrottleJob {
            consumer: C1,
            entry_id: &got[1].id,
            job_id: &got[1].id,
            member: &member(&got[1]),
            job_type: "t",
            rate_key: None,
            check_hold: false,
            type_limit: Some(&limit),
            key_limit: None,
            spread: 0,
        })
        .await;
    assert!(format!("{r:?}").contains("OOM"), "{r:?}");
    let r = s
        .hold(
            C1,
            &got[2].id,
            &member(&got[2]),
            "type:t",
            Duration::from_secs(5),
            0,
        )
        .await;
    assert!(format!("{r:?}").contains("OOM"), "{r:?}");
    cli(&server, &["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(state(&server), before, "nothing moved, nothing disappeared");
}
