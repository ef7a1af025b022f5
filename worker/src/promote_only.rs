//! Promotion without a worker (`jobstream promote`): for fleets that scale
//! their workers to zero. A delayed job, or one waiting for a retry, sits
//! in `scheduled` and counts in no stream lag; with no worker running,
//! nothing would move it to `ready` when due, so the lag an autoscaler
//! watches (KEDA's `redis-streams` trigger) would never rise. This runs
//! only the promoters of the given queues, as a worker does (same script,
//! same server clock, safe beside workers and other promoters).

use jobstream_core::keys::check_prefix;
use jobstream_core::{
    Error, Limits, QueueKeys, QueueName, QueueStore, Reconnect, Redis, Timings, TlsOptions,
};

use crate::promoter::Promoter;
use crate::shutdown::{self, Fatal};

/// Promotes due jobs of `queues` (moves them from `scheduled` to `ready`)
/// until `stop` resolves, after creating each queue's consumer group
/// `group` if it is missing (as a worker would), with the worker's default timings (a due job is
/// in `ready` within `promote_interval`, 0.5 s). Returns an error for an
/// invalid queue name or prefix, or when Redis cannot be used as configured
/// (wrong password, missing ACL rights); a Redis outage is waited out.
pub async fn run_promoter(
    url: &str,
    prefix: &str,
    group: &str,
    queues: &[String],
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    check_prefix(prefix)?;
    if queues.is_empty() {
        return Err(Error::Config(
            "no queue to promote: name at least one".into(),
        ));
    }
    let names = queues
        .iter()
        .map(|q| QueueName::new(q))
        .collect::<Result<Vec<_>, _>>()?;
    let timings = Timings::default();
    let redis = Redis::open_with_tls(url, &timings, &TlsOptions::from_env())?;
    let (handle, mut shutdown) = shutdown::channel();
    let fatal = Fatal::new(handle.clone());
    let stopper = tokio::spawn(async move {
        stop.await;
        handle.shutdown();
    });
    let stores: Vec<QueueStore> = names
        .iter()
        .map(|name| QueueStore::new(redis.clone(), QueueKeys::new(prefix, name), group))
        .collect();
    // Redis down at start is waited for, as a worker does (a pod must not
    // crash-loop through an outage); a wrong password or missing rights stop.
    let mut backoff = Reconnect::new(&timings);
    loop {
        match prepare(&stores).await {
            Ok(()) => break,
            Err(e) if e.is_fatal() => {
                stopper.abort();
                return Err(e.for_server(redis.display_url()));
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, redis = %redis.display_url(),
                    retry_in_ms = wait.as_millis() as u64, "Redis is not ready; waiting");
                if shutdown.sleep(wait).await {
                    stopper.abort();
                    return Ok(());
                }
            }
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for store in stores {
        tasks.spawn(keep_group(store.clone(), shutdown.clone()));
        let promoter = Promoter {
            store,
            timings: timings.clone(),
            limits: Limits::default(),
            fatal: fatal.clone(),
        };
        tasks.spawn(promoter.run(shutdown.clone()));
    }
    while tasks.join_next().await.is_some() {}
    stopper.abort();
    match fatal.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Creates each queue's consumer group if missing (from id 0, as a worker
/// would: an autoscaler reads its lag, and a queue no worker ever served
/// has none), and warns about a queue no producer or worker registered (a
/// typo in `--queue` would otherwise promote into a queue nobody serves).
async fn prepare(stores: &[QueueStore]) -> Result<(), Error> {
    for store in stores {
        store.ensure_group().await?;
        if !store.is_registered().await? {
            tracing::warn!(queue = %store.keys().name(),
                "no producer or worker has used this queue yet (it is not in PREFIX:queues): check the name");
        }
    }
    Ok(())
}

/// Re-creates the consumer group if it goes missing (the stream deleted,
/// the server restarted without persistence): without it the lag an
/// autoscaler reads is gone, and no worker would start.
async fn keep_group(store: QueueStore, mut shutdown: crate::shutdown::Shutdown) {
    while !shutdown.sleep(std::time::Duration::from_secs(10)).await {
        match store.ensure_group().await {
            Ok(true) => tracing::warn!(queue = %store.keys().name(),
                "the consumer group was missing; created it again from id 0"),
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "checking the consumer group failed; will retry"),
        }
    }
}
