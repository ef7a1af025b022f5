//! `jobstream check`: do the books of every queue balance, and is Redis set
//! up so that it does not lose jobs.

use std::process::ExitCode;

use clap::Args;
use jobstream_producer::inspect::{Books, BooksStatus, Fsync, Inspector, ServerSafety};

use crate::out::{CliResult, require_queue};

/// Exit status: every queue balances and no warning.
const OK: u8 = 0;
/// Exit status: a queue's books do not balance.
const MISMATCH: u8 = 1;
/// Exit status: the books balance, but a server setting can lose jobs.
const WARNINGS: u8 = 2;
/// Exit status: the check could not be done (no connection, a server
/// without `entries-added`, bad arguments).
pub(crate) const CANNOT_CHECK: u8 = 3;

#[derive(Args, Clone)]
pub(crate) struct CheckArgs {
    /// Only this queue (default: every known queue).
    #[arg(long)]
    queue: Option<String>,
    /// One JSON object: {"queues":[...],"warnings":[...],"notes":[...],"server":{...}}.
    #[arg(long)]
    json: bool,
    /// The weakest appendfsync accepted: always, everysec or no.
    #[arg(long, default_value = "everysec", value_name = "always|everysec|no")]
    expect_fsync: Fsync,
}

pub(crate) async fn run(inspector: Inspector, args: CheckArgs) -> CliResult<ExitCode> {
    let names = match &args.queue {
        Some(q) => {
            // A typo must not read as "balanced" (exit 3: could not check).
            require_queue(&inspector, q).await?;
            vec![q.clone()]
        }
        None => inspector.queues().await?,
    };
    let mut queues = Vec::with_capacity(names.len());
    for name in &names {
        queues.push(inspector.books(name).await?);
    }
    let server = inspector.server_safety(args.expect_fsync).await?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "queues": queues,
                "warnings": server.warnings,
                "notes": server.note.iter().collect::<Vec<_>>(),
                "server": {
                    "maxmemory_policy": server.maxmemory_policy,
                    "maxmemory": server.maxmemory,
                    "appendonly": server.appendonly,
                    "appendfsync": server.appendfsync,
                    "save": server.save,
                    "expect_fsync": args.expect_fsync,
                },
            })
        );
    } else {
        print_report(&queues, &server, args.expect_fsync);
    }
    Ok(ExitCode::from(exit_status(&queues, &server)))
}

/// A mismatch beats a queue that could not be checked, which beats a
/// warning. A note (configuration unreadable) alone does not change it.
fn exit_status(queues: &[Books], server: &ServerSafety) -> u8 {
    if queues.iter().any(|b| b.status == BooksStatus::Mismatch) {
        MISMATCH
    } else if queues.iter().any(|b| b.status == BooksStatus::CannotCheck) {
        CANNOT_CHECK
    } else if !server.warnings.is_empty() {
        WARNINGS
    } else {
        OK
    }
}

fn print_report(queues: &[Books], server: &ServerSafety, expect: Fsync) {
    for b in queues {
        println!("queue {}: {}", b.name, b.verdict());
        let added = b
            .entries_added
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        let difference = b
            .difference
            .map_or_else(|| "?".to_owned(), |n| n.to_string());
        let rows = [
            ("entries added to ready", added),
            ("= still in ready", b.in_stream.to_string()),
            ("+ processed", b.processed.to_string()),
            ("+ discarded", b.discarded.to_string()),
            ("+ expired", b.expired.to_string()),
            ("+ cancelled", b.cancelled.to_string()),
            ("+ retried", b.retried.to_string()),
            ("+ requeued", b.requeued.to_string()),
            ("+ throttled", b.throttled.to_string()),
            ("+ held", b.held.to_string()),
            ("+ dead", b.dead.to_string()),
            ("- dead from scheduled", b.dead_scheduled.to_string()),
            ("= accounted for", b.accounted.to_string()),
            ("difference", difference),
        ];
        for (label, value) in rows {
            println!("  {label:<24} {value:>12}");
        }
    }
    if queues.is_empty() {
        println!("(no queues known yet)");
    }
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".to_owned());
    let read_any = server.maxmemory_policy.is_some()
        || server.appendonly.is_some()
        || server.appendfsync.is_some();
    if read_any {
        println!(
            "server: maxmemory-policy {}, appendonly {}, appendfsync {} (expected: {expect} or stronger)",
            show(&server.maxmemory_policy),
            server
                .appendonly
                .map_or("?", |on| if on { "yes" } else { "no" }),
            show(&server.appendfsync),
        );
    }
    for w in &server.warnings {
        println!("WARN {w}");
    }
    if let Some(note) = &server.note {
        println!("note: {note}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn books(added: Option<i64>, in_stream: i64) -> Books {
        Books::new("q", added, in_stream, |_| 0)
    }

    #[test]
    fn a_mismatch_outranks_cannot_check_which_outranks_warnings() {
        let mut warned = ServerSafety::default();
        warned.warnings = vec!["w".into()];
        let mut noted = ServerSafety::default();
        noted.note = Some("n".into());
        let ok = books(Some(1), 1);
        let bad = books(Some(2), 1);
        let old = books(None, 1);
        let just_ok = std::slice::from_ref(&ok);
        assert_eq!(exit_status(just_ok, &ServerSafety::default()), OK);
        assert_eq!(exit_status(just_ok, &noted), OK);
        assert_eq!(exit_status(just_ok, &warned), WARNINGS);
        assert_eq!(
            exit_status(&[ok.clone(), old.clone()], &warned),
            CANNOT_CHECK
        );
        assert_eq!(exit_status(&[old, bad, ok], &warned), MISMATCH);
        assert_eq!(exit_status(&[], &ServerSafety::default()), OK);
    }
}
