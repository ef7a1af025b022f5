#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The dashboard in a real browser: `jobstream dashboard` bound beyond
//! localhost with a token, a real worker, and Debian's Chromium driven by
//! `dashboard/tests/browser/run.mjs` (playwright-core): log in, compare the
//! overview with `stats --json`, find a dead job by id and replay it, run a
//! scheduled job now, pause a queue and see the workers leave its jobs,
//! resume it, and check that actions without the token or the CSRF header
//! are refused. Screenshots of every page go to `.tmp/dashboard/`.
//!
//! Needs `chromium` and `npm ci --prefix dashboard/tests/browser`, which
//! `dev/test` installs; without them the test fails and says so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jobstream_producer::{NewJob, Producer};
use jobstream_testkit::{RedisServer, free_port, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, Worker};

const TOKEN: &str = "browser-test-token-5f0c2a9e1b";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Kills the dashboard when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "no Chromium at {path}: install Debian's `chromium` (dev/test does) or set CHROMIUM"
    );
    path
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let chromium = chromium();
    let browser_dir = repo().join("dashboard/tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed: npm ci --prefix dashboard/tests/browser (dev/test does)"
    );
    let server = RedisServer::start();
    let queue = unique_queue("dash-browser");
    let producer = Producer::connect(&server.url()).await.unwrap();

    // A worker: `ok` succeeds, `flaky` fails for good until told not to,
    // `slow` runs until cancelled or a minute passes.
    let failing = Arc::new(AtomicBool::new(true));
    let f = Arc::clone(&failing);
    let options = JobOptions::default().timeout(Duration::from_secs(120));
    let worker = Worker::builder(&server.url())
        .queue(&queue)
        .concurrency(4)
        .handle_with(
            "ok",
            options.clone(),
            |_: serde_json::Value, _job: JobContext| async { Ok::<(), JobError>(()) },
        )
        .handle_with(
            "flaky",
            options.clone(),
            move |_: serde_json::Value, _job: JobContext| {
                let fail = f.load(Ordering::SeqCst);
                async move {
                    if fail {
                        Err(JobError::permanent("the upstream said no"))
                    } else {
                        Ok(())
                    }
                }
            },
        )
        .handle_with(
            "slow",
            options,
            |_: serde_json::Value, job: JobContext| async move {
                tokio::select! {
                    () = job.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                Ok::<(), JobError>(())
            },
        )
        .build()
        .unwrap();
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run_until_stopped());

    let dead_id = "dead-job-0001";
    let job = NewJob::new(
        "flaky",
        &serde_json::json!({"order": 42, "note": "replay me"}),
    )
    .unwrap()
    .with_id(dead_id)
    .unwrap()
    .keep_record(Duration::from_secs(3600));
    producer.enqueue_job(&queue, job).await.unwrap();
    let other = NewJob::new("flaky", &serde_json::json!({"order": 43})).unwrap();
    producer.enqueue_job(&queue, other).await.unwrap();
    // A hostile producer's job type: shown as text, never as markup.
    let xss = NewJob::new("<img src=x onerror=alert(1)>", &1).unwrap();
    let xss_id = producer.enqueue_job(&queue, xss).await.unwrap().to_string();
    let inspector = jobstream_producer::inspect::Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();
    wait_for("three dead jobs", Duration::from_secs(20), async || {
        inspector.stats(&queue).await.unwrap().dead == 3
    })
    .await;
    failing.store(false, Ordering::SeqCst);
    let scheduled = NewJob::new("ok", &serde_json::json!({"later": true}))
        .unwrap()
        .delay(Duration::from_secs(3600));
    let scheduled_id = producer
        .enqueue_job(&queue, scheduled)
        .await
        .unwrap()
        .to_string();
    producer
        .enqueue_job(&queue, NewJob::new("slow", &0).unwrap())
        .await
        .unwrap();

    // The dashboard, bound beyond localhost, with a token.
    let port = free_port();
    let bin = env!("CARGO_BIN_EXE_jobstream");
    let dashboard = Killed(
        Command::new(bin)
            .args([
                "dashboard",
                "--listen",
                &format!("0.0.0.0:{port}"),
                "--refresh",
                "1s",
            ])
            .env("REDIS_URL", server.url())
            .env("JOBSTREAM_DASHBOARD_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/");
    jobstream_testkit::http_get_when_up(
        format!("127.0.0.1:{port}").parse().unwrap(),
        "/api/config",
    );

    let shots = repo().join(".tmp/dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::task::spawn_blocking({
        let browser_dir = browser_dir.clone();
        let queue = queue.clone();
        let server_url = server.url();
        move || {
            Command::new("node")
                .arg(browser_dir.join("run.mjs"))
                .current_dir(&browser_dir)
                .env("DASHBOARD_URL", &url)
                .env("TOKEN", TOKEN)
                .env("QUEUE", &queue)
                .env("DEAD_JOB_ID", dead_id)
                .env("SCHEDULED_JOB_ID", &scheduled_id)
                .env("XSS_JOB_ID", &xss_id)
                .env("JOBSTREAM_BIN", bin)
                .env("REDIS_URL", &server_url)
                .env("PREFIX", "jobstream")
                .env("SCREENSHOT_DIR", &shots)
                .env("CHROMIUM", &chromium)
                .output()
                .expect("cannot run node")
        }
    })
    .await
    .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(dashboard);
    stop.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(30), running).await;
    assert!(out.status.success(), "the browser run failed:\n{log}");
    println!("{log}");
    // What the browser did, seen from Redis.
    let record = inspector.record(&queue, dead_id).await.unwrap().unwrap();
    assert_eq!(record.state.as_str(), "completed", "{record:?}");
}
