//! OpenTelemetry export (feature `otel`): a job's span, and every span its
//! handler opens, go to an OTLP collector in the trace of the request that
//! enqueued the job.
//!
//! For a worker process, [`init`] replaces [`init_logging`]: the same log
//! lines on stderr (`RUST_LOG`, `JOBSTREAM_LOG_FORMAT`) plus spans over
//! OTLP/HTTP (protobuf). The standard variables configure the export:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4318`; plain
//! HTTP, to a collector nearby), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, and `OTEL_TRACES_EXPORTER=none` to export
//! nothing. Keep the guard until the process ends: dropping it flushes the
//! spans not yet sent.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let _otel = jobstream_worker::otel::init("billing-worker")?;
//! // ... build and run the worker ...
//! # Ok(())
//! # }
//! ```
//!
//! For a subscriber of your own, add [`layer`]'s layer to it (or build one
//! on any tracer provider with [`layer_for`]).
//!
//! [`init_logging`]: crate::init_logging

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use tracing_subscriber::registry::LookupSpan;

pub use opentelemetry_otlp::ExporterBuildError;
/// The OpenTelemetry crates this feature is built on, at the versions it
/// uses, so a caller's spans and providers are of the same types.
pub use {opentelemetry, opentelemetry_sdk, tracing_opentelemetry};

/// The `tracing` layer that turns spans into OpenTelemetry spans.
pub type OtelLayer<S> = tracing_opentelemetry::OpenTelemetryLayer<S, Tracer>;

/// Instrumentation scope name of the spans the layers here make.
const SCOPE: &str = "jobstream";

/// Owns the tracer provider of [`init`] or [`layer`]: dropping it (or
/// [`OtelGuard::shutdown`]) sends the spans still buffered and stops the
/// export.
#[derive(Debug)]
#[must_use = "dropping the guard stops the export"]
pub struct OtelGuard {
    provider: SdkTracerProvider,
}

impl OtelGuard {
    /// The tracer provider, e.g. to make it the global one for other
    /// OpenTelemetry instrumentation.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// Sends the spans still buffered, waiting for the export.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }

    /// Sends the spans still buffered and stops the export (what a drop
    /// does).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for OtelGuard {
    fn drop(&mut self) {
        // Err when already shut down, or when the collector did not
        // answer: nothing left to do at exit either way.
        let _ = self.provider.shutdown();
    }
}

/// A tracer provider that exports over OTLP/HTTP in batches, on a thread of
/// its own, configured by the standard `OTEL_*` variables. The service
/// name is `OTEL_SERVICE_NAME` if set, else `service_name`.
pub fn otlp_provider(service_name: &str) -> Result<SdkTracerProvider, ExporterBuildError> {
    check_transport()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service_name.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Refuses what this exporter cannot do, rather than fail every export
/// in silence: `https` endpoints (no TLS stack is built in) and protocols
/// other than `http/protobuf`.
fn check_transport() -> Result<(), ExporterBuildError> {
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        if let Ok(url) = std::env::var(var)
            && url.trim().to_ascii_lowercase().starts_with("https:")
        {
            return Err(ExporterBuildError::InvalidConfiguration(format!(
                "{var}: jobstream exports over plain HTTP to a collector nearby \
                 (an OpenTelemetry Collector agent or sidecar, which can forward \
                 over TLS); https is not supported"
            )));
        }
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Ok(p) = std::env::var(var)
            && !p.trim().eq_ignore_ascii_case("http/protobuf")
        {
            return Err(ExporterBuildError::InvalidConfiguration(format!(
                "{var}={p}: jobstream exports OTLP over http/protobuf only \
                 (port 4318), not grpc or http/json"
            )));
        }
    }
    Ok(())
}

/// The `tracing` layer for `provider`'s spans (any exporter: OTLP, an
/// in-memory one in tests).
pub fn layer_for<S>(provider: &SdkTracerProvider) -> OtelLayer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(SCOPE))
}

/// The `tracing` layer that exports spans over OTLP ([`otlp_provider`]),
/// and the guard that flushes them at exit. Add the layer to your
/// subscriber:
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// # fn demo() -> Result<(), jobstream_worker::otel::ExporterBuildError> {
/// let (otel, _guard) = jobstream_worker::otel::layer("billing-worker")?;
/// tracing_subscriber::registry()
///     .with(otel)
///     .with(tracing_subscriber::fmt::layer())
///     .init();
/// # Ok(())
/// # }
/// ```
pub fn layer<S>(service_name: &str) -> Result<(OtelLayer<S>, OtelGuard), ExporterBuildError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let provider = otlp_provider(service_name)?;
    Ok((layer_for(&provider), OtelGuard { provider }))
}

/// [`init_logging`](crate::init_logging) plus export over OTLP: installs
/// the subscriber (stderr lines as `RUST_LOG` and `JOBSTREAM_LOG_FORMAT`
/// say, spans to the collector), makes its provider the global one and
/// the W3C propagator the global propagator (for other OpenTelemetry
/// instrumentation in the process). `OTEL_TRACES_EXPORTER=none` leaves
/// the export out (and returns no guard).
///
/// `RUST_LOG` filters the log lines only: spans at INFO and above go to
/// the collector whatever it says, so a quiet log level never breaks a
/// trace. If a subscriber is already installed, it does nothing (no
/// export, no global changed), says so in a warning, and returns `None`:
/// add [`layer`] to that subscriber instead.
#[must_use = "dropping the guard stops the export"]
pub fn init(service_name: &str) -> Result<Option<OtelGuard>, ExporterBuildError> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::prelude::*;

    if tracing::dispatcher::has_been_set() {
        tracing::warn!(
            "otel::init: a tracing subscriber is already installed; nothing is exported \
             (add jobstream_worker::otel::layer to that subscriber instead)"
        );
        return Ok(None);
    }
    let export = std::env::var("OTEL_TRACES_EXPORTER")
        .map_or(true, |v| !v.trim().eq_ignore_ascii_case("none"));
    let provider = match export {
        true => Some(otlp_provider(service_name)?),
        false => None,
    };
    let otel = provider
        .as_ref()
        .map(|p| layer_for(p).with_filter(tracing_subscriber::filter::LevelFilter::INFO));
    let installed = tracing_subscriber::registry()
        .with(otel)
        .with(crate::logging::fmt_layer().with_filter(crate::logging::env_filter()))
        .try_init();
    if installed.is_err() {
        // Installed by another thread meanwhile: leave the globals alone.
        return Ok(None);
    }
    if let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
    }
    Ok(provider.map(|provider| OtelGuard { provider }))
}
