#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The dashboard against what a hostile producer, a proxy or a careless
//! caller sends: job data in fields other than `payload` with payloads
//! hidden, wide jobs (read a few at a time, cut on the page), a proxy in
//! front of a local-only dashboard, cursors and ids that are not ones, and
//! dead letters that arrive between a look and a confirmed action. Each
//! against a real Redis.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use jobstream_dashboard::{Dashboard, DashboardOptions};
use jobstream_testkit::{RedisServer, unique_queue};
use redis::AsyncCommands;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 26)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::HOST, "127.0.0.1:8080")
        .body(Body::empty())
        .unwrap()
}

async fn json_of(app: &Router, path: &str) -> Value {
    let (status, body) = send(app, get(path)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn dashboard(server: &RedisServer, options: DashboardOptions) -> Router {
    Dashboard::connect(&server.url(), "jobstream", options)
        .await
        .unwrap()
        .router()
}

async fn conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A MessagePack map of text keys to binary values (a packed job).
fn packed(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![0x80 | u8::try_from(fields.len()).unwrap()];
    for (k, v) in fields {
        out.push(0xa0 | u8::try_from(k.len()).unwrap());
        out.extend_from_slice(k.as_bytes());
        out.push(0xc6);
        out.extend_from_slice(&u32::try_from(v.len()).unwrap().to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

#[tokio::test]
async fn hidden_payloads_hide_every_field_that_carries_job_data() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-hide");
    let mut c = conn(&server).await;
    let ready = format!("jobstream:{{{queue}}}:ready");
    let dead = format!("jobstream:{{{queue}}}:dead");
    let payload = rmp_serde::to_vec(&"SECRET-payload").unwrap();
    let _: String = c
        .xadd(
            &ready,
            "*",
            &[
                ("id", b"chained-1".as_slice()),
                ("type", b"step"),
                ("payload", &payload),
                ("chain", b"SECRET-chain-step"),
                ("prev_result", b"SECRET-previous-result"),
            ],
        )
        .await
        .unwrap();
    // A packed dead letter (a job too wide for the script), with job data
    // inside.
    let raw = packed(&[
        ("id", b"packed-1"),
        ("type", b"wide"),
        ("payload", &payload),
        ("chain", b"SECRET-packed-chain"),
    ]);
    let _: String = c
        .xadd(
            &dead,
            "*",
            &[
                ("raw", raw.as_slice()),
                ("reason", b"malformed"),
                ("error_class", b"malformed"),
                ("error", b"too wide"),
            ],
        )
        .await
        .unwrap();
    let _: i64 = c.sadd("jobstream:queues", &queue).await.unwrap();

    let hidden = dashboard(
        &server,
        DashboardOptions::default().local_only().hide_payloads(),
    )
    .await;
    let shown = dashboard(&server, DashboardOptions::default().local_only()).await;
    let paths = [
        format!("/api/queues/{queue}/jobs?state=ready"),
        format!("/api/queues/{queue}/find?id=chained-1"),
        format!("/api/queues/{queue}/job?id=chained-1"),
        format!("/api/queues/{queue}/dead"),
        format!("/api/queues/{queue}/jobs?state=dead"),
        format!("/api/queues/{queue}/find?id=packed-1"),
        format!("/api/queues/{queue}/job?id=packed-1"),
    ];
    for path in &paths {
        let (status, body) = send(&hidden, get(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(!body.contains("SECRET"), "{path} leaks job data: {body}");
    }
    // Shown: the fields are there, the packed job is found by its own id,
    // and the raw bytes never reach the page.
    let v = json_of(&shown, &paths[2]).await;
    assert_eq!(v["payload"], "SECRET-payload");
    let v = json_of(&shown, &paths[5]).await;
    assert_eq!(v["job"]["id"], "packed-1", "{v}");
    assert_eq!(v["job"]["state"], "dead");
    let v = json_of(&shown, &paths[3]).await;
    assert_eq!(v["jobs"][0]["job_id"], "packed-1");
    assert_eq!(v["jobs"][0]["raw_hex"], "");
}

/// The `COUNT` of every `XRANGE`/`XREVRANGE` on `key` the server's slow
/// log holds (it logs every command: `slowlog-log-slower-than 0`).
async fn counts_read(c: &mut redis::aio::MultiplexedConnection, key: &str) -> Vec<usize> {
    let log: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(10_000)
        .query_async(c)
        .await
        .unwrap();
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        _ => String::new(),
    };
    let mut counts = Vec::new();
    for entry in log {
        let redis::Value::Array(parts) = entry else {
            continue;
        };
        let Some(redis::Value::Array(args)) = parts.get(3) else {
            continue;
        };
        let args: Vec<String> = args.iter().map(text).collect();
        if args.len() == 6 && args[0].contains("RANGE") && args[1] == key && args[4] == "COUNT" {
            counts.push(args[5].parse().unwrap());
        }
    }
    counts.reverse(); // the log is newest first
    counts
}

#[tokio::test]
async fn wide_jobs_are_read_a_few_at_a_time_and_cut_on_the_page() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-wide");
    let mut c = conn(&server).await;
    let ready = format!("jobstream:{{{queue}}}:ready");
    let big = vec![b'w'; 1 << 20];
    for i in 0..12 {
        let id = format!("wide-{i}");
        let _: String = c
            .xadd(
                &ready,
                "*",
                &[
                    ("id", id.as_bytes()),
                    ("type", b"wide".as_slice()),
                    ("payload", b"\x01"),
                    ("note", &big),
                ],
            )
            .await
            .unwrap();
    }
    let _: i64 = c.sadd("jobstream:queues", &queue).await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .arg("slowlog-max-len")
        .arg(10_000)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut c)
        .await
        .unwrap();
    let app = dashboard(&server, DashboardOptions::default().local_only()).await;
    let (status, body) = send(
        &app,
        get(&format!("/api/queues/{queue}/jobs?state=ready&limit=50")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["jobs"].as_array().unwrap().len(), 12);
    assert!(
        body.len() < 100_000,
        "a page of 12 MiB of jobs is {} bytes",
        body.len()
    );
    let note = v["jobs"][0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f[0] == "note")
        .unwrap()[1]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        note.ends_with(&format!("({} bytes in all)", 1 << 20)),
        "{}",
        &note[note.len() - 40..]
    );
    // The first read asks for a few; once an entry of 1 MiB is seen, one
    // at a time: no reply is much over a megabyte.
    let counts = counts_read(&mut c, &ready).await;
    assert!(!counts.is_empty());
    assert!(counts[0] <= 10, "counts: {counts:?}");
    assert!(counts[1..].iter().all(|&n| n == 1), "counts: {counts:?}");

    // In flight (what the workers page lists): every one, read a few at
    // a time too.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&ready)
        .arg("workers")
        .arg("0")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("w-1")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg(&ready)
        .arg(">")
        .query_async(&mut c)
        .await
        .unwrap();
    let inspector = jobstream_producer::inspect::Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();
    let running = inspector.running(&queue, 200).await.unwrap();
    let ids: Vec<String> = running.iter().map(|r| r.id.clone()).collect();
    let want: Vec<String> = (0..12).map(|i| format!("wide-{i}")).collect();
    assert_eq!(ids, want);
    assert!(
        running
            .iter()
            .all(|r| r.job_type == "wide" && r.consumer == "w-1")
    );
}

#[tokio::test]
async fn local_only_refuses_proxied_requests_remote_peers_and_odd_hosts() {
    let server = RedisServer::start();
    let app = dashboard(&server, DashboardOptions::default().local_only()).await;
    let with = |name: &str, value: &str| {
        Request::get("/api/overview")
            .header(header::HOST, "127.0.0.1:8080")
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    for (name, value) in [
        ("x-forwarded-for", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9"),
        ("x-real-ip", "203.0.113.9"),
        ("x-forwarded-host", "dash.example.com"),
    ] {
        let (status, _) = send(&app, with(name, value)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
    }
    for host in [
        "localhost:1@evil.com",
        "127.0.0.1:80:80",
        "[::1]evil",
        "localhost.evil.com",
    ] {
        let req = Request::get("/api/overview")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.0, StatusCode::FORBIDDEN, "{host}");
    }
    // The peer, when the server passes it: loopback only.
    let from = |peer: &str| {
        let mut req = get("/api/overview");
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    };
    assert_eq!(
        send(&app, from("10.1.2.3:5000")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&app, from("[::ffff:127.0.0.1]:5000")).await.0,
        StatusCode::OK
    );
    assert_eq!(send(&app, from("127.0.0.1:5000")).await.0, StatusCode::OK);
    assert_eq!(send(&app, get("/api/overview")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn cursors_and_ids_that_are_not_ones_get_a_400_not_a_panic() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-bad");
    let mut c = conn(&server).await;
    let _: i64 = c
        .zadd(
            format!("jobstream:{{{queue}}}:scheduled"),
            packed(&[("id", b"s-1"), ("type", b"t"), ("payload", b"\x01")]),
            1,
        )
        .await
        .unwrap();
    let _: i64 = c.sadd("jobstream:queues", &queue).await.unwrap();
    let app = dashboard(&server, DashboardOptions::default().local_only()).await;
    let q = format!("/api/queues/{queue}");
    for path in [
        format!("{q}/jobs?state=scheduled&cursor=18446744073709551615"),
        format!("{q}/jobs?state=scheduled&cursor=-1"),
        format!("{q}/jobs?state=ready&cursor=abc"),
        format!("{q}/jobs?state=dead&cursor=1-2-3"),
        format!("{q}/dead?cursor=%2B"),
        format!("{q}/dead?cursor=99999999999999999999-0"),
        format!("{q}/jobs?state=ready&cursor=1-%2B5"),
        format!("{q}/job?id="),
        format!("{q}/job?id=%20%20"),
        format!("{q}/find?id="),
    ] {
        let (status, body) = send(&app, get(&path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    }
    // The largest rank a cursor may be reads nothing, without overflow.
    let v = json_of(&app, &format!("{q}/jobs?state=scheduled&cursor=4294967295")).await;
    assert_eq!(v["jobs"], json!([]));
    let v = json_of(&app, &format!("{q}/jobs?state=scheduled")).await;
    assert_eq!(v["jobs"][0]["id"], "s-1");
    // A page hint that is not an entry id is ignored, not sent to Redis.
    let v = json_of(&app, &format!("{q}/job?id=s-1&state=dead&entry=nope")).await;
    assert_eq!(v["job"]["state"], "scheduled", "{v}");
}

#[tokio::test]
async fn an_action_on_a_filter_leaves_letters_that_died_after_the_look() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-upto");
    let mut c = conn(&server).await;
    let dead = format!("jobstream:{{{queue}}}:dead");
    let add = |i: usize| {
        let id = format!("job-{i}");
        [
            ("id".to_owned(), id),
            ("type".to_owned(), "mail".to_owned()),
            ("payload".to_owned(), "\u{1}".to_owned()),
            ("reason".to_owned(), "exhausted".to_owned()),
        ]
    };
    for i in 0..5 {
        let _: String = c.xadd(&dead, "*", &add(i)).await.unwrap();
    }
    let _: i64 = c.sadd("jobstream:queues", &queue).await.unwrap();
    let app = dashboard(&server, DashboardOptions::default().local_only()).await;
    let base = format!("/api/queues/{queue}/dead");
    let page = json_of(&app, &format!("{base}?reason=exhausted")).await;
    let newest = page["newest"].as_str().unwrap().to_owned();
    assert_eq!(page["jobs"][0]["job_id"], "job-4");
    // Three more die while the person reads the confirmation.
    for i in 5..8 {
        let _: String = c.xadd(&dead, "*", &add(i)).await.unwrap();
    }
    let csrf = json_of(&app, "/api/config").await["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let replay = |body: Value| {
        Request::post(format!("{base}/replay"))
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-jobstream-csrf", &csrf)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, body) = send(
        &app,
        replay(json!({ "filter": { "reason": "exhausted", "upto": "x" } })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(
        &app,
        replay(json!({ "filter": { "reason": "exhausted", "upto": newest } })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 5, "{v}");
    let left: usize = c.xlen(&dead).await.unwrap();
    assert_eq!(left, 3);
    let page = json_of(&app, &base).await;
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["job-7", "job-6", "job-5"]);
}

/// A request from `peer` carrying `Authorization: <auth>` and/or a cookie.
fn from(peer: &str, path: &str, auth: Option<&str>, cookie: Option<&str>) -> Request<Body> {
    let mut r = Request::get(path).header(header::HOST, "jobs.example:8080");
    if let Some(a) = auth {
        r = r.header(header::AUTHORIZATION, a);
    }
    if let Some(c) = cookie {
        r = r.header(header::COOKIE, c);
    }
    let mut r = r.body(Body::empty()).unwrap();
    r.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    r
}

/// A guesser gets 20 wrong tokens or passwords per address, then 429 for
/// everything it presents, the right one included (so the answer cannot
/// tell it which guess was right); a signed login cookie from the same
/// address and other addresses still work; the same wrong token again and
/// again (a stale tab) spends nothing. The login cookie is not the token,
/// cannot be forged by guessing it, and works on every replica.
#[tokio::test]
async fn wrong_credentials_are_throttled_per_address_and_the_cookie_is_not_the_token() {
    use base64::Engine;
    const TOKEN: &str = "a-test-token-0123456789";
    let server = RedisServer::start();
    let app = dashboard(
        &server,
        DashboardOptions::default()
            .token(TOKEN)
            .unwrap()
            .basic_auth("ops", "a-long-password-1")
            .unwrap(),
    )
    .await;
    let bearer = |t: &str| format!("Bearer {t}");
    let basic = |u: &str, p: &str| {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        format!("Basic {creds}")
    };
    let guesser = "203.0.113.7:40000";
    let api = "/api/overview";

    // Log in (from the guesser's address, before any guess) for a cookie.
    let resp = app
        .clone()
        .oneshot(login(&app, guesser, TOKEN).await)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let set = resp.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(!set.contains(TOKEN), "the cookie carries the token: {set}");
    let cookie = set.split(';').next().unwrap().to_owned();
    let value = cookie.split_once('=').unwrap().1.to_owned();
    // The cookie's value is no bearer token, and a cookie holding the
    // token itself is no session.
    let (status, _) = send(
        &app,
        from("198.51.100.1:1", api, Some(&bearer(&value)), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let raw = format!("jobstream_dashboard_token={TOKEN}");
    let (status, _) = send(&app, from("198.51.100.1:1", api, None, Some(&raw))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Cookies forged for guessed tokens (signed with the guess, what one
    // without the Redis-held secret can do), the right token among them:
    // none is a session, so a cookie header cannot test guesses.
    let forged: Vec<String> = ["guess-a-0123456789", TOKEN, "guess-b-0123456789"]
        .iter()
        .map(|t| format!("jobstream_dashboard_token={}", forge(t)))
        .collect();
    let (status, _) = send(
        &app,
        from("198.51.100.1:1", api, None, Some(&forged.join("; "))),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another replica (same Redis, same token) takes the login; a
    // dashboard with another token does not.
    let replica = dashboard(&server, DashboardOptions::default().token(TOKEN).unwrap()).await;
    let (status, _) = send(&replica, from("198.51.100.1:1", api, None, Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    let other = dashboard(
        &server,
        DashboardOptions::default()
            .token("another-token-0123456789")
            .unwrap(),
    )
    .await;
    let (status, _) = send(&other, from("198.51.100.1:1", api, None, Some(&cookie))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A stale tab: the same wrong token 100 times spends one guess.
    for _ in 0..100 {
        let (status, _) = send(
            &app,
            from(guesser, api, Some(&bearer("old-token-0123456789")), None),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // 19 more distinct guesses, tokens and passwords mixed: all 401.
    for i in 0..19 {
        let auth = if i % 2 == 0 {
            bearer(&format!("guess-{i}-0123456789"))
        } else {
            basic("ops", &format!("guess-{i}"))
        };
        let (status, body) = send(&app, from(guesser, api, Some(&auth), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {i}: {body}");
    }
    // The budget is spent: the right token and the right password are 429
    // too, with a Retry-After; so is a login.
    for auth in [bearer(TOKEN), basic("ops", "a-long-password-1")] {
        let resp = app
            .clone()
            .oneshot(from(guesser, api, Some(&auth), None))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = resp.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3).contains(&wait), "Retry-After {wait}");
    }
    let (status, _) = send(&app, login(&app, guesser, TOKEN).await).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The signed cookie cannot be guessed: it still works from there; a
    // cookie that is no session is no guess (the page still loads).
    let (status, _) = send(&app, from(guesser, api, None, Some(&cookie))).await;
    assert_eq!(status, StatusCode::OK);
    let stale = "jobstream_dashboard_token=1.00";
    let (status, _) = send(&app, from(guesser, "/api/config", None, Some(stale))).await;
    assert_eq!(status, StatusCode::OK);
    // Another address, even in the same /24, is not held up.
    let (status, _) = send(&app, from("203.0.113.8:1", api, Some(&bearer(TOKEN)), None)).await;
    assert_eq!(status, StatusCode::OK);
    // A refill later, one guess again.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let (status, _) = send(&app, from(guesser, api, Some(&bearer(TOKEN)), None)).await;
    assert_eq!(status, StatusCode::OK);
}

/// A login cookie value signed with `token` as the key: what a guesser
/// without the secret in Redis could make.
fn forge(token: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let expires = 4_000_000_000u64;
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(token.as_bytes()).unwrap();
    m.update(format!("jobstream-dashboard session {expires} {token}").as_bytes());
    let hex = jobstream_core::hex::encode(&m.finalize().into_bytes());
    format!("{expires}.{hex}")
}

/// Many wrong tokens at once from one address: the budget holds (each
/// check reserves its unit before it looks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_guesses_spend_no_more_than_the_budget() {
    let server = RedisServer::start();
    let app = dashboard(
        &server,
        DashboardOptions::default()
            .token("a-test-token-0123456789")
            .unwrap(),
    )
    .await;
    let tasks: Vec<_> = (0..60)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let auth = format!("Bearer guess-{i}-0123456789");
                send(
                    &app,
                    from("203.0.113.9:1", "/api/overview", Some(&auth), None),
                )
                .await
                .0
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((refused, throttled), (20, 40), "{statuses:?}");
}

/// A login secret someone overwrote with junk: logins fail with a clear
/// 503 (nothing panics, nothing is signed with junk); deleting it makes a
/// new one.
#[tokio::test]
async fn a_broken_login_secret_refuses_logins_until_deleted() {
    const TOKEN: &str = "a-test-token-0123456789";
    let server = RedisServer::start();
    let prefix = unique_queue("dash-secret");
    let mut c = conn(&server).await;
    let key = format!("{prefix}:secret:dashboard");
    let _: () = c.set(&key, "not a secret").await.unwrap();
    let app = Dashboard::connect(
        &server.url(),
        &prefix,
        DashboardOptions::default().token(TOKEN).unwrap(),
    )
    .await
    .unwrap()
    .router();
    let (status, body) = send(&app, login(&app, "203.0.113.5:1", TOKEN).await).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("login secret"), "{body}");
    let _: () = c.del(&key).await.unwrap();
    // The failed read is retried after a few seconds, not on every request.
    tokio::time::sleep(std::time::Duration::from_millis(5100)).await;
    let (status, body) = send(&app, login(&app, "203.0.113.5:1", TOKEN).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stored: String = c.get(&key).await.unwrap();
    assert_eq!(stored.len(), 64);
}

/// Two replicas with one token behind a load balancer: a page loaded
/// from one logs in and acts through the other (same CSRF value, same
/// login secret); a made-up CSRF value is still refused.
#[tokio::test]
async fn replicas_share_the_login_and_the_csrf_value() {
    const TOKEN: &str = "a-test-token-0123456789";
    let server = RedisServer::start();
    let queue = unique_queue("dash-replicas");
    let options = || DashboardOptions::default().token(TOKEN).unwrap();
    let (a, b) = (
        dashboard(&server, options()).await,
        dashboard(&server, options()).await,
    );
    let csrf_a = csrf(&a).await;
    assert_eq!(csrf_a, csrf(&b).await);
    let resp = a
        .clone()
        .oneshot(login(&a, "198.51.100.3:1", TOKEN).await)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cookie = resp.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let pause = |csrf: &str| {
        Request::post(format!("/api/queues/{queue}/pause"))
            .header(header::HOST, "jobs.example:8080")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::COOKIE, &cookie)
            .header("x-jobstream-csrf", csrf)
            .body(Body::from("{}"))
            .unwrap()
    };
    let (status, body) = send(&b, pause(&csrf_a)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = send(&b, pause(&"0".repeat(64))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// `POST api/login` from `peer`.
async fn login(app: &Router, peer: &str, token: &str) -> Request<Body> {
    let mut r = Request::post("/api/login")
        .header(header::HOST, "jobs.example:8080")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-jobstream-csrf", csrf(app).await)
        .body(Body::from(json!({ "token": token }).to_string()))
        .unwrap();
    r.extensions_mut()
        .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    r
}

async fn csrf(app: &Router) -> String {
    let v = json_of(app, "/api/config").await;
    v["csrf"].as_str().unwrap().to_owned()
}
