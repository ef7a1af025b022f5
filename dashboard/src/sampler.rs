//! The history sampler: every step, each known queue's counters go into
//! its `PREFIX:{Q}:history` stream (see `jobstream_core::history`), once
//! per interval however many dashboards run.

use std::sync::{Arc, Weak};

use crate::state::AppState;

pub(crate) fn spawn(state: &Arc<AppState>) {
    if !state.options.record_history {
        return;
    }
    let weak: Weak<AppState> = Arc::downgrade(state);
    let stop = state.stop.clone();
    let step = state.options.history_step;
    tokio::spawn(async move {
        let mut warned = false;
        let mut tick = tokio::time::interval(step);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(state) = weak.upgrade() else { return };
            if let Err(e) = sample_all(&state).await {
                // Once: a user without XADD rights would fill the log.
                if !warned {
                    tracing::warn!(error = %e, "dashboard: cannot record the queues' history (the rate charts stay empty); it is retried quietly");
                    warned = true;
                }
            } else {
                warned = false;
            }
        }
    });
}

/// Samples every queue; one that fails (a name in the queue set that is
/// not a valid queue name, a key of the wrong type) does not stop the
/// others. The first error is returned.
async fn sample_all(state: &AppState) -> jobstream_producer::Result<()> {
    let step = state.options.history_step.as_millis() as u64;
    let mut first = None;
    for queue in state.inspector.queues().await? {
        if let Err(e) = state.inspector.record_sample(&queue, step).await {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
