//! The log setup of a worker process, for binaries that want the usual one.

use tracing_subscriber::EnvFilter;

/// Installs a `tracing` subscriber that writes to stderr: the level from
/// `RUST_LOG` (default `info`), the format from `JOBSTREAM_LOG_FORMAT`:
/// `json` (one JSON object per line, the job's span fields included, for
/// log pipelines) or `text` (the default). Does nothing if a subscriber is
/// already installed. Never logs payloads: the worker does not put them in
/// events. A job's lines carry the trace id its producer sent
/// (`trace_id`); to also export spans over OTLP, call `otel::init`
/// instead (feature `otel`, see docs/tracing.md).
pub fn init_logging() {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(env_filter());
    let _ = if json_format() {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}

/// `RUST_LOG`, or `info`.
pub(crate) fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// `JOBSTREAM_LOG_FORMAT=json`.
fn json_format() -> bool {
    std::env::var("JOBSTREAM_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"))
}

/// [`init_logging`]'s lines, as a layer (for `otel::init`).
#[cfg(feature = "otel")]
pub(crate) fn fmt_layer<S>() -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer;
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if json_format() {
        layer.json().with_current_span(true).boxed()
    } else {
        layer.boxed()
    }
}
