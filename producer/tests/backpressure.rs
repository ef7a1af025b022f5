#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Backpressure and load shedding (docs/flow-control.md): limits on the
//! undelivered backlog and on the oldest undelivered job's age, with the
//! policies reject, shed (dropped or kept in dead) and wait; the books
//! balance after shedding and a delivered entry is never shed.

use std::time::{Duration, Instant};

use jobstream_producer::inspect::{BooksStatus, Inspector};
use jobstream_producer::{Error, NewJob, OverflowPolicy, Producer, ProducerOptions, QueueLimits};
use jobstream_testkit::{RedisServer, unique_queue};
use redis::aio::MultiplexedConnection;

async fn conn(server: &RedisServer) -> MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

fn ready(q: &str) -> String {
    format!("jobstream:{{{q}}}:ready")
}

async fn xlen(c: &mut MultiplexedConnection, key: &str) -> u64 {
    redis::cmd("XLEN").arg(key).query_async(c).await.unwrap()
}

/// Every entry of a stream: (entry id, fields).
async fn entries(
    c: &mut MultiplexedConnection,
    key: &str,
) -> Vec<(String, Vec<(String, Vec<u8>)>)> {
    let raw: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(c)
        .await
        .unwrap();
    raw.into_iter()
        .map(|(id, f)| {
            let pairs = f
                .chunks(2)
                .map(|p| (String::from_utf8_lossy(&p[0]).into_owned(), p[1].clone()))
                .collect();
            (id, pairs)
        })
        .collect()
}

fn field<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// The job ids (`id` field) of the entries of `ready`, in order.
async fn ready_job_ids(c: &mut MultiplexedConnection, q: &str) -> Vec<String> {
    entries(c, &ready(q))
        .await
        .iter()
        .map(|(_, f)| String::from_utf8_lossy(field(f, "id").unwrap()).into_owned())
        .collect()
}

/// Delivers `n` entries to consumer `c1` of group `workers` (as a worker's
/// fetch does); returns their entry ids.
async fn deliver(c: &mut MultiplexedConnection, q: &str, n: usize) -> Vec<String> {
    let _: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(ready(q))
        .arg("workers")
        .arg("0")
        .arg("MKSTREAM")
        .query_async(c)
        .await;
    if n == 0 {
        // COUNT 0 would deliver everything.
        return Vec::new();
    }
    let v: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("workers")
        .arg("c1")
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(ready(q))
        .arg(">")
        .query_async(c)
        .await
        .unwrap();
    let mut ids = Vec::new();
    collect_ids(&v, &mut ids);
    ids
}

fn collect_ids(v: &redis::Value, out: &mut Vec<String>) {
    // Entry ids are the only bulk strings of the form digits-digits that
    // sit first in a two-element array whose second element is an array.
    match v {
        redis::Value::Array(items) | redis::Value::Set(items) => {
            if let [redis::Value::BulkString(id), redis::Value::Array(_)] = items.as_slice() {
                let id = String::from_utf8_lossy(id).into_owned();
                if id.contains('-') && id.chars().all(|c| c.is_ascii_digit() || c == '-') {
                    out.push(id);
                    return;
                }
            }
            for i in items {
                collect_ids(i, out);
            }
        }
        redis::Value::Map(pairs) => {
            for (_, v) in pairs {
                collect_ids(v, out);
            }
        }
        _ => {}
    }
}

fn job(q: &str, i: u64) -> NewJob {
    NewJob::new("work", &i).unwrap().queue(q)
}

async fn producer(server: &RedisServer) -> Producer {
    Producer::connect(&server.url()).await.unwrap()
}

async fn assert_books(inspector: &Inspector, q: &str) {
    let books = inspector.books(q).await.unwrap();
    assert_eq!(books.status, BooksStatus::Ok, "{books:?}");
}

#[tokio::test]
async fn reject_refuses_at_max_ready_with_the_depth_and_enqueues_nothing() {
    let server = RedisServer::start();
    let q = unique_queue("bp-reject");
    let mut c = conn(&server).await;
    let p = producer(&server).await;
    let inspector = p.inspector();
    inspector
        .set_limits(&q, &QueueLimits::default().max_ready(3))
        .await
        .unwrap();
    let p = producer(&server).await; // no cached "no limits"
    for i in 0..3 {
        p.push(job(&q, i)).await.unwrap();
    }
    let err = p.push(job(&q, 3)).await.unwrap_err();
    match &err {
        Error::QueueFull {
            queue,
            depth,
            limit,
            ..
        } => {
            assert_eq!((queue.as_str(), *depth, *limit), (q.as_str(), 3, Some(3)));
        }
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert!(err.to_string().contains("is full"), "{err}");
    assert_eq!(xlen(&mut c, &ready(&q)).await, 3);
    // A batch that does not fit is refused whole.
    let err = p
        .enqueue_many(&q, vec![job(&q, 4), job(&q, 5)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueFull { depth: 3, .. }), "{err:?}");
    assert_eq!(xlen(&mut c, &ready(&q)).await, 3);
    // Delivered jobs are not backlog: two fetched make room for two.
    assert_eq!(deliver(&mut c, &q, 2).await.len(), 2);
    p.enqueue_many(&q, vec![job(&q, 6), job(&q, 7)])
        .await
        .unwrap();
    assert!(p.push(job(&q, 8)).await.is_err());
    let stats = inspector.stats(&q).await.unwrap();
    assert_eq!((stats.rejected, stats.shed, stats.ready), (4, 0, 3));
    assert_eq!(stats.limits.as_ref().and_then(|l| l.max_ready), Some(3));
    assert_books(&inspector, &q).await;
}

#[tokio::test]
async fn the_age_limit_rejects_while_the_oldest_undelivered_job_is_older() {
    let server = RedisServer::start();
    let q = unique_queue("bp-age");
    let mut c = conn(&server).await;
    // A job that entered ready at unix ms 1000: very old.
    let _: String = redis::cmd("XADD")
        .arg(ready(&q))
        .arg("1000-0")
        .arg("type")
        .arg("work")
        .arg("payload")
        .arg(&b"\x01"[..])
        .arg("id")
        .arg("old")
        .query_async(&mut c)
        .await
        .unwrap();
    let p = producer(&server).await;
    let inspector = p.inspector();
    inspector
        .set_limits(
            &q,
            &QueueLimits::default()
                .max_age(Duration::from_secs(60))
                .policy(OverflowPolicy::Reject),
        )
        .await
        .unwrap();
    let p = producer(&server).await;
    match p.push(job(&q, 1)).await {
        Err(Error::QueueFull {
            oldest_age_ms,
            max_age_ms,
            limit,
            ..
        }) => {
            assert!(oldest_age_ms > 60_000, "{oldest_age_ms}");
            assert_eq!((max_age_ms, limit), (Some(60_000), None));
        }
        other => panic!("expected QueueFull, got {other:?}"),
    }
    assert_eq!(xlen(&mut c, &ready(&q)).await, 1);
    // Once a worker holds it, it is no longer undelivered: jobs go in.
    deliver(&mut c, &q, 1).await;
    p.push(job(&q, 2)).await.unwrap();
    assert_eq!(xlen(&mut c, &ready(&q)).await, 2);
    assert_eq!(inspector.stats(&q).await.unwrap().rejected, 1);
}

/// A small deterministic generator for the seeded cases.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test]
async fn shed_keeps_the_newest_undelivered_jobs_and_never_a_delivered_one() {
    let server = RedisServer::start();
    let mut c = conn(&server).await;
    for seed in 1..=6u64 {
        let mut rng = Lcg(seed);
        let max_ready = 1 + rng.below(6);
        let before = rng.below(8);
        let delivered = rng.below(before + 1);
        let after = 1 + rng.below(10);
        let to_dead = seed % 2 == 0;
        let case = format!(
            "seed {seed}: max_ready {max_ready}, {before} before ({delivered} delivered), {after} after, to_dead {to_dead}"
        );
        let q = unique_queue("bp-shed");
        let p = producer(&server).await;
        // Jobs enqueued before the limits, some of them delivered.
        for i in 0..before {
            p.push(job(&q, i)).await.unwrap();
        }
        let held = deliver(&mut c, &q, delivered as usize).await;
        assert_eq!(held.len() as u64, delivered, "{case}");
        let inspector = p.inspector();
        inspector
            .set_limits(
                &q,
                &QueueLimits::default()
                    .max_ready(max_ready)
                    .policy(OverflowPolicy::Shed)
                    .shed_to_dead(to_dead),
            )
            .await
            .unwrap();
        let p = producer(&server).await;
        let mut ids = ready_job_ids(&mut c, &q).await;
        // One at a time and in a batch.
        for i in 0..after {
            if i % 3 == 2 {
                let a = p
                    .enqueue_many(&q, vec![job(&q, 100 + i), job(&q, 200 + i)])
                    .await
                    .unwrap();
                ids.extend(a);
            } else {
                ids.push(p.push(job(&q, 100 + i)).await.unwrap());
            }
        }
        let total = ids.len() as u64;
        let undelivered_total = total - delivered;
        let kept = undelivered_total.min(max_ready);
        let shed = undelivered_total - kept;
        // Expected in ready: the delivered ones, then the newest `kept`.
        let mut want: Vec<String> = ids[..delivered as usize].to_vec();
        want.extend(ids[(total - kept) as usize..].iter().cloned());
        assert_eq!(ready_job_ids(&mut c, &q).await, want, "{case}");
        // Every delivered entry is still there, pending.
        let in_ready: Vec<String> = entries(&mut c, &ready(&q))
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for h in &held {
            assert!(in_ready.contains(h), "{case}: delivered {h} was shed");
        }
        let stats = inspector.stats(&q).await.unwrap();
        assert_eq!(stats.shed, shed, "{case}");
        assert_eq!(stats.rejected, 0, "{case}");
        assert_eq!(stats.ready, kept, "{case}");
        let dead = entries(&mut c, &format!("jobstream:{{{q}}}:dead")).await;
        if to_dead {
            assert_eq!(stats.dead_total, shed, "{case}");
            assert_eq!(stats.discarded, 0, "{case}");
            assert_eq!(dead.len() as u64, shed, "{case}");
            let dead_ids: Vec<String> = dead
                .iter()
                .map(|(_, f)| String::from_utf8_lossy(field(f, "id").unwrap()).into_owned())
                .collect();
            let shed_ids: Vec<String> = ids[delivered as usize..(total - kept) as usize].to_vec();
            assert_eq!(dead_ids, shed_ids, "{case}");
            for (_, f) in &dead {
                assert_eq!(field(f, "reason"), Some(&b"shed"[..]), "{case}");
                assert_eq!(field(f, "queue"), Some(q.as_bytes()), "{case}");
                assert!(field(f, "payload").is_some(), "{case}");
            }
            let listed = inspector.dead_list(&q, &Default::default()).await.unwrap();
            assert!(listed.iter().all(|d| d.reason == "shed"), "{case}");
        } else {
            assert_eq!(stats.discarded, shed, "{case}");
            assert_eq!(stats.dead_total, 0, "{case}");
            assert!(dead.is_empty(), "{case}");
        }
        assert_books(&inspector, &q).await;
    }
}

#[tokio::test]
async fn shed_drops_jobs_older_than_max_age() {
    let server = RedisServer::start();
    let q = unique_queue("bp-shed-age");
    let mut c = conn(&server).await;
    for ms in [1000, 2000, 3000] {
        let _: String = redis::cmd("XADD")
            .arg(ready(&q))
            .arg(format!("{ms}-0"))
            .arg("type")
            .arg("work")
            .arg("payload")
            .arg(&b"\x01"[..])
            .query_async(&mut c)
            .await
            .unwrap();
    }
    let p = producer(&server).await;
    let inspector = p.inspector();
    inspector
        .set_limits(
            &q,
            &QueueLimits::default()
                .max_age(Duration::from_secs(60))
                .policy(OverflowPolicy::Shed)
                .shed_to_dead(true),
        )
        .await
        .unwrap();
    let p = producer(&server).await;
    let id = p.push(job(&q, 1)).await.unwrap();
    assert_eq!(ready_job_ids(&mut c, &q).await, vec![id]);
    let stats = inspector.stats(&q).await.unwrap();
    assert_eq!((stats.shed, stats.dead_total), (3, 3));
    // Entries without an id get their entry id in dead.
    let dead = entries(&mut c, &format!("jobstream:{{{q}}}:dead")).await;
    assert_eq!(field(&dead[0].1, "id"), Some(&b"1000-0"[..]));
    assert_eq!(field(&dead[0].1, "enqueued_at"), Some(&b"1000"[..]));
    assert_books(&inspector, &q).await;
}

#[tokio::test]
async fn wait_succeeds_once_the_queue_drains_and_times_out_otherwise() {
    let server = RedisServer::start();
    let q = unique_queue("bp-wait");
    let mut c = conn(&server).await;
    let p = producer(&server).await;
    let inspector = p.inspector();
    inspector
        .set_limits(
            &q,
            &QueueLimits::default()
                .max_ready(2)
                .policy(OverflowPolicy::Wait),
        )
        .await
        .unwrap();
    let p = Producer::with_options(
        &server.url(),
        ProducerOptions::default().backpressure_wait(Duration::from_secs(5)),
    )
    .unwrap();
    p.push(job(&q, 0)).await.unwrap();
    p.push(job(&q, 1)).await.unwrap();
    // A "worker" fetches one job after 400 ms.
    let url = server.url();
    let q2 = q.clone();
    let drain = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut c = redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        deliver(&mut c, &q2, 1).await
    });
    let started = Instant::now();
    p.push(job(&q, 2)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(drain.await.unwrap().len(), 1);
    assert_eq!(xlen(&mut c, &ready(&q)).await, 3);
    assert_eq!(inspector.stats(&q).await.unwrap().rejected, 0);

    // Nothing drains: QueueFull after the wait, counted once.
    let p = Producer::with_options(
        &server.url(),
        ProducerOptions::default().backpressure_wait(Duration::from_millis(300)),
    )
    .unwrap();
    let started = Instant::now();
    let err = p.push(job(&q, 3)).await.unwrap_err();
    assert!(matches!(err, Error::QueueFull { depth: 2, .. }), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(xlen(&mut c, &ready(&q)).await, 3);
    assert_eq!(inspector.stats(&q).await.unwrap().rejected, 1);
}

#[tokio::test]
async fn a_queue_without_limits_enqueues_as_before_and_cleared_limits_stop_applying() {
    let server = RedisServer::start();
    let q = unique_queue("bp-none");
    let mut c = conn(&server).await;
    let p = producer(&server).await;
    let inspector = p.inspector();
    for i in 0..50 {
        p.push(job(&q, i)).await.unwrap();
    }
    p.enqueue_many(&q, (0..50).map(|i| job(&q, i)).collect())
        .await
        .unwrap();
    assert_eq!(xlen(&mut c, &ready(&q)).await, 100);
    let stats = inspector.stats(&q).await.unwrap();
    assert_eq!(
        (stats.rejected, stats.shed, stats.limits.clone()),
        (0, 0, None)
    );
    assert_eq!(inspector.limits(&q).await.unwrap(), None);

    let limits = QueueLimits::default().max_ready(10);
    inspector.set_limits(&q, &limits).await.unwrap();
    assert_eq!(inspector.limits(&q).await.unwrap(), Some(limits));
    let p = producer(&server).await;
    assert!(p.push(job(&q, 0)).await.is_err());
    assert!(inspector.clear_limits(&q).await.unwrap());
    // The admit script itself sees no limits at once, whatever the
    // producer cached.
    p.push(job(&q, 0)).await.unwrap();
    assert_eq!(xlen(&mut c, &ready(&q)).await, 101);
    assert!(!inspector.clear_limits(&q).await.unwrap());
    // Limits that cannot work are refused.
    assert!(
        inspector
            .set_limits(&q, &QueueLimits::default())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_limit_holds_across_concurrent_producers() {
    let server = RedisServer::start();
    let q = unique_queue("bp-fleet");
    let mut c = conn(&server).await;
    producer(&server)
        .await
        .inspector()
        .set_limits(&q, &QueueLimits::default().max_ready(50))
        .await
        .unwrap();
    // Eight producers (one process each, in a fleet) push 20 jobs each.
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let url = server.url();
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let p = Producer::connect(&url).await.unwrap();
            let mut ok = 0u64;
            for i in 0..20 {
                match p.push(job(&q, t * 100 + i)).await {
                    Ok(_) => ok += 1,
                    Err(Error::QueueFull { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            ok
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    assert_eq!(admitted, 50);
    assert_eq!(xlen(&mut c, &ready(&q)).await, 50);
    let stats = producer(&server).await.inspector().stats(&q).await.unwrap();
    assert_eq!(stats.rejected, 160 - 50);
}

#[tokio::test]
async fn wait_refuses_at_once_a_batch_larger_than_max_ready() {
    let server = RedisServer::start();
    let q = unique_queue("bp-wait-big");
    producer(&server)
        .await
        .inspector()
        .set_limits(
            &q,
            &QueueLimits::default()
                .max_ready(2)
                .policy(OverflowPolicy::Wait),
        )
        .await
        .unwrap();
    let p = Producer::with_options(
        &server.url(),
        ProducerOptions::default().backpressure_wait(Duration::from_secs(30)),
    )
    .unwrap();
    let started = Instant::now();
    let err = p
        .enqueue_many(&q, (0..3).map(|i| job(&q, i)).collect())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::QueueFull { depth: 0, .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(p.inspector().stats(&q).await.unwrap().rejected, 3);
}

#[tokio::test]
async fn shed_never_drops_a_job_whose_state_lives_elsewhere() {
    // A job of a group, one with a uniqueness key, one with a record: shed
    // would leave the group stopped, the key held, the record "ready" for
    // good. They stay; the plain jobs around them are shed.
    let server = RedisServer::start();
    let mut c = conn(&server).await;
    let q = unique_queue("bp-tracked");
    let p = producer(&server).await;
    let grouped = p.push(job(&q, 1).group("tenant").unwrap()).await.unwrap();
    let unique = p
        .push(
            job(&q, 2)
                .unique("k", jobstream_producer::Uniqueness::UntilDone)
                .unwrap(),
        )
        .await
        .unwrap();
    let recorded = p
        .push(job(&q, 3).keep_record(std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    let plain = p.push(job(&q, 4)).await.unwrap();
    let inspector = p.inspector();
    inspector
        .set_limits(
            &q,
            // The fifth job puts the backlog one over: the oldest job that
            // may be shed is the plain one behind the three kept.
            &QueueLimits::default()
                .max_ready(4)
                .policy(OverflowPolicy::Shed),
        )
        .await
        .unwrap();
    let p = producer(&server).await;
    let newest = p.push(job(&q, 5)).await.unwrap();
    let left = ready_job_ids(&mut c, &q).await;
    let (g, u, r, n) = (
        grouped.to_string(),
        unique.to_string(),
        recorded.to_string(),
        newest.to_string(),
    );
    assert_eq!(left, vec![g, u, r, n], "only the plain job {plain} is shed");
    let stats = inspector.stats(&q).await.unwrap();
    assert_eq!((stats.shed, stats.discarded), (1, 1), "{stats:?}");
    assert_books(&inspector, &q).await;
}

#[tokio::test]
async fn limits_that_are_not_whole_numbers_are_no_limits_for_every_producer() {
    // What Python writes for a float, or a hand: the Rust producer and
    // admit-4 read them the same way (no limit), so no producer is
    // limited while another is not.
    let server = RedisServer::start();
    let mut c = conn(&server).await;
    for bad in ["1000.0", "1e3", "0x2", " 2", "+2", "-1", "inf", "2.5"] {
        let q = unique_queue("bp-parse");
        let key = format!("jobstream:{{{q}}}:limits");
        let _: () = redis::cmd("HSET")
            .arg(&key)
            .arg("max_ready")
            .arg(bad)
            .arg("policy")
            .arg("reject")
            .query_async(&mut c)
            .await
            .unwrap();
        let p = producer(&server).await;
        assert_eq!(p.inspector().limits(&q).await.unwrap(), None, "{bad:?}");
        for i in 0..4 {
            p.push(job(&q, i)).await.unwrap();
        }
        // admit-4 called directly, as another language would.
        let script = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/admit-4.lua"
        ))
        .unwrap();
        let r: redis::Value = redis::cmd("EVAL")
            .arg(script)
            .arg(4)
            .arg(ready(&q))
            .arg(format!("jobstream:{{{q}}}:dead"))
            .arg(format!("jobstream:{{{q}}}:stats"))
            .arg(&key)
            .arg(&q)
            .arg("1")
            .arg(jobstream_core::now_ms())
            .arg(1)
            .arg(2)
            .arg("type")
            .arg("work")
            .arg("payload")
            .arg(rmp_serde::to_vec(&9u8).unwrap())
            .query_async(&mut c)
            .await
            .unwrap();
        let redis::Value::Array(items) = r else {
            panic!("{bad:?}: {r:?}")
        };
        assert_eq!(
            items.first(),
            Some(&redis::Value::Int(1)),
            "{bad:?}: admitted"
        );
        assert_eq!(xlen(&mut c, &ready(&q)).await, 5, "{bad:?}");
    }
}
