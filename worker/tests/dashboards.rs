#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Grafana dashboard and the Prometheus alert rules in `deploy/` use
//! only metrics a worker serves: every `jobstream_*` name in them is
//! checked against a live worker's `/metrics`.

mod common;

use std::collections::BTreeSet;

use common::*;
use jobstream_testkit::{RedisServer, free_addr, http_get_when_up, unique_queue};
use jobstream_worker::{JobContext, Worker};

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Every `jobstream_…` identifier in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("jobstream_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

/// The sample names a `/metrics` body can hold: each family's `# TYPE`
/// with the suffixes of its type.
fn served(body: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line[7..].split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                out.insert(format!("{name}_total"));
            }
            "histogram" => {
                for s in ["_bucket", "_count", "_sum"] {
                    out.insert(format!("{name}{s}"));
                }
            }
            _ => {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_use_only_metrics_the_worker_serves() {
    let server = RedisServer::start();
    let queue = unique_queue("dash");
    let addr = free_addr();
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .serve_http(addr)
            .handle("work", |_: u64, _ctx: JobContext| async { Ok(()) }),
    );
    let body = tokio::task::spawn_blocking(move || http_get_when_up(addr, "/metrics").1)
        .await
        .unwrap();
    let served = served(&body);
    assert!(served.contains("jobstream_jobs_total"), "{body}");
    let dashboard = repo_file("deploy/grafana/jobstream-dashboard.json");
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| !p.is_empty()));
    let alerts = repo_file("deploy/prometheus/jobstream-alerts.yml");
    assert!(alerts.contains("groups:") && alerts.matches("- alert: ").count() >= 5);
    assert_eq!(
        alerts.matches("- alert: ").count(),
        alerts.matches("        expr: ").count(),
        "every rule has an expression"
    );
    for (file, text) in [("dashboard", &dashboard), ("alerts", &alerts)] {
        let used = metric_names(text);
        assert!(!used.is_empty(), "{file} uses no metric");
        let unknown: Vec<&String> = used.iter().filter(|m| !served.contains(*m)).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics the worker does not serve: {unknown:?}; served: {served:?}"
        );
    }
    w.stop().await;
}
