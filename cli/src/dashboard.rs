//! `jobstream dashboard`: the web dashboard, served until SIGTERM or
//! Ctrl-C. Bound to localhost by default; beyond it, actions need a token
//! or basic auth (without one they are off).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use jobstream_dashboard::{Dashboard, DashboardOptions};

use crate::out::CliResult;

/// The dashboard's options.
#[derive(Args)]
pub(crate) struct DashboardArgs {
    /// Listen address. On a loopback address with no token, the dashboard
    /// answers only to localhost and allows actions; beyond it, actions
    /// need --token or --basic-auth.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A token (16+ printable characters) required to read and to act:
    /// the login page sets it as a cookie, scripts send
    /// `Authorization: Bearer TOKEN`.
    #[arg(long, env = "JOBSTREAM_DASHBOARD_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// HTTP basic auth, USER:PASSWORD (password 12+ characters), instead
    /// of or besides a token.
    #[arg(long, env = "JOBSTREAM_DASHBOARD_BASIC_AUTH", hide_env_values = true)]
    basic_auth: Option<String>,
    /// No actions at all: pages only.
    #[arg(long)]
    read_only: bool,
    /// With a token or basic auth, let anyone read (actions still need it).
    #[arg(long)]
    public_reads: bool,
    /// Never send payloads or results to the browser (personal data).
    #[arg(long)]
    hide_payloads: bool,
    /// How often pages refresh and the overview is recomputed.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    refresh: Duration,
    /// Do not write the queues' history samples (a Redis user without
    /// XADD on PREFIX:{Q}:history).
    #[arg(long)]
    no_history: bool,
}

impl DashboardArgs {
    fn options(&self) -> CliResult<DashboardOptions> {
        let mut o = DashboardOptions::default().refresh(self.refresh);
        if let Some(t) = &self.token {
            o = o.token(t.clone())?;
        }
        if let Some(b) = &self.basic_auth {
            let (user, password) = b
                .split_once(':')
                .ok_or("--basic-auth takes USER:PASSWORD")?;
            o = o.basic_auth(user, password)?;
        }
        let has_auth = self.token.is_some() || self.basic_auth.is_some();
        if self.read_only {
            o = o.read_only();
        }
        if self.public_reads {
            o = o.public_reads();
        }
        if self.hide_payloads {
            o = o.hide_payloads();
        }
        if self.no_history {
            o = o.without_history();
        }
        if !has_auth {
            if self.listen.ip().is_loopback() {
                o = o.local_only();
            } else if !self.read_only {
                eprintln!(
                    "warning: serving beyond localhost with no --token or --basic-auth: \
                     the dashboard is read-only (actions are off) and anyone who reaches \
                     {} can read it",
                    self.listen
                );
            }
        }
        Ok(o)
    }
}

/// Serves the dashboard until a stop signal.
pub(crate) async fn run(
    redis_url: &str,
    prefix: &str,
    group: &str,
    args: &DashboardArgs,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> CliResult<()> {
    jobstream_worker::init_logging();
    let options = args.options()?;
    jobstream_core::keys::check_prefix(prefix)?;
    // Serves even while Redis is down (each page then says so and
    // retries): on call, a dashboard that answers beats one that
    // crash-loops. A wrong URL is still an error at once.
    let redis = jobstream_core::Redis::open(redis_url, &jobstream_core::Timings::default())?;
    if let Err(e) = redis.ping().await {
        eprintln!("warning: Redis does not answer yet ({e}); serving anyway");
    }
    let inspector = jobstream_producer::inspect::Inspector::new(redis, prefix).with_group(group);
    let dashboard = Dashboard::new(inspector, options);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    eprintln!("dashboard on http://{addr}/");
    // With the peer's address: the local-only rule checks it.
    let app = dashboard
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
        .map_err(|e| format!("the dashboard stopped: {e}"))?;
    Ok(())
}
