//! Startup: wait for Redis, then check that it can be used as configured,
//! before any job is fetched. A server that is down or loading is waited
//! for; a wrong password, an ACL that forbids what jobstream needs, a
//! foreign key in the way or a server without a needed command stops the
//! worker at once with one message that names the server and the fix.

use jobstream_core::{Error, QueueStore, Reconnect, Timings};

/// Commands every worker sends. Probed with `COMMAND INFO`, so a server
/// that is too old, or that renamed one away, is refused at start rather
/// than failing on the first reclaim.
const REQUIRED: &[&str] = &[
    "XADD",
    "XREADGROUP",
    "XREAD",
    "XACK",
    "XDEL",
    "XPENDING",
    "XCLAIM",
    "XAUTOCLAIM",
    "XGROUP",
    "XINFO",
    "ZADD",
    "ZRANGEBYSCORE",
    "EVALSHA",
    "TIME",
];

/// Returns once the worker is ready to serve, or with the error of a
/// configuration Redis refuses. Waits for as long as Redis is not ready:
/// the caller races it against shutdown.
pub(crate) async fn prepare(
    stores: &[QueueStore],
    consumer: &str,
    timings: &Timings,
) -> Result<(), Error> {
    let Some(store) = stores.first() else {
        return Err(Error::Config("a worker serves at least one queue".into()));
    };
    let mut backoff = Reconnect::new(timings);
    loop {
        match check(stores, consumer).await {
            Ok(()) => {
                warn_about_settings_that_lose_jobs(store).await;
                return Ok(());
            }
            Err(e) if e.is_fatal() => {
                return Err(e.for_server(store.redis().display_url()));
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, redis = %store.redis().display_url(),
                    retry_in_ms = wait.as_millis() as u64, "Redis is not ready; waiting");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

async fn check(stores: &[QueueStore], consumer: &str) -> Result<(), Error> {
    let Some(first) = stores.first() else {
        return Ok(());
    };
    // Reachable, credentials accepted, database selected, clock read.
    first.redis().server_now_ms().await?;
    first.redis().require_commands(REQUIRED).await?;
    for store in stores {
        store.check_key_types().await?;
        store.ensure_group().await?;
        store.create_consumer(consumer).await?;
        // Every plain command, so missing ACL rights stop the worker now.
        store.probe_worker_rights(consumer).await?;
        // Scripting is allowed for this user on these keys (and the
        // script is loaded).
        store.extend(consumer, &[]).await?;
    }
    // Newer commands where the server has them (XACKDEL on Redis 8.2+).
    first.redis().detect_features().await;
    Ok(())
}

/// Logs, once, the server settings under which Redis itself can lose jobs
/// (an evicting memory policy, AOF off, a weak fsync): the same warnings
/// `jobstream check` prints.
async fn warn_about_settings_that_lose_jobs(store: &QueueStore) {
    match jobstream_core::safety::safety_warnings(
        store.redis(),
        jobstream_core::safety::Fsync::Everysec,
    )
    .await
    {
        Ok(warnings) => {
            for w in warnings {
                tracing::warn!(redis = %store.redis().display_url(), "{w}");
            }
        }
        Err(e) => tracing::debug!(error = %e, "could not read the server's settings"),
    }
}
