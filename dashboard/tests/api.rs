#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The dashboard's HTTP API against a real Redis, driven in-process: who
//! may read and act (token, basic auth, local-only, read-only), CSRF
//! checks, mounting under a path, bounded paging of every state, dead
//! letter filters and actions, run-now, the shared history and the
//! overview cache.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine;
use jobstream_dashboard::{Dashboard, DashboardOptions};
use jobstream_producer::inspect::Inspector;
use jobstream_producer::{NewJob, Producer};
use jobstream_testkit::{RedisServer, unique_queue};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "a-test-token-0123456789";

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
}

async fn send(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        json,
    }
}

fn get(path: &str) -> axum::http::request::Builder {
    Request::get(path).header(header::HOST, "127.0.0.1:8080")
}

fn post(path: &str, csrf: &str) -> axum::http::request::Builder {
    Request::post(path)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-jobstream-csrf", csrf)
}

async fn dashboard(server: &RedisServer, options: DashboardOptions) -> Router {
    Dashboard::connect(&server.url(), "jobstream", options)
        .await
        .unwrap()
        .router()
}

async fn csrf(app: &Router) -> String {
    let r = send(app, get("/api/config").body(Body::empty()).unwrap()).await;
    r.json["csrf"].as_str().unwrap().to_owned()
}

async fn enqueue(p: &Producer, queue: &str, job: NewJob) -> String {
    p.enqueue_job(queue, job).await.unwrap().to_string()
}

#[tokio::test]
async fn a_token_guards_reads_and_actions_and_csrf_guards_every_post() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-auth");
    let p = Producer::connect(&server.url()).await.unwrap();
    enqueue(&p, &queue, NewJob::new("ok", &1).unwrap()).await;
    let app = dashboard(&server, DashboardOptions::default().token(TOKEN).unwrap()).await;
    let csrf = csrf(&app).await;
    let pause = format!("/api/queues/{queue}/pause");

    // No token: reads and actions are 401 (the page's assets are public).
    let r = send(&app, get("/api/overview").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json["login"], true);
    let r = send(&app, post(&pause, &csrf).body(Body::from("{}")).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(&app, get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-frame-options"], "DENY");

    // A wrong login is refused; the right one sets an HttpOnly, strict cookie.
    let login = |t: &str| {
        post("/api/login", &csrf)
            .body(Body::from(json!({ "token": t }).to_string()))
            .unwrap()
    };
    assert_eq!(
        send(&app, login("wrong-token-0123456789")).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = send(&app, login(TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/;"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();

    // With the cookie: reads; an action still needs the CSRF header, a
    // same-origin Origin and no cross-site fetch metadata.
    let r = send(
        &app,
        get("/api/overview")
            .header(header::COOKIE, &cookie)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let no_csrf = Request::post(&pause)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::COOKIE, &cookie)
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&app, no_csrf).await.status, StatusCode::FORBIDDEN);
    let cross = post(&pause, &csrf)
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, "http://evil.example")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&app, cross).await.status, StatusCode::FORBIDDEN);
    let site = post(&pause, &csrf)
        .header(header::COOKIE, &cookie)
        .header("sec-fetch-site", "cross-site")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&app, site).await.status, StatusCode::FORBIDDEN);
    let form = Request::post(&pause)
        .header(header::HOST, "127.0.0.1:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-jobstream-csrf", &csrf)
        .header(header::COOKIE, &cookie)
        .body(Body::from("a=1"))
        .unwrap();
    assert_eq!(send(&app, form).await.status, StatusCode::FORBIDDEN);
    let inspector = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();
    assert!(
        !inspector.stats(&queue).await.unwrap().paused,
        "a refused action changed nothing"
    );

    let ok = post(&pause, &csrf)
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, "http://127.0.0.1:8080")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from("{}"))
        .unwrap();
    let r = send(&app, ok).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert!(inspector.stats(&queue).await.unwrap().paused);
    // A bearer token works for scripts.
    let r = send(
        &app,
        post(&format!("/api/queues/{queue}/resume"), &csrf)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!inspector.stats(&queue).await.unwrap().paused);
}

#[tokio::test]
async fn without_auth_actions_are_off_unless_local_only_and_local_only_refuses_other_hosts() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-local");
    let p = Producer::connect(&server.url()).await.unwrap();
    enqueue(&p, &queue, NewJob::new("ok", &1).unwrap()).await;
    let pause = format!("/api/queues/{queue}/pause");

    // No auth, not local-only (served beyond localhost): reads, no actions.
    let open = dashboard(&server, DashboardOptions::default()).await;
    let c = csrf(&open).await;
    let r = send(&open, get("/api/config").body(Body::empty()).unwrap()).await;
    assert_eq!(r.json["can_act"], false);
    assert_eq!(
        send(&open, get("/api/overview").body(Body::empty()).unwrap())
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(&open, post(&pause, &c).body(Body::from("{}")).unwrap())
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Local-only: acts for localhost, refuses any other Host (a proxy, DNS
    // rebinding).
    let local = dashboard(&server, DashboardOptions::default().local_only()).await;
    let c = csrf(&local).await;
    let evil = Request::get("/api/overview")
        .header(header::HOST, "attacker.example:8080")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&local, evil).await.status, StatusCode::FORBIDDEN);
    let r = send(&local, post(&pause, &c).body(Body::from("{}")).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    // Read-only: no action even with the token.
    let ro = dashboard(
        &server,
        DashboardOptions::default()
            .token(TOKEN)
            .unwrap()
            .read_only(),
    )
    .await;
    let c = csrf(&ro).await;
    let r = send(
        &ro,
        post(&format!("/api/queues/{queue}/resume"), &c)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Basic auth: a challenge, then the right password.
    let basic = dashboard(
        &server,
        DashboardOptions::default()
            .basic_auth("ops", "a-long-password")
            .unwrap(),
    )
    .await;
    let r = send(&basic, get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let creds = base64::engine::general_purpose::STANDARD.encode("ops:a-long-password");
    let r = send(
        &basic,
        get("/api/overview")
            .header(header::AUTHORIZATION, format!("Basic {creds}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Weak settings are refused.
    assert!(DashboardOptions::default().token("short").is_err());
    assert!(
        DashboardOptions::default()
            .token("has;semicolon-0123456789")
            .is_err()
    );
    assert!(
        DashboardOptions::default()
            .basic_auth("ops", "short")
            .is_err()
    );
}

#[tokio::test]
async fn mounted_under_a_path_it_redirects_to_the_slash_and_scopes_its_cookie() {
    let server = RedisServer::start();
    let d = Dashboard::connect(
        &server.url(),
        "jobstream",
        DashboardOptions::default().token(TOKEN).unwrap(),
    )
    .await
    .unwrap();
    let app = Router::new()
        .route("/", axum::routing::get(|| async { "the app's own page" }))
        .merge(d.router_at("/admin/jobs"));
    let r = send(&app, get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "the app's routes are untouched");
    let r = send(&app, get("/admin/jobs").body(Body::empty()).unwrap()).await;
    assert!(r.status.is_redirection(), "{}", r.status);
    assert_eq!(r.headers[header::LOCATION], "/admin/jobs/");
    let r = send(&app, get("/admin/jobs/").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK, "{:?} {}", r.headers, r.json);
    let r = send(
        &app,
        get("/admin/jobs/assets/app.js")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // Mounted, the API still needs the token.
    let r = send(
        &app,
        get("/admin/jobs/api/overview").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(
        &app,
        get("/admin/jobs/api/overview")
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let c = csrf_at(&app, "/admin/jobs/api/config").await;
    let r = send(
        &app,
        post("/admin/jobs/api/login", &c)
            .body(Body::from(json!({ "token": TOKEN }).to_string()))
            .unwrap(),
    )
    .await;
    let cookie = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.contains("Path=/admin/jobs/;"), "{cookie}");
}

async fn csrf_at(app: &Router, path: &str) -> String {
    let r = send(app, get(path).body(Body::empty()).unwrap()).await;
    r.json["csrf"].as_str().unwrap().to_owned()
}

/// Follows `next` through every page of `path` (which has `?state=…`).
async fn all_pages(app: &Router, path: &str, limit: usize) -> (Vec<String>, usize) {
    let (mut ids, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&limit={limit}&cursor={c}"),
            None => format!("{path}&limit={limit}"),
        };
        let r = send(app, get(&url).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.json);
        let jobs = r.json["jobs"].as_array().unwrap();
        assert!(jobs.len() <= limit);
        pages += 1;
        for j in jobs {
            let id = j.get("id").or_else(|| j.get("job_id")).unwrap();
            ids.push(id.as_str().unwrap().to_owned());
        }
        match r.json["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => return (ids, pages),
        }
        assert!(pages < 100, "paging does not end");
    }
}

#[tokio::test]
async fn every_state_pages_through_every_job_once() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-pages");
    let p = Producer::connect(&server.url()).await.unwrap();
    let mut ready = Vec::new();
    let mut scheduled = Vec::new();
    for i in 0..123 {
        let t = if i % 3 == 0 { "a" } else { "b" };
        ready.push(enqueue(&p, &queue, NewJob::new(t, &i).unwrap()).await);
        scheduled.push(
            enqueue(
                &p,
                &queue,
                NewJob::new(t, &i)
                    .unwrap()
                    .delay(Duration::from_secs(3600 + i)),
            )
            .await,
        );
    }
    let app = dashboard(&server, DashboardOptions::default().local_only()).await;
    let (ids, pages) = all_pages(&app, &format!("/api/queues/{queue}/jobs?state=ready"), 50).await;
    assert_eq!((ids.clone(), pages), (ready.clone(), 3));
    let (ids, _) = all_pages(
        &app,
        &format!("/api/queues/{queue}/jobs?state=scheduled"),
        40,
    )
    .await;
    assert_eq!(ids, scheduled, "earliest due first, each once");
    // A type filter pages too, and only that type comes back.
    let (ids, _) = all_pages(
        &app,
        &format!("/api/queues/{queue}/jobs?state=ready&type=a"),
        7,
    )
    .await;
    let want: Vec<String> = ready.iter().step_by(3).cloned().collect();
    assert_eq!(ids, want);
    // Nonsense is a 400, not a crash.
    let r = send(
        &app,
        get(&format!("/api/queues/{queue}/jobs?state=nope"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send(
        &app,
        get("/api/queues/bad%20name%7B/jobs?state=ready")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);

    // Find by id, and the job page: fields, payload as JSON, actions.
    let id = &scheduled[5];
    let r = send(
        &app,
        get(&format!("/api/queues/{queue}/job?id={id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["job"]["state"], "scheduled");
    assert_eq!(r.json["payload"], json!(5));
    assert_eq!(r.json["actions"]["run_now"], true);
    // Run it now: it becomes due at the server's now.
    let c = csrf(&app).await;
    let r = send(
        &app,
        post(&format!("/api/queues/{queue}/job/run-now"), &c)
            .body(Body::from(json!({ "id": id }).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = send(
        &app,
        get(&format!("/api/queues/{queue}/jobs?state=scheduled&limit=1"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["jobs"][0]["id"], id.as_str(), "now the earliest due");
    // Cancel a ready one (no record): taken out of ready.
    let r = send(
        &app,
        post(&format!("/api/queues/{queue}/job/cancel"), &c)
            .body(Body::from(json!({ "id": ready[0] }).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = send(
        &app,
        get(&format!("/api/queues/{queue}/find?id={}", ready[0]))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["job"], Value::Null);

    // A job page refreshing looks where the job was (one entry), not
    // through the queue again.
    let far = &ready[110];
    let page = format!("/api/queues/{queue}/job?id={far}");
    let r = send(&app, get(&page).body(Body::empty()).unwrap()).await;
    assert_eq!(r.json["job"]["state"], "ready", "{}", r.json);
    assert!(
        r.json["scanned"].as_u64().unwrap() > 100,
        "{}",
        r.json["scanned"]
    );
    let r = send(&app, get(&page).body(Body::empty()).unwrap()).await;
    assert_eq!(r.json["job"]["id"], far.as_str());
    assert_eq!(r.json["scanned"], 0, "the refresh searched again");
    // A scheduled job is found again by its due time alone.
    let r = send(
        &app,
        get(&format!("/api/queues/{queue}/job?id={}", scheduled[7]))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["job"]["state"], "scheduled");
    let r = send(
        &app,
        get(&format!("/api/queues/{queue}/job?id={}", scheduled[7]))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.json["job"]["state"].clone(), r.json["scanned"].clone()),
        (json!("scheduled"), json!(0))
    );

    // Hidden payloads never leave the server.
    let hidden = dashboard(
        &server,
        DashboardOptions::default().local_only().hide_payloads(),
    )
    .await;
    let r = send(
        &hidden,
        get(&format!("/api/queues/{queue}/job?id={id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        (r.json["payload"].clone(), r.json["payload_hidden"].clone()),
        (Value::Null, json!(true))
    );
}

#[tokio::test]
async fn dead_letters_filter_by_reason_type_and_time_and_act_on_ids_or_a_filter() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-dead");
    let inspector = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();
    // Dead entries written as dead-3 writes them (fields of the wire format).
    let key = format!("jobstream:{{{queue}}}:dead");
    let mut ids = Vec::new();
    for i in 0..30u64 {
        let (reason, t) = if i % 2 == 0 {
            ("exhausted", "mail")
        } else {
            ("permanent", "sms")
        };
        let entry_ms = 1_700_000_000_000u64 + i * 1000;
        let id = format!("{entry_ms}-0");
        server
            .cli(&[
                "XADD",
                &key,
                &id,
                "id",
                &format!("job-{i}"),
                "type",
                t,
                "payload",
                "\u{1}",
                "reason",
                reason,
                "error_class",
                "error",
                "error",
                "boom",
                "failed_at",
                &entry_ms.to_string(),
            ])
            .unwrap();
        ids.push(id);
    }
    server.cli(&["SADD", "jobstream:queues", &queue]).unwrap();
    let app = dashboard(&server, DashboardOptions::default().local_only()).await;
    let base = format!("/api/queues/{queue}/dead");
    // Newest first, paged.
    let (got, pages) = all_pages(&app, &format!("{base}?x=1"), 8).await;
    let mut want: Vec<String> = (0..30).rev().map(|i| format!("job-{i}")).collect();
    assert_eq!((got, pages), (want.clone(), 4));
    // Reason and type.
    let (got, _) = all_pages(&app, &format!("{base}?reason=permanent&type=sms"), 5).await;
    want.retain(|j| j[4..].parse::<u64>().unwrap() % 2 == 1);
    assert_eq!(got, want);
    // Time: entries 10..=19.
    let since = 1_700_000_000_000u64 + 10_000;
    let until = 1_700_000_000_000u64 + 19_000;
    let (got, _) = all_pages(
        &app,
        &format!("{base}?since_ms={since}&until_ms={until}"),
        50,
    )
    .await;
    assert_eq!(
        got,
        (10..20)
            .rev()
            .map(|i| format!("job-{i}"))
            .collect::<Vec<_>>()
    );

    let c = csrf(&app).await;
    // Replay two by id: into ready.
    let r = send(
        &app,
        post(&format!("{base}/replay"), &c)
            .body(Body::from(json!({ "ids": [ids[0], ids[1]] }).to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["count"], 2, "{}", r.json);
    // Discard a filter's whole result: every sms in the time window.
    let r = send(
        &app,
        post(&format!("{base}/discard"), &c)
            .body(Body::from(
                json!({ "filter": { "type": "sms", "since_ms": since, "until_ms": until } })
                    .to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["count"], 5, "{}", r.json);
    let st = inspector.stats(&queue).await.unwrap();
    assert_eq!((st.dead, st.ready), (23, 2));
    // Ids that are not entry ids: a clear 400, nothing done.
    let r = send(
        &app,
        post(&format!("{base}/replay"), &c)
            .body(Body::from(
                json!({ "ids": [ids[2], "not-an-id"] }).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    // Neither ids nor filter: refused, nothing done.
    let r = send(
        &app,
        post(&format!("{base}/discard"), &c)
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_overview_is_computed_once_per_interval_and_history_is_shared() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-cache");
    let p = Producer::connect(&server.url()).await.unwrap();
    enqueue(&p, &queue, NewJob::new("ok", &1).unwrap()).await;
    let options = DashboardOptions::default()
        .local_only()
        .refresh(Duration::from_secs(30));
    let app = dashboard(&server, options.clone()).await;
    let xinfo_calls = || {
        let info = server.cli(&["INFO", "commandstats"]).unwrap();
        info.lines()
            // `cmdstat_xinfo|groups:calls=…` (a subcommand's own line).
            .filter(|l| l.starts_with("cmdstat_xinfo"))
            .filter_map(|l| l.split("calls=").nth(1))
            .filter_map(|s| s.split(',').next())
            .filter_map(|n| n.parse::<u64>().ok())
            .sum::<u64>()
    };
    let before = xinfo_calls();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            send(&app, get("/api/overview").body(Body::empty()).unwrap())
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let queues = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap()
        .queues()
        .await
        .unwrap()
        .len() as u64;
    assert_eq!(
        xinfo_calls() - before,
        queues,
        "ten viewers, one computation"
    );

    // Two dashboards sampling the same interval write one entry (under a
    // prefix no running dashboard samples).
    let inspector = Inspector::connect(&server.url(), "jobstream-h")
        .await
        .unwrap();
    let wrote: Vec<bool> = vec![
        inspector.record_sample(&queue, 60_000).await.unwrap(),
        inspector.record_sample(&queue, 60_000).await.unwrap(),
    ];
    assert_eq!(wrote.iter().filter(|w| **w).count(), 1, "{wrote:?}");
    assert_eq!(inspector.samples(&queue).await.unwrap().len(), 1);
    let len: u64 = server
        .cli(&["XLEN", &format!("jobstream-h:{{{queue}}}:history")])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(len, 1);
}

#[tokio::test]
async fn schedules_show_the_rate_limits_live_workers_declare_and_the_holds() {
    use jobstream_core::workers::{RateLimitInfo, WorkerInfo, heartbeat};
    let server = RedisServer::start();
    let queue = unique_queue("dash-rates");
    let p = Producer::connect(&server.url()).await.unwrap();
    enqueue(&p, &queue, NewJob::new("ok", &1).unwrap()).await;
    let redis =
        jobstream_core::Redis::open(&server.url(), &jobstream_core::Timings::default()).unwrap();
    let limit = jobstream_core::RateLimit::per_second(50).unwrap();
    let now = redis.server_now_ms().await.unwrap();
    for name in ["w-1", "w-2"] {
        let info = WorkerInfo::new(name, vec![queue.clone()], 4, now)
            .with_rate_limits(vec![RateLimitInfo::new(&queue, "type", "geocode", &limit)]);
        heartbeat(&redis, "jobstream", &info, now).await.unwrap();
    }
    server
        .cli(&[
            "HSET",
            &format!("jobstream:{{{queue}}}:holds"),
            "key:acme",
            &(now + 60_000).to_string(),
        ])
        .unwrap();
    let app = dashboard(&server, DashboardOptions::default().local_only()).await;
    let r = send(&app, get("/api/schedules").body(Body::empty()).unwrap()).await;
    let q = r.json["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["queue"] == queue.as_str())
        .unwrap_or_else(|| panic!("{}", r.json))
        .clone();
    assert_eq!(q["rate_limits"][0]["name"], "geocode");
    assert_eq!(q["rate_limits"][0]["limit"], 50);
    assert_eq!(q["rate_limits"][0]["workers"], 2, "one entry, two workers");
    assert_eq!(q["holds"][0]["key"], "key:acme");
}

#[tokio::test]
async fn a_job_deep_in_a_backlog_is_found_by_its_uuid_time_or_the_pages_hint() {
    let server = RedisServer::start();
    let queue = unique_queue("dash-deep");
    let p = Producer::connect(&server.url()).await.unwrap();
    // More than one page of the search (1,000 entries), far beyond its cap.
    let jobs = (0..2500).map(|i| NewJob::new("ok", &i).unwrap()).collect();
    let ids: Vec<String> = p
        .enqueue_many(&queue, jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    let sched = enqueue(
        &p,
        &queue,
        NewJob::new("ok", &1)
            .unwrap()
            .with_id("not-a-uuid")
            .unwrap()
            .delay(Duration::from_secs(600)),
    )
    .await;
    // A search cap far below the job's position: the UUIDv7's time finds it.
    let app = dashboard(
        &server,
        DashboardOptions::default().local_only().scan_cap(100),
    )
    .await;
    let r = send(
        &app,
        get(&format!("/api/queues/{queue}/find?id={}", ids[2400]))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["job"]["id"], ids[2400].as_str(), "{}", r.json);
    // A plain id the page saw scheduled: its due time alone.
    let r = send(
        &app,
        get(&format!("/api/queues/{queue}/jobs?state=scheduled"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let due = r.json["jobs"][0]["due_at_ms"].as_u64().unwrap();
    let r = send(
        &app,
        get(&format!(
            "/api/queues/{queue}/job?id={sched}&state=scheduled&due={due}"
        ))
        .body(Body::empty())
        .unwrap(),
    )
    .await;
    assert_eq!(
        (r.json["job"]["id"].clone(), r.json["scanned"].clone()),
        (json!(sched), json!(0)),
        "{}",
        r.json
    );
    // A job that is gone: the page's refreshes do not search again for a while.
    let page = format!("/api/queues/{queue}/job?id=gone-job");
    let r = send(&app, get(&page).body(Body::empty()).unwrap()).await;
    assert!(r.json["scanned"].as_u64().unwrap() > 0);
    let r = send(&app, get(&page).body(Body::empty()).unwrap()).await;
    assert_eq!(
        (r.json["job"].clone(), r.json["scanned"].clone()),
        (Value::Null, json!(0))
    );
}
