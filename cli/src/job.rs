//! `jobstream job show|wait|cancel`: one job, through its record (only
//! jobs enqueued with a record have one).

use std::time::Duration;

use clap::Subcommand;
use jobstream_producer::{CancelOutcome, JobRecord, Producer, ProducerOptions};

#[derive(Subcommand)]
pub(crate) enum JobCommand {
    /// Show a job's record: state, attempts, times, progress, last error,
    /// result (decoded to JSON).
    Show {
        /// Queue name.
        #[arg(long)]
        queue: String,
        /// Job id.
        id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Wait until the job is final, then show it (exit status 1 if it did
    /// not complete, 3 on timeout).
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
    /// Cancel a job: if it has not started it never runs; a running job's
    /// handler is signalled.
    Cancel {
        /// Queue name.
        #[arg(long)]
        queue: String,
        /// Job id.
        id: String,
    },
}

pub(crate) async fn run(url: &str, prefix: &str, command: JobCommand) -> Result<u8, String> {
    let options = ProducerOptions::default().prefix(prefix);
    let producer = Producer::with_options(url, options).map_err(|e| e.to_string())?;
    match command {
        JobCommand::Show { queue, id, json } => {
            let record = producer.job(&queue, &id).await.map_err(|e| e.to_string())?;
            let Some(record) = record else {
                return Err(format!(
                    "no record of job {id:?} on queue {queue:?} (an unknown id, a job enqueued without a record, or its record expired)"
                ));
            };
            print(&queue, &record, json);
            Ok(0)
        }
        JobCommand::Wait {
            queue,
            id,
            timeout,
            json,
        } => match producer.wait_for(&queue, &id, timeout).await {
            Ok(record) => {
                print(&queue, &record, json);
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
            Err(e) => Err(e.to_string()),
        },
        JobCommand::Cancel { queue, id } => {
            let outcome = producer
                .cancel(&queue, &id)
                .await
                .map_err(|e| e.to_string())?;
            match outcome {
                CancelOutcome::Cancelled => println!("cancelled: {id} will not run"),
                CancelOutcome::Requested => {
                    println!("requested: {id} is running; its handler is signalled")
                }
                CancelOutcome::AlreadyFinal => println!("{id} had already ended; nothing changed"),
                _ => {
                    return Err(format!(
                        "no record of job {id:?} on queue {queue:?}: only jobs enqueued with a record can be cancelled"
                    ));
                }
            }
            Ok(0)
        }
    }
}

fn to_json(queue: &str, r: &JobRecord) -> serde_json::Value {
    let result = r.result.as_ref().map(|bytes| {
        rmp_serde::from_slice::<serde_json::Value>(bytes).unwrap_or_else(|_| {
            serde_json::Value::String(format!("({} bytes, not decodable)", bytes.len()))
        })
    });
    serde_json::json!({
        "queue": queue,
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
    })
}

fn print(queue: &str, r: &JobRecord, json: bool) {
    let v = to_json(queue, r);
    if json {
        println!("{v}");
        return;
    }
    let Some(map) = v.as_object() else { return };
    for (k, v) in map {
        if v.is_null() {
            continue;
        }
        let shown = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        println!("{k:<24} {shown}");
    }
}
