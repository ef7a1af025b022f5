//! A job's span continues the trace its producer sent (`traceparent`,
//! `tracestate`): the trace id goes on the span as `trace_id` in every
//! build, so log lines correlate without OpenTelemetry; with the `otel`
//! feature the span's OpenTelemetry parent becomes the producer's span.

use jobstream_core::Envelope;
use jobstream_core::trace::parse_traceparent;

/// Joins `span` (just made, not yet entered) to the trace `envelope`
/// carries. No `traceparent`: nothing to do, at no cost. A malformed one
/// (any producer can write the field) is ignored, with a DEBUG line: the
/// job runs in a trace of its own, never fails for it.
pub(crate) fn continue_trace(span: &tracing::Span, envelope: &Envelope) {
    let Some(traceparent) = envelope.traceparent.as_deref() else {
        return;
    };
    if span.is_disabled() {
        return;
    }
    let Some(parsed) = parse_traceparent(traceparent) else {
        tracing::debug!(
            parent: span,
            len = traceparent.len(),
            "ignoring a malformed traceparent; the job runs in a trace of its own"
        );
        return;
    };
    span.record("trace_id", parsed.trace_id);
    #[cfg(feature = "otel")]
    set_parent(span, envelope);
}

/// The OpenTelemetry parent of the job's span: the producer's span, from
/// the W3C fields (the global propagator is not consulted).
#[cfg(feature = "otel")]
fn set_parent(span: &tracing::Span, envelope: &Envelope) {
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let propagator = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let cx = propagator.extract_with_context(&opentelemetry::Context::new(), &Fields(envelope));
    if cx.span().span_context().is_valid() {
        // Err only when no OpenTelemetry layer is installed: then there is
        // no OpenTelemetry span to parent, and `trace_id` is all there is.
        let _ = span.set_parent(cx);
    }
}

/// Longest `tracestate` read (the W3C limit vendors must pass on is 512
/// bytes); a longer one is dropped, the `traceparent` still used.
#[cfg(feature = "otel")]
const MAX_TRACESTATE: usize = 512;

/// The envelope's W3C fields, as the propagator reads them.
#[cfg(feature = "otel")]
struct Fields<'a>(&'a Envelope);

#[cfg(feature = "otel")]
impl opentelemetry::propagation::Extractor for Fields<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => self.0.traceparent.as_deref(),
            "tracestate" => self
                .0
                .tracestate
                .as_deref()
                .filter(|s| s.len() <= MAX_TRACESTATE),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}
