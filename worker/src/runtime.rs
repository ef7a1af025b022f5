//! Composes the duties of a worker and owns the shutdown order.
//!
//! Start (`startup.rs`): wait while Redis is unreachable, loading or a
//! replica; refuse at once a configuration Redis rejects (credentials, ACL,
//! a foreign key, a missing command); create the consumer group; log the
//! server settings that lose jobs. Then start the acker, lease, promoter
//! and consumer reaper, then the fetcher (which also reclaims the jobs of
//! dead workers, with the slots it holds).
//!
//! Shutdown, in this order, so nothing is lost and nothing waits on the
//! visibility timeout, and **bounded**: everything is done within
//! `shutdown_grace + shutdown_flush` of the signal, whatever Redis does.
//! 1. stop fetching: the blocked `XREADGROUP` is ended with `CLIENT UNBLOCK`
//!    (given up at the end of the grace period if Redis does not answer);
//!    anything it still returned goes straight back to `ready`; the
//!    promoter and reaper stop too;
//! 2. wait up to `shutdown_grace` for running handlers; the lease keeps
//!    being refreshed meanwhile;
//! 3. abort the handlers still running and give their jobs back to `ready`;
//! 4. let the acker flush every outcome it holds until the flush deadline,
//!    then stop the lease. Outcomes not written by then leave their jobs
//!    pending, to be reclaimed.
//!
//! The fetcher also ends the run on a fatal error (a password rotated, an
//! ACL or a key type changed under a running worker): the same shutdown
//! runs, and `run` returns the error.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use jobstream_core::{QueueKeys, QueueStore, Redis};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::Worker;
use crate::acker::Acker;
use crate::fetcher::Fetcher;
use crate::inflight::Inflight;
use crate::lease::Lease;
use crate::processor::Dispatcher;
use crate::promoter::Promoter;
use crate::reclaimer::Reclaimer;
use crate::shutdown::Fatal;
use crate::slots::{Share, Slots};
use crate::{shutdown, startup};

pub(crate) async fn run(worker: Worker) -> Result<(), jobstream_core::Error> {
    let Worker {
        url,
        unserved,
        queues,
        order,
        group,
        prefix,
        concurrency,
        timings,
        limits,
        tls,
        http,
        registry,
        schedules,
        consumer,
        handle,
        mut shutdown,
    } = worker;
    // Bound before anything else: a port in use is a start-up error.
    let listener = match http {
        Some(addr) => Some(crate::http::bind(addr).await.map_err(|e| {
            jobstream_core::Error::Config(format!("cannot listen on {addr} for /metrics: {e}"))
        })?),
        None => None,
    };
    let metrics = listener
        .as_ref()
        .map(|_| crate::metrics::Metrics::new(Some(concurrency)));
    let events = match &metrics {
        Some(m) => crate::events::Events::with_metrics(Arc::clone(m)),
        None => crate::events::Events::default(),
    };
    let tls = tls.unwrap_or_else(jobstream_core::TlsOptions::from_env);
    let redis = Redis::open_with_tls(&url, &timings, &tls)?;
    // Each lane's fetcher holds a dedicated connection for its blocking
    // read, for as long as it runs.
    redis.reserve_blocking(queues.len());
    // One lane per stream, indexed by lane id. Every duty works per lane
    // and every script call touches one lane's keys only, so a queue split
    // into partitions (one stream each, over Cluster slots) is more lanes.
    let stores: Vec<QueueStore> = queues
        .iter()
        .map(|q| {
            QueueStore::new(
                redis.clone(),
                QueueKeys::new(&prefix, &q.name),
                group.clone(),
            )
        })
        .collect();
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    for (job_type, queue) in unserved {
        tracing::warn!(job_type, queue, queues = ?names,
            "this worker serves a job type whose queue it does not read: producers put it on its queue, so add that queue or no job of this type runs here");
    }
    tracing::info!(queues = ?names, order = ?order, consumer = %consumer, concurrency, redis = %redis.display_url(),
        job_types = ?registry.types(), "worker starting");

    // Raced against shutdown: a worker still waiting for Redis stops at
    // once (nothing is fetched yet, so nothing is held).
    tokio::select! {
        ready = startup::prepare(&stores, &consumer, &timings) => ready?,
        _ = shutdown.wait() => return Ok(()),
    }
    // Declared group concurrency: written where producers and every
    // worker's scripts read it (PREFIX:{Q}:meta).
    for (store, q) in stores.iter().zip(&queues) {
        if let Some(n) = q.options.group_concurrency {
            tokio::select! {
                r = store.set_group_concurrency(n) => r?,
                _ = shutdown.wait() => return Ok(()),
            }
        }
    }
    for store in &stores {
        tokio::select! {
            r = store.register() => if let Err(e) = r {
                tracing::warn!(error = %e, "could not add the queue to the registry of known queues");
            },
            _ = shutdown.wait() => return Ok(()),
        }
    }
    let fatal = Fatal::new(handle.clone());

    let shares: Vec<Share> = queues
        .iter()
        .map(|q| Share {
            weight: q.options.weight,
            cap: q.options.max_concurrency.unwrap_or(concurrency),
        })
        .collect();
    let max_batch = concurrency.min(limits.ack_batch);
    let slots = Slots::new(concurrency, order, &shares);
    let inflight = Inflight::default();
    let job_tasks = TaskTracker::new();
    let (outcome_tx, outcome_rx) = mpsc::channel(concurrency * 2 + limits.ack_batch);
    let cancels = crate::tracking::Cancels::default();
    let holds = crate::holds::Holds::new(stores.len());
    let dispatcher = Arc::new(Dispatcher {
        registry,
        queues: queues.iter().map(|q| Arc::from(q.name.as_str())).collect(),
        consumer: Arc::from(consumer.as_str()),
        outcomes: outcome_tx,
        inflight: inflight.clone(),
        tasks: job_tasks.clone(),
        events: events.clone(),
        redis: redis.clone(),
        stores: stores.clone(),
        lanes: stores
            .iter()
            .map(|store| {
                Arc::new(crate::tracking::LaneCtx {
                    store: store.clone(),
                    redis: redis.clone(),
                    consumer: Arc::from(consumer.as_str()),
                })
            })
            .collect(),
        cancels: cancels.clone(),
        limits: queues
            .iter()
            .map(|q| crate::processor::LaneLimits {
                types: q.options.type_rate_limits.iter().cloned().collect(),
                key: q.options.key_rate_limit,
            })
            .collect(),
        holds: holds.clone(),
    });
    let (stop_lease, lease_stop) = shutdown::channel();
    let (give_up_tx, give_up_at) = watch::channel(None);

    let acker = tokio::spawn(
        Acker {
            stores: stores.clone(),
            consumer: consumer.clone(),
            inflight: inflight.clone(),
            timings: timings.clone(),
            batch: limits.ack_batch,
            dead_max_len: limits.dead_max_len,
            give_up_at,
            fatal: fatal.clone(),
            events: events.clone(),
        }
        .run(outcome_rx),
    );
    let lease = tokio::spawn(
        Lease {
            stores: stores.clone(),
            consumer: consumer.clone(),
            inflight: inflight.clone(),
            timings: timings.clone(),
        }
        .run(lease_stop),
    );
    // Promoters and reapers, one per lane: they stop on shutdown.
    let background = TaskTracker::new();
    let mut background_tasks = Vec::with_capacity(stores.len() * 2);
    let reclaimer = |store: &QueueStore| Reclaimer {
        store: store.clone(),
        consumer: consumer.clone(),
        timings: timings.clone(),
        limits: limits.clone(),
        events: events.clone(),
    };
    for store in &stores {
        background_tasks.push(
            background.spawn(
                Promoter {
                    store: store.clone(),
                    timings: timings.clone(),
                    limits: limits.clone(),
                    fatal: fatal.clone(),
                }
                .run(shutdown.clone()),
            ),
        );
        background_tasks.push(background.spawn(reclaimer(store).run_reaper(shutdown.clone())));
    }
    background_tasks.push(
        background.spawn(heartbeats(
            redis.clone(),
            prefix.clone(),
            jobstream_core::workers::WorkerInfo::new(
                &consumer,
                names.iter().map(|n| (*n).to_owned()).collect(),
                concurrency,
                jobstream_core::now_ms(),
            )
            .with_rate_limits(rate_limit_infos(&queues)),
            inflight.clone(),
            shutdown.clone(),
        )),
    );
    background_tasks.push(background.spawn(crate::tracking::watch_cancels(
        stores.clone(),
        redis.clone(),
        cancels,
        shutdown.clone(),
    )));
    // Periodic jobs: one task per schedule, none without.
    for schedule in schedules {
        let Some(queue) = schedule.queue().cloned() else {
            continue;
        };
        background_tasks.push(
            background.spawn(
                crate::cron::CronTask {
                    schedule,
                    store: QueueStore::new(
                        redis.clone(),
                        QueueKeys::new(&prefix, &queue),
                        group.clone(),
                    ),
                    prefix: prefix.clone(),
                    consumer: consumer.clone(),
                    timings: timings.clone(),
                    fatal: fatal.clone(),
                }
                .run(shutdown.clone()),
            ),
        );
    }
    let (pause_watcher, paused) = crate::pause::PauseWatcher::start(stores.clone(), holds).await;
    let lane_readers: Vec<crate::pause::LaneReader> =
        stores.iter().map(|_| Default::default()).collect();
    background_tasks
        .push(background.spawn(pause_watcher.run(lane_readers.clone(), shutdown.clone())));
    background.close();
    let fetchers = TaskTracker::new();
    let mut reader_ids = Vec::with_capacity(stores.len());
    let mut fetcher_tasks = Vec::with_capacity(stores.len());
    for (lane, store) in stores.iter().enumerate() {
        let reader_id = Arc::clone(&lane_readers[lane].id);
        let blocked = Arc::clone(&lane_readers[lane].blocked);
        reader_ids.push((store.clone(), Arc::clone(&reader_id)));
        fetcher_tasks.push(
            fetchers.spawn(
                Fetcher {
                    lane,
                    store: store.clone(),
                    consumer: consumer.clone(),
                    dispatcher: Arc::clone(&dispatcher),
                    slots: slots.clone(),
                    timings: timings.clone(),
                    max_batch,
                    reader_id,
                    reclaimer: reclaimer(store),
                    fatal: fatal.clone(),
                    paused: paused.clone(),
                    blocked,
                    rate: queues[lane].options.rate_limit,
                }
                .run(shutdown.clone()),
            ),
        );
    }
    fetchers.close();
    // If this future is dropped (a second signal), every task it started
    // stops with it, running handlers included: their jobs stay pending.
    let mut tasks = vec![acker.abort_handle(), lease.abort_handle()];
    tasks.extend(fetcher_tasks.iter().map(JoinHandle::abort_handle));
    if let (Some(listener), Some(metrics)) = (listener, metrics) {
        let state = Arc::new(crate::http::HttpState {
            metrics,
            redis: redis.clone(),
            queues: crate::http::Queues::Served(stores.clone()),
            slots: Some((inflight.clone(), concurrency)),
            loops: std::sync::Mutex::new(tasks.clone()),
            stopping: Default::default(),
        });
        tasks.push(
            tokio::spawn(crate::http::serve(listener, state, shutdown.clone())).abort_handle(),
        );
    }
    tasks.extend(background_tasks.iter().map(JoinHandle::abort_handle));
    let _tasks = AbortOnDrop {
        tasks,
        inflight: inflight.clone(),
    };

    // 1. Stop fetching. A fatal error in any duty (a password changed, an
    //    ACL or a key type broken under us) raises shutdown too.
    //    A fetcher that ends by itself (it never should) stops the worker
    //    rather than leave its queue unserved.
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = futures_util::future::select_all(fetcher_tasks.iter_mut()) => {
            tracing::error!("a fetcher stopped on its own; shutting down");
        }
    }
    handle.shutdown();
    let began = Instant::now();
    let grace_end = began + timings.shutdown_grace;
    let give_up = grace_end + timings.shutdown_flush;
    give_up_tx.send_replace(Some(give_up));
    slots.close();
    tracing::info!(queues = ?names, running = inflight.len(), grace_ms = timings.shutdown_grace.as_millis() as u64,
        flush_ms = timings.shutdown_flush.as_millis() as u64, "shutting down: no new jobs are fetched");
    // End the blocked reads with CLIENT UNBLOCK; with Redis unreachable,
    // stop waiting for them at the end of the grace period (after one
    // short try at least): entries they may have been handed stay pending
    // for reclaim.
    let unblock_until = grace_end.max(began + Duration::from_millis(100));
    while !fetchers.is_empty() {
        let left = unblock_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // Every lane's read at once: with many queues and Redis slow to
        // answer, one by one would overrun the grace period.
        let unblocks = reader_ids.iter().filter_map(|(store, reader_id)| {
            let id = reader_id.load(Ordering::SeqCst);
            (id != 0).then(|| store.unblock(id))
        });
        let _ = tokio::time::timeout(
            left.min(Duration::from_millis(200)) / 2,
            futures_util::future::join_all(unblocks),
        )
        .await;
        let left = unblock_until.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), fetchers.wait()).await;
    }
    for f in &fetcher_tasks {
        f.abort();
    }
    if tokio::time::timeout_at(give_up.into(), background.wait())
        .await
        .is_err()
    {
        for t in &background_tasks {
            t.abort();
        }
    }

    // 2. Wait for running handlers, within the grace period.
    job_tasks.close();
    let finished = tokio::time::timeout_at(grace_end.into(), job_tasks.wait()).await;

    // 3. Abort what is still running and give those jobs back.
    if finished.is_err() {
        let aborted = inflight.abort_running();
        tracing::warn!(
            aborted = aborted.values().map(Vec::len).sum::<usize>(),
            grace_ms = timings.shutdown_grace.as_millis() as u64,
            "handlers still running after the grace period were aborted; their jobs go back to the queue"
        );
        'lanes: for (lane, ids) in aborted {
            let store = &stores[lane];
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            for chunk in ids.chunks(500) {
                match tokio::time::timeout_at(give_up.into(), store.requeue(&consumer, chunk)).await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(queue = %store.keys().name(), error = %e, "could not give aborted jobs back; they return after the visibility timeout")
                    }
                    Err(_) => {
                        tracing::warn!(
                            "no time left to give aborted jobs back; they return after the visibility timeout"
                        );
                        break 'lanes;
                    }
                }
            }
        }
    }

    // 4. Flush outcomes (the acker stops trying at `give_up`), then stop
    //    the lease.
    drop(dispatcher);
    finish_by(acker, give_up + Duration::from_millis(50)).await;
    stop_lease.shutdown();
    finish_by(lease, give_up + Duration::from_millis(50)).await;
    // A clean stop leaves the list of live workers (a killed one shows as
    // stale there until a day has passed). Briefly: with Redis frozen or
    // away, shutdown stays within grace + flush and the entry turns stale.
    let _ = tokio::time::timeout(
        Duration::from_millis(100),
        jobstream_core::workers::forget(&redis, &prefix, &consumer),
    )
    .await;
    tracing::info!(queues = ?names, consumer = %consumer, shutdown_ms = began.elapsed().as_millis() as u64, "worker stopped");
    match fatal.take() {
        Some(e) => Err(e.for_server(redis.display_url())),
        None => Ok(()),
    }
}

/// Writes the worker's heartbeat every 5 s until shutdown (`jobstream
/// workers` lists it; see `jobstream_core::workers`).
async fn heartbeats(
    redis: Redis,
    prefix: String,
    mut info: jobstream_core::workers::WorkerInfo,
    inflight: Inflight,
    mut shutdown: crate::shutdown::Shutdown,
) {
    loop {
        info.busy = inflight.len();
        let now = redis
            .server_now_ms()
            .await
            .unwrap_or_else(|_| jobstream_core::now_ms());
        if let Err(e) = jobstream_core::workers::heartbeat(&redis, &prefix, &info, now).await {
            tracing::debug!(error = %e, "heartbeat not written");
        }
        if shutdown
            .sleep(jobstream_core::workers::HEARTBEAT_EVERY)
            .await
        {
            return;
        }
    }
}

/// Aborts the worker's tasks and running handlers when dropped before the
/// shutdown finished (a second signal drops the whole run).
struct AbortOnDrop {
    tasks: Vec<tokio::task::AbortHandle>,
    inflight: Inflight,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.inflight.abort_running();
    }
}

/// Waits for `task` until `deadline`, then aborts it.
async fn finish_by<T>(mut task: JoinHandle<T>, deadline: Instant) {
    if tokio::time::timeout_at(deadline.into(), &mut task)
        .await
        .is_err()
    {
        task.abort();
    }
}

/// The rate limits of `queues`, for the heartbeat (the dashboard shows them).
fn rate_limit_infos(
    queues: &[crate::queues::QueueSpec],
) -> Vec<jobstream_core::workers::RateLimitInfo> {
    use jobstream_core::workers::RateLimitInfo;
    let mut out = Vec::new();
    for q in queues {
        let name = q.name.as_str();
        if let Some(l) = &q.options.rate_limit {
            out.push(RateLimitInfo::new(name, "queue", "", l));
        }
        for (t, l) in &q.options.type_rate_limits {
            out.push(RateLimitInfo::new(name, "type", t, l));
        }
        if let Some(l) = &q.options.key_rate_limit {
            out.push(RateLimitInfo::new(name, "key", "", l));
        }
    }
    out
}
