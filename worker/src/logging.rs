//! The log setup of a worker process, for binaries that want the usual one.

/// Installs a `tracing` subscriber that writes to stderr: the level from
/// `RUST_LOG` (default `info`), the format from `JOBSTREAM_LOG_FORMAT`:
/// `json` (one JSON object per line, the job's span fields included, for
/// log pipelines) or `text` (the default). Does nothing if a subscriber is
/// already installed. Never logs payloads: the worker does not put them in
/// events.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("JOBSTREAM_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    let _ = if json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}
