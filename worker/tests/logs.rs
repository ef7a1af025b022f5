#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What the worker logs: a handler's own lines carry the job (queue, type,
//! id, attempt); a failed attempt that will be retried is a WARN, a job
//! that goes to dead an ERROR; no payload is ever written.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use jobstream_producer::NewJob;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, RetryPolicy, Worker};

/// Everything logged, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_lines_carry_the_job_and_failures_have_their_levels() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();
    let server = RedisServer::start();
    let queue = unique_queue("logs");
    let p = producer(&server).await;
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .handle_with(
                "work",
                JobOptions::new().retry(RetryPolicy::exponential(
                    2,
                    Duration::from_millis(10),
                    Duration::from_millis(10),
                )),
                |secret: String, _ctx: JobContext| async move {
                    tracing::info!("working on it");
                    if secret.contains("fail") {
                        return Err(JobError::retry("upstream said no"));
                    }
                    Ok(())
                },
            ),
    );
    let ok = p
        .enqueue_job(&queue, NewJob::new("work", "hunter2-ok").unwrap())
        .await
        .unwrap();
    let bad = p
        .enqueue_job(&queue, NewJob::new("work", "hunter2-fail").unwrap())
        .await
        .unwrap();
    wait_stats(&server, &queue, "settled", |s| {
        s.processed == 1 && s.dead == 1
    })
    .await;
    w.stop().await;
    let log = captured.text();
    let line =
        |needle: &str, with: &str| log.lines().any(|l| l.contains(needle) && l.contains(with));
    assert!(line("working on it", &format!("job_id={ok}")), "{log}");
    assert!(line("working on it", &queue), "{log}");
    assert!(
        line("working on it", "attempt=2"),
        "the retry's line says attempt 2: {log}"
    );
    let warn = log
        .lines()
        .find(|l| l.contains(" WARN ") && l.contains(&bad))
        .unwrap_or_default();
    assert!(
        warn.contains("will retry") && warn.contains("attempt=1"),
        "{log}"
    );
    let error = log
        .lines()
        .find(|l| l.contains(" ERROR ") && l.contains(&bad))
        .unwrap_or_default();
    assert!(
        error.contains("moved to dead") && error.contains("attempt=2"),
        "{log}"
    );
    assert!(
        error.contains("error_class") && error.contains("upstream said no"),
        "{log}"
    );
    assert!(!log.contains("hunter2"), "no payload in the log: {log}");
}
