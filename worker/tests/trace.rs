#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One trace from the request that enqueued a job to its handler: the
//! producer writes the W3C trace context of the span it enqueues in
//! (`traceparent`), the worker's `job` span continues it. Spans are
//! collected by OpenTelemetry's in-memory exporter.
//!
//! Every build checks the `trace_id` field of the job span (what JSON logs
//! carry); with the worker's `otel` feature (on in the workspace build:
//! examples/quickstart enables it) the exported OpenTelemetry spans are
//! checked too: the job span's trace id and parent are the producer's.

mod common;

// The OpenTelemetry checks here must not compile out: the worker's own
// dev-dependency turns `otel` on for its tests.
#[cfg(not(feature = "otel"))]
compile_error!("worker/tests/trace.rs needs the `otel` feature (see worker/Cargo.toml)");

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use common::*;
use jobstream_producer::{Chain, NewJob};
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, Worker};
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// The fields of a closed `job` span: job id to its `trace_id` (if one
/// was recorded).
static JOB_SPANS: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());
/// What each handler saw: job id to the trace id of the span it runs in.
static HANDLER_TRACE: Mutex<Option<HashMap<String, TraceId>>> = Mutex::new(None);

/// The exporter every span of this test binary ends up in (one global
/// subscriber: the worker's tasks run on the runtime's threads).
fn exporter() -> &'static InMemorySpanExporter {
    static EXPORTER: OnceLock<InMemorySpanExporter> = OnceLock::new();
    EXPORTER.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer({
                use opentelemetry::trace::TracerProvider as _;
                provider.tracer("test")
            }))
            .with(JobFields)
            .with(tracing_subscriber::filter::LevelFilter::DEBUG);
        tracing::subscriber::set_global_default(subscriber).unwrap();
        exporter
    })
}

/// Records the fields of `job` spans as they close.
struct JobFields;

#[derive(Default)]
struct Fields {
    job_id: Option<String>,
    trace_id: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "trace_id" => self.trace_id = Some(value.to_owned()),
            "job_id" => self.job_id = Some(value.to_owned()),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "trace_id" => self.trace_id = Some(format!("{value:?}")),
            "job_id" => self.job_id = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JobFields {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        if attrs.metadata().name() != "job" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }
    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }
    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id)
            && let Some(fields) = span.extensions_mut().remove::<Fields>()
            && let Some(job_id) = fields.job_id
        {
            JOB_SPANS.lock().unwrap().push((job_id, fields.trace_id));
        }
    }
}

/// The `trace_id` field of job `id`'s span, once the span closed (the
/// first attempt's).
async fn job_span_trace_id(id: &str) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some((_, t)) = JOB_SPANS.lock().unwrap().iter().find(|(j, _)| j == id) {
            return t.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id}'s span never closed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The exported OpenTelemetry span of job `id` (named `job`, attribute
/// `job_id`).
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
async fn exported_job_span(id: &str) -> SpanData {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let spans = exporter().get_finished_spans().unwrap();
        let found = spans.into_iter().find(|s| {
            s.name == "job"
                && s.attributes
                    .iter()
                    .any(|kv| kv.key.as_str() == "job_id" && kv.value.as_str() == id)
        });
        if let Some(span) = found {
            return span;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id}'s span was never exported"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The exported spans that are children of `parent` named `name`.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
fn exported_children(parent: SpanId, name: &str) -> Vec<SpanData> {
    exporter()
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.parent_span_id == parent && s.name == name)
        .collect()
}

/// A worker whose handler `traced` opens a span of its own and notes the
/// trace id it runs in.
fn traced_worker(server: &RedisServer, queue: &str) -> Running {
    start(
        Worker::builder(&server.url())
            .queue(queue)
            .timings(fast_timings())
            .handle("traced", |_: (), ctx: JobContext| async move {
                let work = tracing::info_span!("handler_work");
                async {
                    let trace = tracing::Span::current()
                        .context()
                        .span()
                        .span_context()
                        .trace_id();
                    HANDLER_TRACE
                        .lock()
                        .unwrap()
                        .get_or_insert_with(HashMap::new)
                        .insert(ctx.id().to_owned(), trace);
                }
                .instrument(work)
                .await;
                Ok(())
            }),
    )
}

#[cfg_attr(not(feature = "otel"), allow(dead_code))]
fn handler_trace(id: &str) -> Option<TraceId> {
    HANDLER_TRACE
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|m| m.get(id).copied())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producers_trace_id_reaches_the_handlers_span() {
    exporter();
    let server = RedisServer::start();
    let queue = unique_queue("trace");
    let p = producer(&server).await;
    let worker = traced_worker(&server, &queue);

    // The request that enqueues: an OpenTelemetry-backed span.
    let request = tracing::info_span!("request");
    let request_cx = request.context().span().span_context().clone();
    assert!(request_cx.is_valid());
    let (plain, delayed, chain, explicit) = async {
        let plain = p
            .enqueue_job(&queue, NewJob::new("traced", &()).unwrap())
            .await
            .unwrap();
        let delayed = p
            .enqueue_job(
                &queue,
                NewJob::new("traced", &())
                    .unwrap()
                    .delay(Duration::from_millis(50)),
            )
            .await
            .unwrap();
        let chain = p
            .enqueue_chain(
                Chain::new(NewJob::new("traced", &()).unwrap().queue(&queue))
                    .then(NewJob::new("traced", &()).unwrap().queue(&queue)),
            )
            .await
            .unwrap();
        // A context set on the job wins over the span's.
        let explicit = p
            .enqueue_job(
                &queue,
                NewJob::new("traced", &())
                    .unwrap()
                    .traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            )
            .await
            .unwrap();
        (plain, delayed, chain, explicit)
    }
    .instrument(request.clone())
    .await;
    drop(request);
    wait_stats(&server, &queue, "all ran", |s| s.processed == 5).await;
    assert_eq!(
        job_span_trace_id(&explicit).await.as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );

    let want = request_cx.trace_id();
    let ids = [&plain, &delayed, &chain[0], &chain[1]];
    for id in ids {
        // Every build: the job span carries the producer's trace id.
        assert_eq!(
            job_span_trace_id(id).await.as_deref(),
            Some(want.to_string().as_str()),
            "job {id}"
        );
    }

    #[cfg(feature = "otel")]
    for id in ids {
        // The handler ran in the producer's trace.
        assert_eq!(handler_trace(id), Some(want), "handler of {id}");
        // The job span is the request span's child, in its trace.
        let job = exported_job_span(id).await;
        assert_eq!(job.span_context.trace_id(), want, "job {id}");
        assert_eq!(job.parent_span_id, request_cx.span_id(), "job {id}");
        assert!(job.parent_span_is_remote);
        // A span the handler opens is the job span's child, same trace.
        let work = exported_children(job.span_context.span_id(), "handler_work");
        assert_eq!(work.len(), 1, "job {id}");
        assert_eq!(work[0].span_context.trace_id(), want);
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_enqueued_outside_any_span_runs_in_a_trace_of_its_own() {
    exporter();
    let server = RedisServer::start();
    let queue = unique_queue("trace-none");
    let p = producer(&server).await;
    let worker = traced_worker(&server, &queue);
    let id = p
        .enqueue_job(&queue, NewJob::new("traced", &()).unwrap())
        .await
        .unwrap();
    wait_stats(&server, &queue, "ran", |s| s.processed == 1).await;
    assert_eq!(job_span_trace_id(&id).await, None);
    #[cfg(feature = "otel")]
    {
        let span = exported_job_span(&id).await;
        assert_eq!(span.parent_span_id, SpanId::INVALID, "a root span");
        assert!(span.span_context.is_valid());
        assert_eq!(handler_trace(&id), Some(span.span_context.trace_id()));
    }
    worker.stop().await;
}

/// Producers in other languages write the fields themselves: a valid
/// `traceparent` is continued, a malformed one ignored (the job runs, in
/// a trace of its own), whatever the bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_trace_fields_are_continued_or_ignored_never_fatal() {
    exporter();
    let server = RedisServer::start();
    let queue = unique_queue("trace-raw");
    let key = format!("jobstream:{{{queue}}}:ready");
    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let payload = rmp_serde::to_vec(&()).unwrap();
    let good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let huge_state = "k=".to_owned() + &"v".repeat(10_000);
    // Job id, traceparent, tracestate.
    type Case = (&'static str, Vec<u8>, Option<Vec<u8>>);
    let cases: Vec<Case> = vec![
        ("good", good.into(), Some(b"rojo=00f067aa0ba902b7".to_vec())),
        (
            "good-huge-state",
            good.into(),
            Some(huge_state.into_bytes()),
        ),
        ("garbage", b"garbage".to_vec(), None),
        (
            "uppercase",
            good.to_uppercase().into_bytes(),
            Some(b"x=1".to_vec()),
        ),
        (
            "zero-trace",
            b"00-00000000000000000000000000000000-b7ad6b7169203331-01".to_vec(),
            None,
        ),
        (
            "version-ff",
            b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_vec(),
            None,
        ),
        ("empty", Vec::new(), Some(b",,,=,=".to_vec())),
        ("long", vec![b'0'; 100_000], None),
        (
            "not-utf8",
            vec![0xff, 0xfe, b'-', 0x00, 0x80],
            Some(vec![0xc3, 0x28]),
        ),
    ];
    for (id, traceparent, tracestate) in &cases {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&key)
            .arg("*")
            .arg("type")
            .arg("traced")
            .arg("payload")
            .arg(&payload)
            .arg("id")
            .arg(*id)
            .arg("traceparent")
            .arg(traceparent.as_slice());
        if let Some(state) = tracestate {
            cmd.arg("tracestate").arg(state.as_slice());
        }
        let _: String = cmd.query_async(&mut c).await.unwrap();
    }
    let worker = traced_worker(&server, &queue);
    // Every job runs: trace context that is not UTF-8 is dropped, never a
    // reason to dead-letter a job.
    let s = wait_stats(&server, &queue, "settled", |s| {
        s.processed + s.dead == cases.len() as u64
    })
    .await;
    assert_eq!((s.processed, s.dead), (cases.len() as u64, 0), "{s:?}");
    for id in ["good", "good-huge-state"] {
        assert_eq!(
            job_span_trace_id(id).await.as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c"),
            "{id}"
        );
    }
    for (id, ..) in &cases[2..] {
        assert_eq!(job_span_trace_id(id).await, None, "{id}");
    }
    #[cfg(feature = "otel")]
    {
        for id in ["good", "good-huge-state"] {
            let span = exported_job_span(id).await;
            assert_eq!(
                span.span_context.trace_id(),
                TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
            );
            assert_eq!(
                span.parent_span_id,
                SpanId::from_hex("b7ad6b7169203331").unwrap()
            );
            assert!(span.span_context.is_sampled());
        }
        let state = exported_job_span("good").await;
        assert_eq!(
            state.span_context.trace_state().get("rojo"),
            Some("00f067aa0ba902b7")
        );
        // Too long a tracestate is dropped, the trace still continued.
        let huge = exported_job_span("good-huge-state").await;
        assert_eq!(huge.span_context.trace_state().header(), "");
        for (id, ..) in &cases[2..] {
            let span = exported_job_span(id).await;
            assert_eq!(span.parent_span_id, SpanId::INVALID, "{id}: a root span");
        }
    }
    worker.stop().await;
}

/// A failed attempt is an error in the trace: the job span's status is
/// `Error` and its `outcome` says what came of it (`retry`, `dead`); a
/// success is `ok`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_is_an_error_in_the_trace() {
    exporter();
    let server = RedisServer::start();
    let queue = unique_queue("trace-fail");
    let p = producer(&server).await;
    let worker = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .timings(fast_timings())
            .handle("fails", |_: (), _ctx: JobContext| async move {
                Err::<(), _>(jobstream_worker::JobError::permanent("no such account"))
            })
            .handle("works", |_: (), _ctx: JobContext| async move { Ok(()) }),
    );
    let bad = p
        .enqueue_job(&queue, NewJob::new("fails", &()).unwrap())
        .await
        .unwrap();
    let good = p
        .enqueue_job(&queue, NewJob::new("works", &()).unwrap())
        .await
        .unwrap();
    wait_stats(&server, &queue, "settled", |s| {
        s.processed == 1 && s.dead == 1
    })
    .await;
    let outcome = |span: &SpanData| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "outcome")
            .map(|kv| kv.value.as_str().into_owned())
    };
    let span = exported_job_span(&bad).await;
    assert!(
        matches!(span.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert_eq!(outcome(&span).as_deref(), Some("dead"));
    let span = exported_job_span(&good).await;
    assert!(
        !matches!(span.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert_eq!(outcome(&span).as_deref(), Some("ok"));
    worker.stop().await;
}
