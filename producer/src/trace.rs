//! The trace context a job carries to its worker: with the `otel` feature,
//! every job enqueued inside a span that has an OpenTelemetry context gets
//! that context's W3C `traceparent` and `tracestate`, unless it was given
//! its own ([`NewJob::traceparent`]). Without the feature, only the
//! explicit setters write them.

use crate::NewJob;

/// Stamps `jobs` with the current span's trace context (feature `otel`):
/// read once, written to each job that has no `traceparent` of its own.
/// Nothing happens (and nothing is allocated) outside a span with a valid
/// OpenTelemetry context.
#[cfg(feature = "otel")]
pub(crate) fn stamp(jobs: &mut [NewJob]) {
    if jobs.iter().all(NewJob::has_traceparent) {
        return;
    }
    let Some(current) = current() else {
        return;
    };
    for job in jobs.iter_mut().filter(|j| !j.has_traceparent()) {
        job.set_trace(&current.traceparent, current.tracestate.as_deref());
    }
}

/// Without the `otel` feature, jobs carry only the trace context given to
/// them explicitly.
#[cfg(not(feature = "otel"))]
#[inline(always)]
pub(crate) fn stamp(_jobs: &mut [NewJob]) {}

/// A W3C trace context, as the two wire-format fields.
#[cfg(feature = "otel")]
#[derive(Debug, Default)]
struct Current {
    traceparent: String,
    tracestate: Option<String>,
}

#[cfg(feature = "otel")]
impl opentelemetry::propagation::Injector for Current {
    fn set(&mut self, key: &str, value: String) {
        match key {
            "traceparent" => self.traceparent = value,
            // An empty tracestate is no tracestate: no field for it.
            "tracestate" if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

/// The current span's OpenTelemetry context as W3C fields, if it has a
/// valid span context (sampled or not: the worker keeps the decision).
#[cfg(feature = "otel")]
fn current() -> Option<Current> {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    // The current `tracing` span's context (tracing-opentelemetry); else
    // the OpenTelemetry context attached without `tracing` (an app that
    // uses the OpenTelemetry API directly).
    let span = tracing::Span::current();
    let from_span = (!span.is_disabled())
        .then(|| span.context())
        .filter(|cx| cx.span().span_context().is_valid());
    let cx = match from_span {
        Some(cx) => cx,
        None => {
            let cx = opentelemetry::Context::current();
            if !cx.span().span_context().is_valid() {
                return None;
            }
            cx
        }
    };
    let mut out = Current::default();
    opentelemetry_sdk::propagation::TraceContextPropagator::new().inject_context(&cx, &mut out);
    // The propagator writes only what the worker's strict check accepts;
    // anything else is not sent.
    let valid = jobstream_core::trace::parse_traceparent(&out.traceparent).is_some();
    valid.then_some(out)
}
