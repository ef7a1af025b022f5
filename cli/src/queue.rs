//! `jobstream queue pause|resume|purge`: queue-wide actions.

use clap::{Subcommand, ValueEnum};
use jobstream_producer::inspect::{Inspector, Place};

use crate::out::{CliResult, confirm, require_queue};

/// What `queue purge` removes. Jobs in flight are held by workers and are
/// never purged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PurgeState {
    /// Entries no worker has fetched yet.
    Ready,
    /// Delayed jobs and jobs waiting for a retry.
    Scheduled,
    /// Dead letters.
    Dead,
}

#[derive(Subcommand)]
pub(crate) enum QueueCommand {
    /// Pause a queue on every worker of the fleet: within a second no
    /// worker fetches its jobs; jobs already running finish; producers can
    /// still enqueue (the backlog grows). Shown in `queues`, `stats` and
    /// the metric jobstream_queue_paused.
    Pause {
        /// Queue name.
        queue: String,
        /// JSON output: {"queue":..,"paused":true,"changed":bool}.
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused queue: workers fetch its jobs again within a second.
    Resume {
        /// Queue name.
        queue: String,
        /// JSON output: {"queue":..,"paused":false,"changed":bool}.
        #[arg(long)]
        json: bool,
    },
    /// Remove every job of a queue in one state, for good: undelivered
    /// ready entries, scheduled jobs or dead letters (never jobs in
    /// flight). Counted so `jobstream check` still balances. Jobs that keep
    /// a record, belong to a batch or hold a uniqueness key are left (use
    /// `job cancel`). Asks to type the queue name unless --yes.
    Purge {
        /// Queue name.
        queue: String,
        /// Which jobs.
        #[arg(long, value_enum)]
        state: PurgeState,
        /// Do not ask for confirmation (needed when stdin is not a terminal).
        #[arg(long)]
        yes: bool,
        /// JSON output: {"queue":..,"state":..,"removed":N,"skipped":N}.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(inspector: &Inspector, command: QueueCommand) -> CliResult<()> {
    match command {
        QueueCommand::Pause { queue, json } => {
            require_queue(inspector, &queue).await?;
            let changed = inspector.pause(&queue).await?;
            switched(&queue, true, changed, json);
            Ok(())
        }
        QueueCommand::Resume { queue, json } => {
            require_queue(inspector, &queue).await?;
            let changed = inspector.resume(&queue).await?;
            switched(&queue, false, changed, json);
            Ok(())
        }
        QueueCommand::Purge {
            queue,
            state,
            yes,
            json,
        } => {
            require_queue(inspector, &queue).await?;
            let place = match state {
                PurgeState::Ready => Place::Ready,
                PurgeState::Scheduled => Place::Scheduled,
                PurgeState::Dead => Place::Dead,
            };
            confirm(
                &format!(
                    "delete every {} job of queue {queue:?} for good",
                    place.as_str()
                ),
                &queue,
                yes,
            )?;
            let purged = inspector.purge(&queue, place).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "queue": queue,
                        "state": place.as_str(),
                        "removed": purged.removed,
                        "skipped": purged.skipped,
                    })
                );
            } else {
                println!(
                    "removed {} {} jobs of {queue:?}",
                    purged.removed,
                    place.as_str()
                );
                if purged.skipped > 0 {
                    println!(
                        "left {} that keep a record, belong to a batch or hold a uniqueness key: cancel them with `jobstream job cancel`",
                        purged.skipped
                    );
                }
            }
            Ok(())
        }
    }
}

/// Reports a pause or a resume.
fn switched(queue: &str, paused: bool, changed: bool, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::json!({ "queue": queue, "paused": paused, "changed": changed })
        );
        return;
    }
    match (paused, changed) {
        (true, true) => println!(
            "paused {queue:?}: workers stop fetching its jobs within a second; running jobs finish"
        ),
        (true, false) => println!("{queue:?} was already paused"),
        (false, true) => {
            println!("resumed {queue:?}: workers fetch its jobs again within a second")
        }
        (false, false) => println!("{queue:?} was not paused"),
    }
}
