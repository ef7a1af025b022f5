//! `jobstream job show|wait|cancel`: one job, wherever it is. A job that
//! keeps a record is read and cancelled through it; any other job is found
//! in `ready` (undelivered or in flight), `scheduled` or the dead stream.

use std::time::Duration;

use clap::Subcommand;
use jobstream_producer::inspect::{DEFAULT_SCAN_CAP, Inspector, PlainCancel};
use jobstream_producer::{CancelOutcome, JobRecord, Producer};

use crate::jobs::job_json;
use crate::out::{CliError, CliResult, require_queue};
use crate::time::{now_ms, relative, rfc3339};

#[derive(Subcommand)]
pub(crate) enum JobCommand {
    /// Show a job wherever it is: its record (state, attempts, times,
    /// progress, last error, result decoded to JSON) if it keeps one, else
    /// where it sits (ready, in flight, scheduled, dead) with its details.
    /// Takes a job id or a ready/dead entry id. Never the payload.
    Show {
        /// Queue name (default: look in every known queue).
        #[arg(long)]
        queue: Option<String>,
        /// Job id, or a ready or dead entry id.
        id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Wait until a job that keeps a record is final, then show it (exit
    /// status 1 if it did not complete, 3 on timeout).
    Wait {
        /// Queue name.
        #[arg(long)]
        queue: String,
        /// Job id.
        id: String,
        /// Give up after this long (e.g. 30s, 5m).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job. With a record: if it has not started it never runs; a
    /// running job's handler is signalled. Without one: a scheduled job,
    /// or a ready job no worker has fetched yet, is removed (counted in
    /// `cancelled`); a fetched one cannot be cancelled.
    Cancel {
        /// Queue name (default: look in every known queue).
        #[arg(long)]
        queue: Option<String>,
        /// Job id.
        id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// The queues to look for `id` in: `queue`, or every known queue. An
/// entry id (`ms-seq`) names an entry of one stream and the same id can
/// exist in several queues: it needs `--queue` when there is more than one.
async fn queues_to_search(
    inspector: &Inspector,
    queue: Option<&str>,
    id: &str,
) -> CliResult<Vec<String>> {
    match queue {
        Some(q) => {
            require_queue(inspector, q).await?;
            Ok(vec![q.to_owned()])
        }
        None => {
            let all = inspector.queues().await?;
            if all.len() > 1 && looks_like_entry_id(id) {
                return Err(CliError::Msg(format!(
                    "{id:?} is a stream entry id, and entry ids repeat across queues: \
                     add --queue (known: {})",
                    all.join(", ")
                )));
            }
            Ok(all)
        }
    }
}

/// `ms-seq`, both decimal.
fn looks_like_entry_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        !ms.is_empty()
            && !seq.is_empty()
            && ms.bytes().all(|b| b.is_ascii_digit())
            && seq.bytes().all(|b| b.is_ascii_digit())
    })
}

fn not_found(id: &str, queues: &[String], capped: bool) -> CliError {
    let where_ = match queues {
        [] => "any queue (no queues known)".to_owned(),
        [q] => format!("queue {q:?}"),
        many => format!("queues {}", many.join(", ")),
    };
    let mut msg = format!(
        "job {id:?} not found in {where_} (no record, and not in ready, scheduled or dead)"
    );
    if capped {
        msg.push_str(&format!(
            " (gave up after reading {DEFAULT_SCAN_CAP} entries of a stream or set: it may still be there)"
        ));
    }
    CliError::Msg(msg)
}

pub(crate) async fn run(
    producer: &Producer,
    inspector: &Inspector,
    command: JobCommand,
) -> CliResult<u8> {
    match command {
        JobCommand::Show { queue, id, json } => {
            let queues = queues_to_search(inspector, queue.as_deref(), &id).await?;
            for q in &queues {
                if let Some(record) = producer.job(q, &id).await? {
                    print_record(q, &record, json);
                    return Ok(0);
                }
            }
            let mut capped = false;
            for q in &queues {
                let found = inspector.find_job(q, &id, DEFAULT_SCAN_CAP).await?;
                capped |= found.capped;
                if let Some(job) = found.job {
                    let mut v = job_json(q, &job, now_ms(), true);
                    v["source"] = "queue".into();
                    print_value(&v, json);
                    return Ok(0);
                }
            }
            Err(not_found(&id, &queues, capped))
        }
        JobCommand::Wait {
            queue,
            id,
            timeout,
            json,
        } => {
            require_queue(inspector, &queue).await?;
            match producer.wait_for(&queue, &id, timeout).await {
                Ok(record) => {
                    print_record(&queue, &record, json);
                    Ok(if record.state.as_str() == "completed" {
                        0
                    } else {
                        1
                    })
                }
                Err(jobstream_producer::Error::WaitTimeout { .. }) => {
                    eprintln!("job {id:?} was not final after {timeout:?}");
                    Ok(3)
                }
                Err(e) => Err(e.into()),
            }
        }
        JobCommand::Cancel { queue, id, json } => {
            let queues = queues_to_search(inspector, queue.as_deref(), &id).await?;
            let report = |q: &str, outcome: &str, text: String| {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "queue": q, "id": id, "outcome": outcome })
                    );
                } else {
                    println!("{text}");
                }
            };
            for q in &queues {
                match producer.cancel(q, &id).await? {
                    CancelOutcome::Cancelled => {
                        report(q, "cancelled", format!("cancelled: {id} will not run"));
                        return Ok(0);
                    }
                    CancelOutcome::Requested => {
                        report(
                            q,
                            "requested",
                            format!("requested: {id} is running; its handler is signalled"),
                        );
                        return Ok(0);
                    }
                    CancelOutcome::AlreadyFinal => {
                        report(
                            q,
                            "already_final",
                            format!("{id} had already ended; nothing changed"),
                        );
                        return Ok(0);
                    }
                    _ => {}
                }
            }
            let mut capped = false;
            for q in &queues {
                match inspector.cancel_plain(q, &id, DEFAULT_SCAN_CAP).await? {
                    PlainCancel::Ready => {
                        report(
                            q,
                            "cancelled",
                            format!("cancelled: {id} removed from ready of {q:?}; it will not run"),
                        );
                        return Ok(0);
                    }
                    PlainCancel::Scheduled => {
                        report(
                            q,
                            "cancelled",
                            format!(
                                "cancelled: {id} removed from scheduled of {q:?}; it will not run"
                            ),
                        );
                        return Ok(0);
                    }
                    PlainCancel::InFlight => {
                        return Err(CliError::Msg(format!(
                            "job {id:?} of queue {q:?} was fetched by a worker (in flight): \
                             a job without a record cannot be cancelled once fetched; nothing changed"
                        )));
                    }
                    PlainCancel::Grouped => {
                        return Err(CliError::Msg(format!(
                            "job {id:?} of queue {q:?} belongs to a group: cancelling jobs of \
                             groups is not supported yet (it would hold the group's place); \
                             nothing changed"
                        )));
                    }
                    PlainCancel::Tracked => {
                        return Err(CliError::Msg(format!(
                            "job {id:?} of queue {q:?} belongs to a batch or keeps a record \
                             that has expired: it cannot be cancelled here; nothing changed"
                        )));
                    }
                    PlainCancel::Dead => {
                        return Err(CliError::Msg(format!(
                            "job {id:?} of queue {q:?} is dead already; remove it with \
                             `jobstream dlq discard --queue {q} --id {id}`"
                        )));
                    }
                    PlainCancel::NotFound { capped: c } => capped |= c,
                    _ => {}
                }
            }
            Err(not_found(&id, &queues, capped))
        }
    }
}

fn record_json(queue: &str, r: &JobRecord) -> serde_json::Value {
    let result = r.result.as_ref().map(|bytes| {
        rmp_serde::from_slice::<serde_json::Value>(bytes).unwrap_or_else(|_| {
            serde_json::Value::String(format!("({} bytes, not decodable)", bytes.len()))
        })
    });
    let mut v = serde_json::json!({
        "queue": queue,
        "source": "record",
        "id": r.id,
        "type": r.job_type,
        "state": r.state.as_str(),
        "attempt": r.attempt,
        "enqueued_at_ms": r.enqueued_at_ms,
        "run_at_ms": r.run_at_ms,
        "started_at_ms": r.started_at_ms,
        "finished_at_ms": r.finished_at_ms,
        "worker": r.worker,
        "progress": r.progress,
        "progress_message": r.progress_message,
        "last_error_class": r.last_error_class,
        "last_error": r.last_error,
        "cancel_requested_at_ms": r.cancel_requested_at_ms,
        "result": result,
        "keep_ms": r.keep.as_millis() as u64,
    });
    // Each time also as RFC 3339 (`X_at`) and relative (`X`).
    let now = now_ms();
    for name in ["enqueued", "run", "started", "finished", "cancel_requested"] {
        if let Some(ms) = v[format!("{name}_at_ms")].as_u64().filter(|ms| *ms > 0) {
            v[format!("{name}_at")] = rfc3339(ms).into();
            v[name] = relative(ms, now).into();
        }
    }
    v
}

fn print_record(queue: &str, r: &JobRecord, json: bool) {
    print_value(&record_json(queue, r), json);
}

/// One job: a JSON line, or a two-column table of its non-empty keys.
fn print_value(v: &serde_json::Value, json: bool) {
    if json {
        println!("{v}");
        return;
    }
    let Some(map) = v.as_object() else { return };
    let mut t = crate::out::table(&["key", "value"]);
    for (k, v) in map {
        if v.is_null() {
            continue;
        }
        if let serde_json::Value::Object(fields) = v {
            for (f, fv) in fields {
                t.add_row([format!("{k}.{f}"), crate::out::cell(Some(fv))]);
            }
            continue;
        }
        t.add_row([k.clone(), crate::out::cell(Some(v))]);
    }
    println!("{t}");
}
