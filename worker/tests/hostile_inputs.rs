#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Hostile-input property test: a seeded generator writes what a hostile or
//! buggy producer could write straight into Redis — stream entries with
//! missing, empty, duplicated, non-UTF-8, oversized or reserved fields,
//! bad payloads and numbers at the edges, thousands of fields; and
//! `scheduled` members that are truncated, random, too wide, nested or
//! carry integers no script can render exactly — then lets a worker drain
//! the queue and checks the invariant:
//!
//! every job ends **processed** or **in `dead` with its fields exactly as
//! written** (or packed whole in `raw`); nothing is lost, nothing is stuck
//! (`ready`, the pending list and `scheduled` end empty), no panic.
//!
//! `JOBSTREAM_HOSTILE_CASES` sets the number of cases (CI runs the
//! default, 100,000; docs/failure-handling.md shows the 1,000,000 run) and
//! `JOBSTREAM_HOSTILE_SEED` the seed; a failure prints both.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use jobstream_core::envelope::fields_to_msgpack;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{JobContext, JobError, JobOptions, Limits, RetryPolicy, Worker};
use redis::AsyncCommands;

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// xorshift64*: deterministic, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max as u64 + 1) as usize;
        (0..n).map(|_| self.next() as u8).collect()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn f(name: &str, value: impl Into<Vec<u8>>) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.into())
}

fn payload(case: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    rmp::encode::write_map_len(&mut buf, 1).unwrap();
    rmp::encode::write_str(&mut buf, "case").unwrap();
    rmp::encode::write_uint(&mut buf, case).unwrap();
    buf
}

/// Wire-format fields written twice.
const DUPLICABLE: &[&str] = &["attempt", "id", "payload", "max_attempts"];

/// Field names a hostile producer might pick: reserved ones included.
const NAMES: &[&str] = &[
    "tenant",
    "x",
    "",
    "type",
    "payload",
    "id",
    "attempt",
    "enqueued_at",
    "max_attempts",
    "timeout_ms",
    "idempotency_key",
    "traceparent",
    "last_error",
    "prev_entry",
    "reason",
    "error",
    "raw",
    "queue",
    "deliveries",
];

/// A stream entry for case `case`. Every entry carries `case` first, so a
/// dead letter can be traced back; the rest is chosen to hurt.
fn hostile_entry(rng: &mut Rng, case: u64) -> Fields {
    let mut fields = vec![f("case", case.to_string())];
    let job_type = *rng.pick(&["ok", "ok", "ok", "flaky", "perm", "nobody-serves-this"]);
    match rng.below(14) {
        // Well-formed jobs, with a few extra fields.
        0..=4 => {
            fields.push(f("type", job_type));
            fields.push(f("payload", payload(case)));
            for i in 0..rng.below(4) {
                fields.push(f(&format!("extra{i}"), rng.bytes(12)));
            }
        }
        // Duplicate wire-format fields, one of them bad.
        5 => {
            let bad = rng
                .bytes(3)
                .into_iter()
                .map(|b| b | 0x80)
                .collect::<Vec<u8>>();
            fields.push(f("type", bad));
            fields.push(f("type", job_type));
            fields.push(f("payload", payload(case)));
        }
        6 => {
            fields.push(f("type", job_type));
            fields.push(f("payload", payload(case)));
            for _ in 0..2 {
                let name: &&str = rng.pick(DUPLICABLE);
                fields.push(f(name, "7"));
            }
        }
        // Missing, empty or undecodable parts.
        7 => match rng.below(4) {
            0 => fields.push(f("payload", payload(case))),
            1 => {
                fields.push(f("type", ""));
                fields.push(f("payload", payload(case)));
            }
            2 => fields.push(f("type", job_type)),
            _ => {
                fields.push(f("type", job_type));
                let mut p = payload(case);
                p.truncate(rng.below(p.len() as u64) as usize);
                p.extend(rng.bytes(3));
                fields.push(f("payload", p));
            }
        },
        // Numbers at the edges.
        8 => {
            fields.push(f("type", job_type));
            fields.push(f("payload", payload(case)));
            let name = *rng.pick(&["attempt", "max_attempts", "timeout_ms", "enqueued_at"]);
            let value = *rng.pick(&[
                "0",
                "1",
                "-1",
                " 3 ",
                "4294967295",
                "4294967296",
                "18446744073709551615",
                "18446744073709551616",
                "1e3",
                "",
                "x",
            ]);
            fields.push(f(name, value));
        }
        // Random names and binary values, reserved names included.
        9 | 10 => {
            fields.push(f("type", job_type));
            fields.push(f("payload", payload(case)));
            for _ in 0..rng.below(6) {
                let name = *rng.pick(NAMES);
                if name == "type" || name == "payload" {
                    continue;
                }
                fields.push(f(name, rng.bytes(20)));
            }
        }
        // Binary garbage names.
        11 => {
            fields.push(f("type", job_type));
            fields.push(f("payload", payload(case)));
            fields.push((rng.bytes(8), rng.bytes(8)));
        }
        // Wide: a few cases only, they are heavy.
        12 if rng.chance(10) => {
            fields.push(f("type", job_type));
            fields.push(f("payload", payload(case)));
            let width = 990 + rng.below(150);
            for i in 0..width {
                fields.push(f(&format!("w{i}"), "v"));
            }
        }
        _ => {
            fields.push(f("type", job_type));
            fields.push(f("payload", payload(case)));
            fields.push(f("dup", "1"));
            fields.push(f("dup", "2"));
        }
    }
    fields
}

/// A `scheduled` member: valid maps (which carry `case`), and the shapes
/// that once made a script lose a job.
fn hostile_member(rng: &mut Rng, case: u64) -> Vec<u8> {
    let job = |rng: &mut Rng| {
        let mut fields = vec![
            f("case", case.to_string()),
            f("type", *rng.pick(&["ok", "flaky", "perm"])),
            f("payload", payload(case)),
            f("id", format!("member-{case}")),
        ];
        for i in 0..rng.below(3) {
            fields.push(f(&format!("extra{i}"), rng.bytes(10)));
        }
        fields
    };
    match rng.below(10) {
        0..=4 => fields_to_msgpack(&job(rng)),
        5 => {
            let mut m = fields_to_msgpack(&job(rng));
            m.truncate(1 + rng.below(m.len() as u64 - 1) as usize);
            m
        }
        6 => {
            // Random bytes behind 0xc1, a byte MessagePack never uses, so
            // the member is garbage for certain (random maps that happen to
            // decode are the Lua property test's business, in
            // core/tests/scripts.rs, checked against a reference decoder).
            let mut m = vec![0xc1];
            m.extend(rng.bytes(40));
            m.extend(case.to_be_bytes());
            m
        }
        7 if rng.chance(20) => {
            let mut fields = job(rng);
            for i in 0..(1000 + rng.below(100)) {
                fields.push(f(&format!("w{i}"), "v"));
            }
            fields_to_msgpack(&fields)
        }
        8 => {
            // A map holding an integer beyond 2^53, or a nested map.
            let mut buf = Vec::new();
            rmp::encode::write_map_len(&mut buf, 3).unwrap();
            rmp::encode::write_str(&mut buf, "case").unwrap();
            rmp::encode::write_str(&mut buf, &case.to_string()).unwrap();
            rmp::encode::write_str(&mut buf, "type").unwrap();
            rmp::encode::write_str(&mut buf, "ok").unwrap();
            rmp::encode::write_str(&mut buf, "n").unwrap();
            if rng.chance(50) {
                rmp::encode::write_u64(&mut buf, u64::MAX - rng.below(1000)).unwrap();
            } else {
                rmp::encode::write_map_len(&mut buf, 0).unwrap();
            }
            buf
        }
        _ => {
            // A map header that claims far more pairs than there are bytes.
            let mut buf = vec![0xdf, 0xff, 0xff, 0xff, 0xf0];
            buf.extend(case.to_be_bytes());
            buf
        }
    }
}

/// Reads a MessagePack map of str/bin pairs, keeping order and duplicates.
fn read_map(bytes: &[u8]) -> Option<Fields> {
    fn take(rd: &mut &[u8], n: usize) -> Option<u64> {
        if rd.len() < n {
            return None;
        }
        let (head, rest) = rd.split_at(n);
        *rd = rest;
        Some(head.iter().fold(0, |acc, b| acc << 8 | u64::from(*b)))
    }
    fn read_blob(rd: &mut &[u8]) -> Option<Vec<u8>> {
        let marker = rmp::decode::read_marker(rd).ok()?;
        use rmp::Marker::*;
        let len = match marker {
            FixStr(n) => n as usize,
            Str8 | Bin8 => take(rd, 1)? as usize,
            Str16 | Bin16 => take(rd, 2)? as usize,
            Str32 | Bin32 => take(rd, 4)? as usize,
            _ => return None,
        };
        if rd.len() < len {
            return None;
        }
        let (v, rest) = rd.split_at(len);
        *rd = rest;
        Some(v.to_vec())
    }
    let mut rd = bytes;
    let n = rmp::decode::read_map_len(&mut rd).ok()?;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push((read_blob(&mut rd)?, read_blob(&mut rd)?));
    }
    rd.is_empty().then_some(out)
}

fn value<'a>(fields: &'a Fields, name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

const CONTEXT: usize = 7; // reason, error_class, error, deliveries, failed_at, worker, queue

/// The job's own fields of a dead entry: without the failure context and
/// without the `id`/`enqueued_at` the worker added when they were missing.
fn job_part(dead: &Fields, original: &Fields) -> Fields {
    let mut job: Fields = dead[..dead.len().saturating_sub(CONTEXT)].to_vec();
    for name in ["enqueued_at", "id"] {
        let had = original.iter().any(|(k, _)| k == name.as_bytes());
        if !had && job.last().is_some_and(|(k, _)| k == name.as_bytes()) {
            job.pop();
        }
    }
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_job_ends_processed_or_dead_with_its_fields() {
    let cases: u64 = std::env::var("JOBSTREAM_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let seed: u64 = std::env::var("JOBSTREAM_HOSTILE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_2026);
    let ctx = format!("JOBSTREAM_HOSTILE_SEED={seed} JOBSTREAM_HOSTILE_CASES={cases}");
    let server = RedisServer::start();
    let queue = unique_queue("hostile");
    let base = format!("jobstream:{{{queue}}}");
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();

    // Write every case straight into Redis, as a hostile producer would.
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut entries: HashMap<u64, Fields> = HashMap::new();
    let mut members: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut pipe = redis::pipe();
    for case in 0..cases {
        if rng.chance(25) {
            let member = hostile_member(&mut rng, case);
            if members.contains_key(&member) {
                continue; // identical bytes are one member: not a new job
            }
            pipe.zadd(format!("{base}:scheduled"), &member, rng.below(1000) as i64);
            members.insert(member, case);
        } else {
            let fields = hostile_entry(&mut rng, case);
            let mut cmd = redis::cmd("XADD");
            cmd.arg(format!("{base}:ready")).arg("*");
            for (k, v) in &fields {
                cmd.arg(k.as_slice()).arg(v.as_slice());
            }
            pipe.add_command(cmd).ignore();
            entries.insert(case, fields);
        }
        if case % 500 == 499 {
            pipe.query_async::<()>(&mut conn).await.unwrap();
            pipe = redis::pipe();
        }
    }
    if !cases.is_multiple_of(500) {
        pipe.query_async::<()>(&mut conn).await.unwrap();
    }

    let processed: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let handler = |processed: Arc<Mutex<HashMap<u64, u32>>>| {
        move |_: rmp_value::Any, job: JobContext| {
            let processed = processed.clone();
            async move {
                let case = job
                    .field("case")
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.parse::<u64>().ok());
                match job.job_type() {
                    "perm" => return Err(JobError::permanent("no")),
                    "flaky" if job.attempt() == 1 => return Err(JobError::retry("once")),
                    _ => {}
                }
                if let Some(case) = case {
                    *processed.lock().unwrap().entry(case).or_default() += 1;
                }
                Ok(())
            }
        }
    };
    let options = JobOptions::default().retry(RetryPolicy::exponential(
        3,
        Duration::from_millis(1),
        Duration::from_millis(5),
    ));
    let w = start(
        Worker::builder(&server.url())
            .queue(&queue)
            .concurrency(100)
            .timings(fast_timings())
            .limits(Limits::default().dead_max_len(0))
            .default_options(options)
            .handle("ok", handler(processed.clone()))
            .handle("flaky", handler(processed.clone())),
    );

    // Drained: nothing ready, in flight or scheduled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60 + cases / 500);
    loop {
        let s = stats(&server, &queue).await;
        if s.ready == 0 && s.in_flight == 0 && s.scheduled == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck: {s:?} ({ctx})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    w.stop().await;
    let s = stats(&server, &queue).await;
    assert_eq!(
        (s.ready, s.in_flight, s.scheduled),
        (0, 0, 0),
        "{s:?} ({ctx})"
    );
    let xlen: u64 = conn.xlen(format!("{base}:ready")).await.unwrap();
    assert_eq!(xlen, 0, "entries left in ready ({ctx})");

    // Every dead letter traced back to its case, fields checked.
    let mut dead_cases: HashMap<u64, u32> = HashMap::new();
    let mut dead_members: HashSet<Vec<u8>> = HashSet::new();
    let mut start_id = "-".to_owned();
    loop {
        let page = range(&mut conn, &format!("{base}:dead"), &start_id, 1000).await;
        let Some((last, _)) = page.last() else { break };
        start_id = format!("({last}");
        for (id, fields) in page {
            if let Some(raw) = value(&fields, "raw") {
                if let Some(case) = members.get(raw) {
                    dead_members.insert(raw.to_vec());
                    *dead_cases.entry(*case).or_default() += 1;
                    continue;
                }
                let packed = read_map(raw)
                    .unwrap_or_else(|| panic!("raw of {id} is neither a member nor a map ({ctx})"));
                let case = case_of(&packed).unwrap_or_else(|| panic!("raw without case ({ctx})"));
                *dead_cases.entry(case).or_default() += 1;
                if let Some(original) = entries.get(&case) {
                    assert_eq!(&packed, original, "raw of case {case} differs ({ctx})");
                }
                continue;
            }
            let case =
                case_of(&fields).unwrap_or_else(|| panic!("dead entry {id} without case ({ctx})"));
            *dead_cases.entry(case).or_default() += 1;
            if let Some(original) = entries.get(&case) {
                let job = job_part(&fields, original);
                // A retried job died on a later attempt: its fields were
                // rewritten by the worker (attempt, last_error...), so only
                // first-attempt deaths compare byte for byte.
                if value(&fields, "last_error").is_none() || value(original, "last_error").is_some()
                {
                    assert_eq!(
                        &job, original,
                        "dead case {case} lost or changed fields ({ctx})"
                    );
                }
            }
        }
    }
    let processed = processed.lock().unwrap().clone();
    let mut lost = Vec::new();
    for case in entries.keys().chain(members.values()) {
        let p = processed.get(case).copied().unwrap_or(0);
        let d = dead_cases.get(case).copied().unwrap_or(0);
        if p + d == 0 {
            lost.push(*case);
        }
        assert!(d <= 1, "case {case} dead {d} times ({ctx})");
        assert!(
            p == 0 || d == 0,
            "case {case} both processed and dead ({ctx})"
        );
    }
    assert!(
        lost.is_empty(),
        "{} jobs lost, e.g. {:?} ({ctx})",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    eprintln!(
        "hostile inputs: {} entries, {} members, {} processed, {} dead ({ctx})",
        entries.len(),
        members.len(),
        processed.len(),
        dead_cases.values().sum::<u32>()
    );
}

fn case_of(fields: &Fields) -> Option<u64> {
    std::str::from_utf8(value(fields, "case")?)
        .ok()?
        .parse()
        .ok()
}

/// Up to `count` entries of `key` from `start`, fields as raw bytes, in
/// order, duplicates kept.
async fn range(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    start: &str,
    count: usize,
) -> Vec<(String, Fields)> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(key)
        .arg(start)
        .arg("+")
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .unwrap();
    let redis::Value::Array(entries) = v else {
        panic!("{v:?}")
    };
    let mut out = Vec::new();
    for entry in entries {
        let redis::Value::Array(parts) = entry else {
            panic!()
        };
        let mut parts = parts.into_iter();
        let (Some(redis::Value::BulkString(id)), Some(redis::Value::Array(flat))) =
            (parts.next(), parts.next())
        else {
            panic!("odd entry")
        };
        let mut fields = Vec::new();
        let mut it = flat.into_iter();
        while let (Some(redis::Value::BulkString(k)), Some(redis::Value::BulkString(v))) =
            (it.next(), it.next())
        {
            fields.push((k, v));
        }
        out.push((String::from_utf8(id).unwrap(), fields));
    }
    out
}

/// Any MessagePack value: the handlers do not look at the payload.
mod rmp_value {
    #[derive(Debug)]
    pub struct Any;
    impl<'de> serde::Deserialize<'de> for Any {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            serde::de::IgnoredAny::deserialize(d).map(|_| Any)
        }
    }
}
