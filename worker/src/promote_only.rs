//! Promotion without a worker (`jobstream promote`): for fleets that scale
//! their workers to zero. A delayed job, or one waiting for a retry, sits
//! in `scheduled` and counts in no stream lag; with no worker running,
//! nothing would move it to `ready` when due, so the lag an autoscaler
//! watches (KEDA's `redis-streams` trigger) would never rise. This runs
//! only the promoters of the given queues, as a worker does (same script,
//! same server clock, safe beside workers and other promoters).

use jobstream_core::keys::check_prefix;
use jobstream_core::{Error, Limits, QueueKeys, QueueName, QueueStore, Redis, Timings, TlsOptions};

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
    let timings = Timings::default();
    let redis = Redis::open_with_tls(url, &timings, &TlsOptions::from_env())?;
    // Fail fast on a wrong password or an unreachable address at start.
    redis.ping().await?;
    let (handle, shutdown) = shutdown::channel();
    let fatal = Fatal::new(handle.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for name in queues {
        let name = QueueName::new(name)?;
        let store = QueueStore::new(redis.clone(), QueueKeys::new(prefix, &name), group);
        // The group a worker would create (from id 0: nothing enqueued
        // before is missed): an autoscaler reads its lag, and a queue no
        // worker ever served has none.
        store.ensure_group().await?;
        let promoter = Promoter {
            store,
            timings: timings.clone(),
            limits: Limits::default(),
            fatal: fatal.clone(),
        };
        tasks.spawn(promoter.run(shutdown.clone()));
    }
    let stopper = tokio::spawn(async move {
        stop.await;
        handle.shutdown();
    });
    while tasks.join_next().await.is_some() {}
    stopper.abort();
    match fatal.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
