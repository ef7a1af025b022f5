//! `jobstream queue pause|resume|purge|limits|groups`: queue-wide actions.

use std::time::Duration;

use clap::{Subcommand, ValueEnum};
use jobstream_producer::inspect::{Inspector, Place};
use jobstream_producer::{OverflowPolicy, QueueLimits};

use crate::out::{CliResult, confirm, printable, require_queue, table};

/// Most groups `queue groups` reads (one `XLEN` each) before sorting.
const GROUPS_SCAN_CAP: usize = 10_000;

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

/// What a queue over its limits does with new jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PolicyArg {
    /// Refuse them (QueueFull with the current depth).
    Reject,
    /// Admit them and drop the oldest undelivered jobs.
    Shed,
    /// Producers wait (with a timeout) for room, then refuse.
    Wait,
}

#[derive(Subcommand)]
pub(crate) enum QueueCommand {
    /// Show, set or clear a queue's backpressure limits (fleet-wide, in
    /// Redis; producers apply a change within 2 s). Setting replaces every
    /// limit: what is not given is unset (policy: reject). Without any
    /// option, shows the limits. See docs/flow-control.md.
    Limits {
        /// Queue name.
        queue: String,
        /// Most undelivered jobs.
        #[arg(long)]
        max_ready: Option<u64>,
        /// Greatest age of the oldest undelivered job (e.g. 90s, 5m).
        #[arg(long, value_parser = humantime::parse_duration)]
        max_age: Option<Duration>,
        /// What happens to jobs over a limit.
        #[arg(long, value_enum)]
        policy: Option<PolicyArg>,
        /// With policy shed: keep shed jobs in dead (reason shed) instead
        /// of dropping them.
        #[arg(long)]
        shed_to_dead: bool,
        /// Remove the limits.
        #[arg(long, conflicts_with_all = ["max_ready", "max_age", "policy", "shed_to_dead"])]
        clear: bool,
        /// JSON output: {"queue":..,"limits":{..}|null}.
        #[arg(long)]
        json: bool,
    },
    /// Show a queue's groups (ordering by key, fairness between tenants):
    /// the jobs of each group admitted (ready, running or waiting for a
    /// retry) and waiting for their turn, most waiting first. See
    /// docs/flow-control.md.
    Groups {
        /// Queue name.
        queue: String,
        /// Show at most this many groups.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// JSON output: {"queue":..,"concurrency":N,"total":N,"capped":bool,
        /// "groups":[{"group":..,"admitted":N,"waiting":N}]}.
        #[arg(long)]
        json: bool,
    },
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
        QueueCommand::Limits {
            queue,
            max_ready,
            max_age,
            policy,
            shed_to_dead,
            clear,
            json,
        } => {
            let set = max_ready.is_some() || max_age.is_some() || policy.is_some() || shed_to_dead;
            if clear {
                let had = inspector.clear_limits(&queue).await?;
                if !json {
                    match had {
                        true => println!("cleared the limits of {queue:?}"),
                        false => println!("{queue:?} had no limits"),
                    }
                }
            } else if set {
                let mut limits = QueueLimits::default()
                    .policy(match policy {
                        Some(PolicyArg::Shed) => OverflowPolicy::Shed,
                        Some(PolicyArg::Wait) => OverflowPolicy::Wait,
                        Some(PolicyArg::Reject) | None => OverflowPolicy::Reject,
                    })
                    .shed_to_dead(shed_to_dead);
                if let Some(n) = max_ready {
                    limits = limits.max_ready(n);
                }
                if let Some(age) = max_age {
                    limits = limits.max_age(age);
                }
                inspector.set_limits(&queue, &limits).await?;
            } else {
                require_queue(inspector, &queue).await?;
            }
            let limits = inspector.limits(&queue).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "queue": queue, "limits": limits })
                );
            } else if !clear {
                println!("{queue:?}: {}", describe_limits(limits.as_ref()));
            }
            Ok(())
        }
        QueueCommand::Groups { queue, limit, json } => {
            require_queue(inspector, &queue).await?;
            let view = inspector.groups(&queue, limit, GROUPS_SCAN_CAP).await?;
            if json {
                let mut v = serde_json::to_value(&view).unwrap_or_default();
                v["queue"] = queue.clone().into();
                println!("{v}");
                return Ok(());
            }
            println!(
                "{queue}: {} group(s) with jobs admitted; at most {} job(s) of a group at once",
                view.total, view.concurrency
            );
            if !view.groups.is_empty() {
                let mut t = table(&["group", "admitted", "waiting"]);
                for g in &view.groups {
                    t.add_row(vec![
                        printable(&g.group),
                        g.admitted.to_string(),
                        g.waiting.to_string(),
                    ]);
                }
                println!("{t}");
            }
            if view.capped {
                println!(
                    "(read the first {GROUPS_SCAN_CAP} groups only: the busiest may not be shown)"
                );
            }
            Ok(())
        }
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
                        "left {} that keep a record, belong to a batch or a group, or hold a uniqueness key (cancel those with a record or key with `jobstream job cancel`)",
                        purged.skipped
                    );
                }
            }
            Ok(())
        }
    }
}

/// A queue's limits in one line: `max_ready 100, max_age 5 min, policy
/// shed (to dead)`, or `no limits`.
pub(crate) fn describe_limits(limits: Option<&QueueLimits>) -> String {
    let Some(l) = limits else {
        return "no limits".to_owned();
    };
    let mut parts = Vec::new();
    if let Some(n) = l.max_ready {
        parts.push(format!("max_ready {n}"));
    }
    if let Some(ms) = l.max_age_ms {
        parts.push(format!(
            "max_age {}",
            humantime::format_duration(Duration::from_millis(ms))
        ));
    }
    let to_dead = if l.policy == OverflowPolicy::Shed && l.shed_to_dead {
        " (to dead)"
    } else {
        ""
    };
    parts.push(format!("policy {}{to_dead}", l.policy));
    parts.join(", ")
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
