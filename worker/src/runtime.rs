//! Composes the duties of a worker and owns the shutdown order.
//!
//! Start: create the consumer group (retrying while Redis is away), then
//! start the acker, lease, promoter and consumer reaper, then the fetcher
//! (which also reclaims the jobs of dead workers, with the slots it holds).
//!
//! Shutdown, in this order, so nothing is lost and nothing waits on the
//! visibility timeout:
//! 1. stop fetching: the blocked `XREADGROUP` is ended with `CLIENT UNBLOCK`;
//!    anything it still returned goes straight back to `ready`;
//!    the promoter and reaper stop too;
//! 2. wait up to `shutdown_grace` for running handlers; the lease keeps
//!    being refreshed meanwhile;
//! 3. abort the handlers still running and give their jobs back to `ready`;
//! 4. let the acker flush every outcome it holds, then stop the lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use jobstream_core::{QueueKeys, QueueStore, Reconnect};
use tokio::sync::{Semaphore, mpsc};

use crate::Worker;
use crate::acker::Acker;
use crate::fetcher::Fetcher;
use crate::inflight::Inflight;
use crate::lease::Lease;
use crate::processor::Dispatcher;
use crate::promoter::Promoter;
use crate::reclaimer::Reclaimer;
use crate::shutdown;

pub(crate) async fn run(worker: Worker) -> Result<(), jobstream_core::Error> {
    let Worker {
        redis,
        queue,
        group,
        prefix,
        concurrency,
        timings,
        limits,
        registry,
        consumer,
        handle: _handle,
        mut shutdown,
    } = worker;
    let store = QueueStore::new(redis.clone(), QueueKeys::new(&prefix, &queue), group);
    tracing::info!(queue = %queue, consumer = %consumer, concurrency, redis = %redis.display_url(),
        job_types = ?registry.types(), "worker starting");

    let mut backoff = Reconnect::new(&timings);
    loop {
        match store.ensure_group().await {
            Ok(_) => {
                if let Err(e) = store.create_consumer(&consumer).await {
                    tracing::warn!(error = %e, "could not register the consumer");
                }
                break;
            }
            Err(e) => {
                let wait = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot set up the consumer group; retrying");
                if shutdown.sleep(wait).await {
                    return Ok(());
                }
            }
        }
    }
    if let Err(e) = store.register().await {
        tracing::warn!(error = %e, "could not add the queue to the registry of known queues");
    }

    let slots = Arc::new(Semaphore::new(concurrency));
    let inflight = Inflight::default();
    let (outcome_tx, outcome_rx) = mpsc::channel(concurrency * 2 + limits.ack_batch);
    let dispatcher = Arc::new(Dispatcher {
        registry,
        queue: Arc::from(queue.as_str()),
        consumer: Arc::from(consumer.as_str()),
        outcomes: outcome_tx,
        inflight: inflight.clone(),
    });
    let (stop_lease, lease_stop) = shutdown::channel();

    let acker = tokio::spawn(
        Acker {
            store: store.clone(),
            consumer: consumer.clone(),
            inflight: inflight.clone(),
            timings: timings.clone(),
            batch: limits.ack_batch,
            dead_max_len: limits.dead_max_len,
        }
        .run(outcome_rx),
    );
    let lease = tokio::spawn(
        Lease {
            store: store.clone(),
            consumer: consumer.clone(),
            inflight: inflight.clone(),
            timings: timings.clone(),
        }
        .run(lease_stop),
    );
    let promoter = tokio::spawn(
        Promoter {
            store: store.clone(),
            timings: timings.clone(),
            limits: limits.clone(),
        }
        .run(shutdown.clone()),
    );
    let reclaimer = || Reclaimer {
        store: store.clone(),
        consumer: consumer.clone(),
        timings: timings.clone(),
        limits: limits.clone(),
    };
    let reaper = tokio::spawn(reclaimer().run_reaper(shutdown.clone()));
    let reader_id = Arc::new(AtomicI64::new(0));
    let mut fetcher = tokio::spawn(
        Fetcher {
            store: store.clone(),
            consumer: consumer.clone(),
            dispatcher: Arc::clone(&dispatcher),
            slots: Arc::clone(&slots),
            timings: timings.clone(),
            max_batch: concurrency.min(limits.ack_batch),
            reader_id: Arc::clone(&reader_id),
            reclaimer: reclaimer(),
        }
        .run(shutdown.clone()),
    );

    // 1. Stop fetching.
    tokio::select! {
        _ = shutdown.wait() => {}
        _ = &mut fetcher => {}
    }
    tracing::info!(queue = %queue, running = inflight.len(), "shutting down: no new jobs are fetched");
    while !fetcher.is_finished() {
        let id = reader_id.load(Ordering::SeqCst);
        if id != 0 {
            let _ = store.unblock(id).await;
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), &mut fetcher).await;
    }
    let _ = promoter.await;
    let _ = reaper.await;

    // 2. Wait for running handlers, within the grace period.
    let all = u32::try_from(concurrency).unwrap_or(u32::MAX);
    let finished = tokio::time::timeout(timings.shutdown_grace, slots.acquire_many(all)).await;

    // 3. Abort what is still running and give those jobs back.
    if finished.is_err() {
        let ids = inflight.abort_running();
        tracing::warn!(
            aborted = ids.len(),
            grace_ms = timings.shutdown_grace.as_millis() as u64,
            "handlers still running after the grace period were aborted; their jobs go back to the queue"
        );
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        for chunk in ids.chunks(500) {
            if let Err(e) = store.requeue(&consumer, chunk).await {
                tracing::warn!(error = %e, "could not give aborted jobs back; they return after the visibility timeout");
            }
        }
    }

    // 4. Flush outcomes, then stop the lease.
    drop(dispatcher);
    let _ = acker.await;
    stop_lease.shutdown();
    let _ = lease.await;
    tracing::info!(queue = %queue, consumer = %consumer, "worker stopped");
    Ok(())
}
