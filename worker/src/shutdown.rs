//! The shutdown signal every duty watches (a `tokio_util`
//! [`CancellationToken`]), and the OS signals that raise it.

use tokio_util::sync::CancellationToken;

/// Raises shutdown. Cheap to clone; any clone can trigger it.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    token: CancellationToken,
}

impl ShutdownHandle {
    /// Starts a graceful shutdown of the worker.
    pub fn shutdown(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started (by a signal, this handle, a
    /// `run_until` future or a fatal error).
    pub async fn started(&self) {
        self.token.cancelled().await;
    }
}

/// Watches for shutdown.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown {
    token: CancellationToken,
}

pub(crate) fn channel() -> (ShutdownHandle, Shutdown) {
    let token = CancellationToken::new();
    (
        ShutdownHandle {
            token: token.clone(),
        },
        Shutdown { token },
    )
}

impl Shutdown {
    pub(crate) fn is_set(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown is raised.
    pub(crate) async fn wait(&mut self) {
        self.token.cancelled().await;
    }

    /// Sleeps for `d`, or less if shutdown is raised. True if shut down.
    pub(crate) async fn sleep(&mut self, d: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_set(),
            _ = self.wait() => true,
        }
    }
}

/// Raises `graceful` on the first SIGTERM or SIGINT and `immediate` on the
/// second. The listeners are made once, so a second signal that arrives
/// while the first is being handled is not missed.
pub(crate) async fn watch_signals(graceful: ShutdownHandle, immediate: ShutdownHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot listen for SIGTERM/SIGINT; use the shutdown handle");
            return;
        };
        for handle in [graceful, immediate] {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
            }
            handle.shutdown();
        }
    }
    #[cfg(not(unix))]
    {
        for handle in [graceful, immediate] {
            let _ = tokio::signal::ctrl_c().await;
            handle.shutdown();
        }
    }
}

/// The first fatal error any duty met (Redis refuses the configuration:
/// credentials, ACL, a key of the wrong type). Reporting it starts the
/// shutdown; `run` returns it.
#[derive(Clone, Debug)]
pub(crate) struct Fatal {
    first: std::sync::Arc<std::sync::Mutex<Option<jobstream_core::Error>>>,
    handle: ShutdownHandle,
}

impl Fatal {
    pub(crate) fn new(handle: ShutdownHandle) -> Self {
        Self {
            first: Default::default(),
            handle,
        }
    }

    /// Records `e` (the first one wins) and starts the shutdown.
    pub(crate) fn report(&self, e: jobstream_core::Error) {
        tracing::error!(error = %e, "Redis refuses this worker's configuration; stopping the worker");
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.is_none() {
            *first = Some(e);
        }
        self.handle.shutdown();
    }

    pub(crate) fn take(&self) -> Option<jobstream_core::Error> {
        self.first.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
                    _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
                }
            }
            _ => {
                tracing::error!("cannot listen for SIGTERM/SIGINT; use the shutdown handle");
                std::future::pending::<()>().await
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
