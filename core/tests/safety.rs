#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Server settings that lose jobs, read from real redis-servers started with
//! those settings.

use jobstream_core::{Fsync, Redis, ServerSafety, Timings, safety_warnings};
use jobstream_testkit::RedisServer;

fn redis(url: &str) -> Redis {
    Redis::open(url, &Timings::default()).unwrap()
}

#[tokio::test]
async fn a_durable_server_without_eviction_has_no_warnings() {
    let server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let r = redis(&server.url());
    assert_eq!(
        safety_warnings(&r, Fsync::Everysec).await.unwrap(),
        Vec::<String>::new()
    );
    let s = ServerSafety::read(&r, Fsync::Everysec).await.unwrap();
    assert_eq!(s.maxmemory_policy.as_deref(), Some("noeviction"));
    assert_eq!(
        (s.appendonly, s.appendfsync.as_deref()),
        (Some(true), Some("everysec"))
    );
    let w = safety_warnings(&r, Fsync::Always).await.unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("appendfsync is everysec, weaker than the expected always"));
}

#[tokio::test]
async fn an_evicting_policy_and_aof_off_give_two_warnings() {
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--maxmemory-policy",
        "allkeys-lru",
        "--appendonly",
        "no",
    ]);
    let w = safety_warnings(&redis(&server.url()), Fsync::Everysec)
        .await
        .unwrap();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with("maxmemory-policy is allkeys-lru"), "{w:?}");
    assert!(w[1].starts_with("AOF is off (appendonly no)"), "{w:?}");
}

#[tokio::test]
async fn appendfsync_no_is_weaker_than_everysec() {
    let server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "no"]);
    let r = redis(&server.url());
    let w = safety_warnings(&r, Fsync::Everysec).await.unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with("appendfsync is no, weaker than the expected everysec"),
        "{w:?}"
    );
    assert!(safety_warnings(&r, Fsync::No).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_renamed_config_command_gives_a_note_not_an_error() {
    let server = RedisServer::start_with(&["--rename-command", "CONFIG", ""]);
    let r = redis(&server.url());
    let s = ServerSafety::read(&r, Fsync::Everysec).await.unwrap();
    assert!(s.warnings.is_empty(), "{s:?}");
    let note = s.note.clone().unwrap_or_default();
    assert!(
        note.starts_with("could not read the server's configuration (")
            && note.contains("check persistence by hand"),
        "{note}"
    );
    assert_eq!(s.messages(), vec![note]);
}

#[tokio::test]
async fn an_acl_user_without_config_rights_gives_a_note() {
    let server = RedisServer::start();
    server
        .cli(&[
            "ACL", "SETUSER", "monitor", "on", "nopass", "+@all", "-config",
        ])
        .unwrap();
    let url = format!("redis://monitor:x@127.0.0.1:{}", server.port());
    let r = redis(&url);
    r.ping().await.unwrap();
    let w = safety_warnings(&r, Fsync::Everysec).await.unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("NOPERM") || w[0].contains("permission"),
        "{w:?}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_an_error() {
    let url = format!("redis://127.0.0.1:{}", jobstream_testkit::free_port());
    let r = Redis::open(
        &url,
        &Timings::default().connect_timeout(std::time::Duration::from_millis(200)),
    )
    .unwrap();
    assert!(safety_warnings(&r, Fsync::Everysec).await.is_err());
}
