//! Wire format v1: a job as a set of string fields (see docs/wire-format.md).
//!
//! In `ready` and `dead` the fields are stream entry fields; in `scheduled`
//! the member is a MessagePack map of the same fields, so a Lua script can
//! move it without a round trip (`promote-4.lua` decodes it with its own
//! small reader: Redis's bundled cmsgpack cannot read bin types). Unknown fields are kept and
//! written back unchanged on every move.

use crate::lifecycle::{UniqueKey, UniqueMode};

/// Field names of wire format v1 (a **contract**: other languages write them).
pub mod field {
    /// Handler name. Required.
    pub const TYPE: &str = "type";
    /// Arguments, MessagePack bytes. Required.
    pub const PAYLOAD: &str = "payload";
    /// Job id, stable across retries; the entry id when absent.
    pub const ID: &str = "id";
    /// Handler attempt, 1 on the first run.
    pub const ATTEMPT: &str = "attempt";
    /// Unix ms of the first enqueue; from the entry id when absent.
    pub const ENQUEUED_AT: &str = "enqueued_at";
    /// Per-job override of the handler's maximum attempts.
    pub const MAX_ATTEMPTS: &str = "max_attempts";
    /// Per-job override of the handler's timeout, ms.
    pub const TIMEOUT_MS: &str = "timeout_ms";
    /// The caller's stable business key.
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    /// W3C trace context.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C trace state.
    pub const TRACESTATE: &str = "tracestate";
    /// Class of the last failed attempt (set by the worker on retry).
    pub const LAST_ERROR_CLASS: &str = "last_error_class";
    /// Message of the last failed attempt (set by the worker on retry).
    pub const LAST_ERROR: &str = "last_error";
    /// Dead entries: why the job is dead.
    pub const REASON: &str = "reason";
    /// Dead entries: class of the final error.
    pub const ERROR_CLASS: &str = "error_class";
    /// Dead entries: message of the final error (truncated, no payload).
    pub const ERROR: &str = "error";
    /// Dead entries: deliveries of the final attempt.
    pub const DELIVERIES: &str = "deliveries";
    /// Dead entries: unix ms when the job died.
    pub const FAILED_AT: &str = "failed_at";
    /// Dead entries: the consumer that dead-lettered it.
    pub const WORKER: &str = "worker";
    /// Dead entries: the queue the job came from.
    pub const QUEUE: &str = "queue";
    /// Dead entries: an undecodable `scheduled` member, whole; or the
    /// fields of an entry that could not be written field by field (too
    /// wide, or carrying dead-entry names), as a MessagePack map in their
    /// order, duplicates kept.
    pub const RAW: &str = "raw";

    /// The entry id of the attempt before this one (set by the worker on
    /// retry). Makes every retry's `scheduled` member unique, so two
    /// identical jobs retried at once stay two jobs.
    pub const PREV_ENTRY: &str = "prev_entry";
    /// Unix ms, by the Redis server's clock: a job not started by then is
    /// not run (it goes to dead as `expired`, or is discarded).
    pub const DEADLINE_MS: &str = "deadline_ms";
    /// What happens to a job past its deadline: `dead` (the default) or
    /// `discard`.
    pub const ON_DEADLINE: &str = "on_deadline";
    /// Uniqueness key: while it is held by another job of the queue, an
    /// enqueue of this one is refused as a duplicate (`enqueue-6`).
    pub const UNIQUE_KEY: &str = "unique_key";
    /// When the uniqueness key is released: `queued` (at start), `done`
    /// (when final, the default) or `ttl` (when `unique_ttl_ms` is over).
    pub const UNIQUE_FOR: &str = "unique_for";
    /// Lifetime of the uniqueness key, ms (required for `ttl`).
    pub const UNIQUE_TTL_MS: &str = "unique_ttl_ms";
    /// The job keeps a record (`PREFIX:{Q}:job:ID`), kept this many ms
    /// after its final state.
    pub const RECORD_MS: &str = "record_ms";
    /// A chain's remaining steps, run one after the other as each succeeds:
    /// a MessagePack array of steps, each a MessagePack map of the step's
    /// fields (as a `scheduled` member).
    pub const CHAIN: &str = "chain";
    /// The previous chain step's result (MessagePack), on a chain step.
    pub const PREV_RESULT: &str = "prev_result";
    /// The id of the batch the job is a member of.
    pub const BATCH: &str = "batch";
    /// On a batch's completion job: the id of the batch it completes.
    pub const BATCH_DONE: &str = "batch_done";
    /// The job's group (a tenant, a customer): at most the queue's
    /// `group_concurrency` jobs of one group run at once, in enqueue order.
    pub const GROUP: &str = "group";
    /// Rate key: the job counts against its queue's per-key rate limit
    /// and is held with that key after an upstream 429 (1–256 bytes of
    /// text, e.g. a customer id or an upstream API name).
    pub const RATE_KEY: &str = "rate_key";
    /// The wire-format version the job was written in; absent means 1. A
    /// worker runs only versions it knows ([`WIRE_VERSION`]): another one
    /// is dead-lettered as `unsupported_version`, fields kept, so a newer
    /// worker can run it after a replay.
    pub const WIRE_VERSION: &str = "wire_version";
}

/// The wire-format version this crate reads and writes (docs/wire-format.md,
/// "Versions"). A job's `wire_version` field, when present, must be exactly
/// this, in decimal.
pub const WIRE_VERSION: &str = "1";

/// Longest error message kept in `last_error` and `error` fields.
pub const MAX_ERROR_LEN: usize = 512;

/// Most fields a job may have of its own: every field except the ones the
/// worker writes itself ([`WORKER_FIELDS`]). Redis's Lua cannot pass many
/// more to one command, so a wider entry could not be moved by a script:
/// it is dead-lettered as `malformed` with all its fields packed into `raw`
/// (see docs/wire-format.md). The scripts accept 1024 fields, so a job at
/// the limit plus the worker's own fields always fits.
pub const MAX_FIELDS: usize = 1000;

/// The fields the worker writes on a retry (replaced where they are,
/// added when missing), not counted against [`MAX_FIELDS`].
pub const WORKER_FIELDS: &[&str] = &[
    field::ID,
    field::ATTEMPT,
    field::ENQUEUED_AT,
    field::LAST_ERROR_CLASS,
    field::LAST_ERROR,
    field::PREV_ENTRY,
];

/// The most fields a decodable entry can have: [`MAX_FIELDS`] of its own
/// plus the worker's.
pub const MAX_ENTRY_FIELDS: usize = MAX_FIELDS + WORKER_FIELDS.len();

/// Largest `max_attempts` honoured; larger values are lowered to it.
pub const MAX_ATTEMPTS_CAP: u32 = 1000;

/// Largest `timeout_ms` honoured (24 h); larger values are lowered to it.
pub const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// The wire-format fields of a job (docs/wire-format.md), each allowed once
/// per entry. [`Envelope::decode`] knows each of them by name.
pub const JOB_FIELDS: &[&str] = &[
    field::TYPE,
    field::PAYLOAD,
    field::ID,
    field::ATTEMPT,
    field::ENQUEUED_AT,
    field::MAX_ATTEMPTS,
    field::TIMEOUT_MS,
    field::IDEMPOTENCY_KEY,
    field::TRACEPARENT,
    field::TRACESTATE,
    field::LAST_ERROR_CLASS,
    field::LAST_ERROR,
    field::PREV_ENTRY,
    field::DEADLINE_MS,
    field::ON_DEADLINE,
    field::UNIQUE_KEY,
    field::UNIQUE_FOR,
    field::UNIQUE_TTL_MS,
    field::RECORD_MS,
    field::CHAIN,
    field::PREV_RESULT,
    field::BATCH,
    field::BATCH_DONE,
    field::GROUP,
    field::RATE_KEY,
    field::WIRE_VERSION,
];

/// Every name the wire format reserves: the job's own fields
/// ([`JOB_FIELDS`]) and the failure context of dead entries
/// ([`DEAD_CONTEXT`]). Producers may not use them for extra fields.
pub fn reserved_names() -> impl Iterator<Item = &'static str> {
    JOB_FIELDS.iter().chain(DEAD_CONTEXT).copied()
}

/// The names of the failure context a dead entry adds after the job's
/// fields. A job that already carries one of them (or `raw`) is
/// dead-lettered with its fields packed into `raw`, so context and job
/// never mix.
pub const DEAD_CONTEXT: &[&str] = &[
    field::REASON,
    field::ERROR_CLASS,
    field::ERROR,
    field::DELIVERIES,
    field::FAILED_AT,
    field::WORKER,
    field::QUEUE,
    field::RAW,
];

/// A job decoded from its fields. The fields stay exactly as they were
/// read (order, duplicates of unknown names, bytes): the decoded values
/// are a view of them, so a dead letter or a retry writes back what the
/// producer wrote, with only the fields jobstream owns changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    payload_at: usize,
    /// Handler name.
    pub job_type: String,
    /// Job id, if the entry carries one.
    pub id: Option<String>,
    /// Handler attempt, 1-based.
    pub attempt: u32,
    /// First enqueue time, unix ms, if the entry carries it.
    pub enqueued_at_ms: Option<u64>,
    /// Per-job maximum attempts, at most [`MAX_ATTEMPTS_CAP`] (and at
    /// least 1).
    pub max_attempts: Option<u32>,
    /// Per-job timeout, ms, at most [`MAX_TIMEOUT_MS`]; `0` in the entry
    /// means the handler's own timeout.
    pub timeout_ms: Option<u64>,
    /// Caller's business key.
    pub idempotency_key: Option<String>,
    /// W3C traceparent.
    pub traceparent: Option<String>,
    /// W3C tracestate.
    pub tracestate: Option<String>,
    /// Class of the last failed attempt.
    pub last_error_class: Option<String>,
    /// Message of the last failed attempt.
    pub last_error: Option<String>,
    /// Start deadline, unix ms by the server's clock.
    pub deadline_ms: Option<u64>,
    /// Past its deadline, the job is discarded instead of dead-lettered.
    pub discard_after_deadline: bool,
    /// Its uniqueness key and mode (`unique_key`, `unique_for`).
    pub unique: Option<UniqueKey>,
    /// It keeps a record, for this many ms after its final state.
    pub record_ms: Option<u64>,
    /// Index of the `chain` field: the remaining steps of its chain.
    chain_at: Option<usize>,
    /// Index of the `prev_result` field.
    prev_result_at: Option<usize>,
    /// The batch it is a member of.
    pub batch: Option<String>,
    /// The batch it completes (a completion job).
    pub batch_done: Option<String>,
    /// Its group (field `group`, 1 to [`MAX_GROUP_LEN`] bytes).
    pub group: Option<String>,
    /// Its rate key (`rate_key`), 1 to [`MAX_RATE_KEY_LEN`] bytes.
    pub rate_key: Option<String>,
}

/// Longest group name (field `group`), bytes.
pub const MAX_GROUP_LEN: usize = 256;

/// Longest `rate_key` accepted, bytes; a longer (or empty) one makes the
/// entry malformed.
pub const MAX_RATE_KEY_LEN: usize = 256;

/// Why an entry could not be decoded into a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Human-readable reason, without payload bytes.
    pub detail: String,
    /// The job names a wire-format version this crate does not know: it
    /// is not broken, only newer (dead reason `unsupported_version`).
    pub unsupported_version: bool,
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

fn malformed(detail: impl Into<String>) -> Malformed {
    Malformed {
        detail: detail.into(),
        unsupported_version: false,
    }
}

fn text(name: &str, value: &[u8]) -> Result<String, Malformed> {
    std::str::from_utf8(value)
        .map(str::to_owned)
        .map_err(|_| malformed(format!("field {name:?} is not UTF-8")))
}

fn number<T: std::str::FromStr>(name: &str, value: &[u8]) -> Result<T, Malformed> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| malformed(format!("field {name:?} is not a whole number")))
}

/// A decoded entry: the job, or why it is malformed with its fields
/// handed back untouched.
pub type Decoded = Result<Envelope, (Malformed, Vec<(Vec<u8>, Vec<u8>)>)>;

impl Envelope {
    /// Decodes the fields of a stream entry. Fails on more than
    /// [`MAX_FIELDS`] fields, a missing or empty `type`, a missing
    /// `payload`, a payload that is not one MessagePack value, numeric
    /// fields that are not numbers, text fields that are not UTF-8, and
    /// any wire-format field that appears twice. On failure the fields
    /// come back exactly as they were, for the dead letter.
    pub fn decode(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Decoded {
        match Self::view(&fields) {
            Ok(mut env) => {
                env.fields = fields;
                Ok(env)
            }
            Err(bad) => Err((bad, fields)),
        }
    }

    /// Decodes by reference: every value is checked and copied except the
    /// payload, which stays in the fields (found again by its index).
    fn view(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Self, Malformed> {
        let too_wide = || {
            malformed(format!(
                "entry has {} fields; a job may have at most {MAX_FIELDS} besides the worker's own",
                fields.len()
            ))
        };
        if fields.len() > MAX_ENTRY_FIELDS {
            return Err(too_wide());
        }
        // Before any other check: a job of a newer version may break v1's
        // rules on purpose, and must not be called broken for it.
        if let Some((_, v)) = fields
            .iter()
            .find(|(k, v)| k == field::WIRE_VERSION.as_bytes() && v != WIRE_VERSION.as_bytes())
        {
            let shown = std::str::from_utf8(v).ok().filter(|v| v.len() <= 32);
            return Err(Malformed {
                detail: match shown {
                    Some(v) => format!(
                        "wire_version {v:?} is not supported by this worker (it reads version {WIRE_VERSION})"
                    ),
                    None => format!(
                        "wire_version is not supported by this worker (it reads version {WIRE_VERSION})"
                    ),
                },
                unsupported_version: true,
            });
        }
        let mut env = Envelope::default();
        let mut seen: u32 = 0;
        let mut payload_at = None;
        let (mut unique_key, mut unique_mode) = (None, None);
        for (i, (name, value)) in fields.iter().enumerate() {
            let (bit, label) = match name.as_slice() {
                b"type" => (0, field::TYPE),
                b"payload" => (1, field::PAYLOAD),
                b"id" => (2, field::ID),
                b"attempt" => (3, field::ATTEMPT),
                b"enqueued_at" => (4, field::ENQUEUED_AT),
                b"max_attempts" => (5, field::MAX_ATTEMPTS),
                b"timeout_ms" => (6, field::TIMEOUT_MS),
                b"idempotency_key" => (7, field::IDEMPOTENCY_KEY),
                b"traceparent" => (8, field::TRACEPARENT),
                b"tracestate" => (9, field::TRACESTATE),
                b"last_error_class" => (10, field::LAST_ERROR_CLASS),
                b"last_error" => (11, field::LAST_ERROR),
                b"prev_entry" => (12, field::PREV_ENTRY),
                b"deadline_ms" => (13, field::DEADLINE_MS),
                b"on_deadline" => (14, field::ON_DEADLINE),
                b"unique_key" => (15, field::UNIQUE_KEY),
                b"unique_for" => (16, field::UNIQUE_FOR),
                b"unique_ttl_ms" => (17, field::UNIQUE_TTL_MS),
                b"record_ms" => (18, field::RECORD_MS),
                b"chain" => (19, field::CHAIN),
                b"prev_result" => (20, field::PREV_RESULT),
                b"batch" => (21, field::BATCH),
                b"batch_done" => (22, field::BATCH_DONE),
                b"group" => (23, field::GROUP),
                b"rate_key" => (24, field::RATE_KEY),
                b"wire_version" => (25, field::WIRE_VERSION),
                _ => continue,
            };
            if seen & (1 << bit) != 0 {
                return Err(malformed(format!("field {label:?} appears more than once")));
            }
            seen |= 1 << bit;
            match bit {
                0 => env.job_type = text(label, value)?,
                1 => payload_at = Some(i),
                2 => env.id = Some(text(label, value)?),
                3 => env.attempt = number(label, value)?,
                4 => env.enqueued_at_ms = Some(number(label, value)?),
                5 => {
                    let n: u32 = number(label, value)?;
                    env.max_attempts = Some(n.clamp(1, MAX_ATTEMPTS_CAP));
                }
                6 => {
                    let ms: u64 = number(label, value)?;
                    env.timeout_ms = (ms > 0).then_some(ms.min(MAX_TIMEOUT_MS));
                }
                7 => env.idempotency_key = Some(text(label, value)?),
                // Trace context is advisory: a value that is not UTF-8 is
                // dropped (the job runs in a trace of its own), never a
                // reason to dead-letter the job.
                8 => env.traceparent = std::str::from_utf8(value).ok().map(str::to_owned),
                9 => env.tracestate = std::str::from_utf8(value).ok().map(str::to_owned),
                10 => env.last_error_class = Some(text(label, value)?),
                11 => env.last_error = Some(text(label, value)?),
                13 => env.deadline_ms = Some(number(label, value)?),
                14 => {
                    env.discard_after_deadline = match value.as_slice() {
                        b"dead" => false,
                        b"discard" => true,
                        _ => {
                            return Err(malformed(
                                "field \"on_deadline\" is neither \"dead\" nor \"discard\"",
                            ));
                        }
                    }
                }
                15 => unique_key = Some(text(label, value)?),
                16 => {
                    unique_mode = Some(UniqueMode::parse(value).ok_or_else(|| {
                        malformed("field \"unique_for\" is not \"queued\", \"done\" or \"ttl\"")
                    })?)
                }
                17 => {
                    number::<u64>(label, value)?;
                }
                19 => {
                    crate::chain::check_chain(value)
                        .map_err(|e| malformed(format!("field \"chain\": {e}")))?;
                    env.chain_at = Some(i);
                }
                20 => env.prev_result_at = Some(i),
                21 => env.batch = Some(text(label, value)?),
                22 => env.batch_done = Some(text(label, value)?),
                23 => {
                    if value.is_empty() || value.len() > MAX_GROUP_LEN {
                        return Err(malformed(format!(
                            "field \"group\" must be 1 to {MAX_GROUP_LEN} bytes"
                        )));
                    }
                    env.group = Some(text(label, value)?);
                }
                24 => {
                    if value.is_empty() || value.len() > MAX_RATE_KEY_LEN {
                        return Err(malformed(format!(
                            "field \"rate_key\" must be 1 to {MAX_RATE_KEY_LEN} bytes (it is {})",
                            value.len()
                        )));
                    }
                    env.rate_key = Some(text(label, value)?);
                }
                18 => {
                    let ms: u64 = number(label, value)?;
                    env.record_ms = Some(ms.clamp(1, crate::lifecycle::MAX_KEEP_MS));
                }
                _ => {
                    text(label, value)?;
                }
            }
        }
        env.unique = unique_key.map(|key| UniqueKey {
            key,
            mode: unique_mode.unwrap_or(UniqueMode::Done),
        });
        // Bits 2, 3, 4, 10, 11, 12: the worker's own fields.
        let own = fields.len() - (seen & 0b1_1100_0001_1100).count_ones() as usize;
        if own > MAX_FIELDS {
            return Err(too_wide());
        }
        if env.job_type.is_empty() {
            return Err(malformed(if seen & 1 == 0 {
                "entry has no \"type\" field"
            } else {
                "entry has an empty \"type\" field"
            }));
        }
        let Some(payload_at) = payload_at else {
            return Err(malformed("entry has no \"payload\" field"));
        };
        check_msgpack(&fields[payload_at].1)
            .map_err(|e| malformed(format!("payload is not MessagePack: {e}")))?;
        env.payload_at = payload_at;
        env.attempt = env.attempt.max(1);
        Ok(env)
    }

    /// The remaining steps of the job's chain (each a MessagePack map of a
    /// step's fields), if it is a chain step with steps after it.
    pub fn chain_rest(&self) -> Option<Vec<crate::chain::Fields>> {
        let bytes = &self.fields.get(self.chain_at?)?.1;
        crate::chain::decode_chain(bytes).ok()
    }

    /// It is a chain step with steps after it.
    pub fn has_chain(&self) -> bool {
        self.chain_at.is_some()
    }

    /// The previous chain step's result (MessagePack), on a chain step
    /// after the first.
    pub fn prev_result(&self) -> Option<&[u8]> {
        self.prev_result_at
            .and_then(|i| self.fields.get(i))
            .map(|(_, v)| v.as_slice())
    }

    /// The MessagePack payload.
    pub fn payload(&self) -> &[u8] {
        self.fields
            .get(self.payload_at)
            .map_or(&[][..], |(_, v)| v.as_slice())
    }

    /// The fields exactly as they were read.
    pub fn fields(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.fields
    }

    /// The fields exactly as they were read, by value.
    pub fn into_fields(self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.fields
    }

    /// The job id: the `id` field, else the stream entry id it was read from.
    pub fn job_id<'a>(&'a self, entry_id: &'a str) -> &'a str {
        self.id.as_deref().unwrap_or(entry_id)
    }

    /// First enqueue time: the `enqueued_at` field, else the entry id's time.
    pub fn enqueued_at(&self, entry_id: &str) -> Option<u64> {
        self.enqueued_at_ms.or_else(|| entry_id_ms(entry_id))
    }

    /// The fields of the next attempt, after attempt `self.attempt` (read
    /// from entry `entry_id`) failed with `error_class`/`error`: the same
    /// fields in the same order, with `attempt` increased, `id` and
    /// `enqueued_at` made explicit, `last_error_class`, `last_error` and
    /// `prev_entry` set. Fields are replaced where they are, added at the
    /// end when missing.
    pub fn next_attempt(
        &self,
        entry_id: &str,
        error_class: &str,
        error: &str,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = self.fields.clone();
        let mut set =
            |name: &str, value: String| match out.iter_mut().find(|(k, _)| k == name.as_bytes()) {
                Some((_, v)) => *v = value.into_bytes(),
                None => out.push((name.as_bytes().to_vec(), value.into_bytes())),
            };
        set(field::ID, self.job_id(entry_id).to_owned());
        set(field::ATTEMPT, self.attempt.saturating_add(1).to_string());
        if let Some(ms) = self.enqueued_at(entry_id) {
            set(field::ENQUEUED_AT, ms.to_string());
        }
        set(field::LAST_ERROR_CLASS, error_class.to_owned());
        set(field::LAST_ERROR, truncate_error(error));
        set(field::PREV_ENTRY, entry_id.to_owned());
        out
    }

    /// The fields of this same attempt, deferred (by a rate limit or a
    /// hold) before or instead of its run: the fields as read, with `id`
    /// and `enqueued_at` made explicit and `prev_entry` set to `entry_id`
    /// (so two deferred jobs with the same `id` and content stay two
    /// `scheduled` members). `attempt` and the last error are unchanged.
    pub fn deferred(&self, entry_id: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = self.fields.clone();
        let mut set =
            |name: &str, value: String| match out.iter_mut().find(|(k, _)| k == name.as_bytes()) {
                Some((_, v)) => *v = value.into_bytes(),
                None => out.push((name.as_bytes().to_vec(), value.into_bytes())),
            };
        set(field::ID, self.job_id(entry_id).to_owned());
        if let Some(ms) = self.enqueued_at(entry_id) {
            set(field::ENQUEUED_AT, ms.to_string());
        }
        set(field::PREV_ENTRY, entry_id.to_owned());
        out
    }
}

/// Encodes fields as the MessagePack map stored as a `scheduled` member:
/// names as MessagePack strings, values as binary.
pub fn fields_to_msgpack(fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let size: usize = fields.iter().map(|(k, v)| k.len() + v.len() + 10).sum();
    let mut buf = Vec::with_capacity(size + 5);
    // Writing into a Vec cannot fail; the results are ignored on purpose.
    let _ = rmp::encode::write_map_len(&mut buf, fields.len() as u32);
    for (name, value) in fields {
        let _ = rmp::encode::write_str_len(&mut buf, name.len() as u32);
        buf.extend_from_slice(name);
        let _ = rmp::encode::write_bin(&mut buf, value);
    }
    buf
}

/// The fields packed by [`fields_to_msgpack`] (and in a dead entry's
/// `raw`), back as name/value pairs in their order, duplicates kept. Names
/// and values may be MessagePack str or bin. `None` when `bytes` is not
/// exactly such a map (a `raw` that holds an undecodable member as it was).
pub fn msgpack_to_fields(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    fn take<'a>(rd: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if rd.len() < n {
            return None;
        }
        let (head, rest) = rd.split_at(n);
        *rd = rest;
        Some(head)
    }
    fn uint(rd: &mut &[u8], n: usize) -> Option<usize> {
        take(rd, n)?.iter().try_fold(0usize, |acc, b| {
            acc.checked_mul(256)?.checked_add(usize::from(*b))
        })
    }
    fn blob(rd: &mut &[u8]) -> Option<Vec<u8>> {
        let len = match *take(rd, 1)?.first()? {
            b @ 0xa0..=0xbf => usize::from(b - 0xa0),
            0xd9 | 0xc4 => uint(rd, 1)?,
            0xda | 0xc5 => uint(rd, 2)?,
            0xdb | 0xc6 => uint(rd, 4)?,
            _ => return None,
        };
        take(rd, len).map(<[u8]>::to_vec)
    }
    let mut rd = bytes;
    let count = match *take(&mut rd, 1)?.first()? {
        b @ 0x80..=0x8f => usize::from(b - 0x80),
        0xde => uint(&mut rd, 2)?,
        0xdf => uint(&mut rd, 4)?,
        _ => return None,
    };
    // Each pair takes at least two bytes: a header cannot make this loop
    // run longer than the input.
    if count > rd.len() / 2 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push((blob(&mut rd)?, blob(&mut rd)?));
    }
    rd.is_empty().then_some(out)
}

/// The unix ms part of a stream entry id (`1700000000000-0`).
pub fn entry_id_ms(entry_id: &str) -> Option<u64> {
    entry_id.split('-').next()?.parse().ok()
}

/// Checks that `bytes` hold exactly one well-formed MessagePack value.
pub fn check_msgpack(bytes: &[u8]) -> Result<(), String> {
    use serde::Deserialize;
    let mut de = rmp_serde::Deserializer::new(bytes);
    serde::de::IgnoredAny::deserialize(&mut de).map_err(|e| e.to_string())?;
    let rest = de.into_inner();
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("{} trailing bytes after the value", rest.len()))
    }
}

/// Cuts `message` to [`MAX_ERROR_LEN`] bytes on a character boundary.
pub fn truncate_error(message: &str) -> String {
    if message.len() <= MAX_ERROR_LEN {
        return message.to_owned();
    }
    let mut end = MAX_ERROR_LEN;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(pairs: &[(&str, &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
            .collect()
    }

    #[test]
    fn wire_version_one_or_absent_runs_any_other_is_unsupported_not_malformed() {
        let p = payload();
        let job = |v: Option<&[u8]>| {
            let mut fields = f(&[("type", b"t"), ("payload", &p)]);
            if let Some(v) = v {
                fields.push((b"wire_version".to_vec(), v.to_vec()));
            }
            Envelope::decode(fields)
        };
        assert!(job(None).is_ok());
        assert!(job(Some(b"1")).is_ok());
        for other in [&b"2"[..], b"01", b" 1", b"", b"\xff"] {
            let (bad, raw) = job(Some(other)).unwrap_err();
            assert!(bad.unsupported_version, "{other:?}: {bad}");
            assert_eq!(raw.len(), 3, "fields kept");
        }
        // A newer version may break v1's rules: still unsupported, not malformed.
        let newer = f(&[("wire_version", b"2"), ("type", b"t")]);
        assert!(Envelope::decode(newer).unwrap_err().0.unsupported_version);
        // Twice, even "1": a duplicate reserved field, malformed.
        let twice = f(&[
            ("type", b"t"),
            ("payload", &p),
            ("wire_version", b"1"),
            ("wire_version", b"1"),
        ]);
        let (bad, _) = Envelope::decode(twice).unwrap_err();
        assert!(
            !bad.unsupported_version && bad.detail.contains("more than once"),
            "{bad}"
        );
        // An empty type is named as such.
        let (bad, _) = Envelope::decode(f(&[("type", b""), ("payload", &p)])).unwrap_err();
        assert_eq!(bad.detail, "entry has an empty \"type\" field");
    }

    fn payload() -> Vec<u8> {
        rmp_serde::to_vec_named(&serde_json_like()).unwrap()
    }

    fn serde_json_like() -> std::collections::BTreeMap<String, u32> {
        [("n".to_owned(), 7)].into_iter().collect()
    }

    #[test]
    fn minimal_entry_decodes_with_defaults() {
        let env = Envelope::decode(f(&[("type", b"send_email"), ("payload", &payload())])).unwrap();
        assert_eq!(env.max_attempts, None);
        assert_eq!(env.job_type, "send_email");
        assert_eq!(env.attempt, 1);
        assert_eq!(env.job_id("1700000000000-3"), "1700000000000-3");
        assert_eq!(env.enqueued_at("1700000000000-3"), Some(1_700_000_000_000));
    }

    #[test]
    fn fields_are_kept_exactly_and_retries_change_only_what_jobstream_owns() {
        let p = payload();
        let fields = f(&[
            ("x-tenant", b"acme"),
            ("type", b"t"),
            ("payload", &p),
            ("attempt", b" 3"),
            ("traceparent", b"00-abc-def-01"),
            ("z", b"\xff\x00"),
            ("z", b"dup"),
        ]);
        let env = Envelope::decode(fields.clone()).unwrap();
        assert_eq!(env.attempt, 3);
        assert_eq!(env.payload(), p.as_slice());
        assert_eq!(env.fields(), fields.as_slice());
        let next = env.next_attempt("1700000000000-4", "retry", "boom");
        let want = f(&[
            ("x-tenant", b"acme"),
            ("type", b"t"),
            ("payload", &p),
            ("attempt", b"4"),
            ("traceparent", b"00-abc-def-01"),
            ("z", b"\xff\x00"),
            ("z", b"dup"),
            ("id", b"1700000000000-4"),
            ("enqueued_at", b"1700000000000"),
            ("last_error_class", b"retry"),
            ("last_error", b"boom"),
            ("prev_entry", b"1700000000000-4"),
        ]);
        assert_eq!(next, want);
        assert_eq!(env.into_fields(), fields);
    }

    #[test]
    fn malformed_entries_come_back_untouched_whatever_the_defect() {
        let p = payload();
        // Two `type` fields, the first not UTF-8: the case that once lost
        // every field of the dead entry.
        let cases = [
            f(&[("type", b"\xff"), ("type", b"t"), ("payload", &p)]),
            f(&[("type", b"t"), ("type", b"\xff"), ("payload", &p)]),
            f(&[("type", b"t"), ("payload", &p), ("payload", &p)]),
            f(&[("type", b"t"), ("payload", &p), ("id", b"\xfe")]),
            f(&[("type", b"t"), ("payload", &p), ("prev_entry", b"\xfe")]),
            f(&[
                ("type", b"t"),
                ("payload", &p),
                ("attempt", b"1"),
                ("attempt", b"1"),
            ]),
        ];
        for fields in cases {
            let (_, back) = Envelope::decode(fields.clone()).unwrap_err();
            assert_eq!(back, fields);
        }
        let wide: Vec<_> = (0..=MAX_FIELDS)
            .map(|i| (format!("f{i}").into_bytes(), b"v".to_vec()))
            .chain(f(&[("type", b"t"), ("payload", &p)]))
            .collect();
        let (bad, back) = Envelope::decode(wide.clone()).unwrap_err();
        assert!(bad.detail.contains("at most 1000"), "{bad}");
        // 1000 fields of its own plus all six of the worker's: fine.
        let at_limit: Vec<_> = (0..MAX_FIELDS - 2)
            .map(|i| (format!("f{i}").into_bytes(), b"v".to_vec()))
            .chain(f(&[("type", b"t"), ("payload", &p)]))
            .chain(
                WORKER_FIELDS
                    .iter()
                    .map(|n| (n.as_bytes().to_vec(), b"1".to_vec())),
            )
            .collect();
        let env = Envelope::decode(at_limit).unwrap();
        assert_eq!(env.next_attempt("1-1", "c", "m").len(), MAX_ENTRY_FIELDS);
        assert_eq!(back, wide);
    }

    #[test]
    fn decode_knows_every_job_field_by_name() {
        // A field decode did not know would be an extra field, allowed twice.
        let p = payload();
        for name in JOB_FIELDS {
            let mut fields = f(&[("type", b"t"), ("payload", &p)]);
            let value: Vec<u8> = match *name {
                field::ON_DEADLINE => b"dead".to_vec(),
                field::UNIQUE_FOR => b"done".to_vec(),
                field::CHAIN => crate::chain::encode_chain(&[]),
                _ => b"1".to_vec(),
            };
            fields.push((name.as_bytes().to_vec(), value.clone()));
            fields.push((name.as_bytes().to_vec(), value));
            let (bad, _) = Envelope::decode(fields).unwrap_err();
            assert!(bad.detail.contains("more than once"), "{name}: {bad}");
        }
        assert_eq!(
            reserved_names().count(),
            JOB_FIELDS.len() + DEAD_CONTEXT.len()
        );
    }

    #[test]
    fn producer_overrides_are_capped() {
        let p = payload();
        let env = Envelope::decode(f(&[
            ("type", b"t"),
            ("payload", &p),
            ("max_attempts", b"4000000000"),
            ("timeout_ms", b"18446744073709551615"),
        ]))
        .unwrap();
        assert_eq!(env.max_attempts, Some(MAX_ATTEMPTS_CAP));
        assert_eq!(env.timeout_ms, Some(MAX_TIMEOUT_MS));
        let env = Envelope::decode(f(&[
            ("type", b"t"),
            ("payload", &p),
            ("max_attempts", b"0"),
            ("timeout_ms", b"0"),
        ]))
        .unwrap();
        assert_eq!(env.max_attempts, Some(1));
        assert_eq!(env.timeout_ms, None);
    }

    #[test]
    fn scheduled_member_is_a_msgpack_map_of_the_fields() {
        let fields = f(&[("type", b"t"), ("payload", &[0x90]), ("attempt", b"2")]);
        let packed = fields_to_msgpack(&fields);
        let map: std::collections::BTreeMap<String, serde_bytes_like::Bytes> =
            rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(map["type"].0, b"t");
        assert_eq!(map["payload"].0, vec![0x90]);
        assert_eq!(map["attempt"].0, b"2");
    }

    /// Minimal bytes wrapper so the test needs no extra crate.
    mod serde_bytes_like {
        pub struct Bytes(pub Vec<u8>);
        impl<'de> serde::Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Bytes, E> {
                        Ok(Bytes(v.as_bytes().to_vec()))
                    }
                }
                d.deserialize_any(V)
            }
        }
    }

    #[test]
    fn packed_fields_unpack_exactly() {
        let fields = f(&[("type", b"t"), ("x", b"\xff\x00"), ("x", b""), ("", b"v")]);
        assert_eq!(msgpack_to_fields(&fields_to_msgpack(&fields)), Some(fields));
        for bad in [
            &b""[..],
            b"\xc1",
            b"\x81\xa1a",
            b"\xdf\xff\xff\xff\xff",
            b"\x80\x00",
        ] {
            assert_eq!(msgpack_to_fields(bad), None);
        }
    }

    #[test]
    fn errors_are_truncated_on_char_boundaries() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let cut = truncate_error(&long);
        assert!(cut.len() <= MAX_ERROR_LEN + '…'.len_utf8());
        assert_eq!(truncate_error("short"), "short");
    }
}
