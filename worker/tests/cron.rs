#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Periodic jobs against a real server: five workers declaring the same
//! every-second schedule enqueue each tick exactly once, with no gap, even
//! when one of them is killed half-way; after every worker was stopped for
//! three ticks, the missed-fire policy decides what a restarted worker
//! fires (skip: none, run once: the latest, run each: up to its bound);
//! `cron list` shows the schedule; a worker without schedules writes
//! nothing for them; bad schedules are errors at build time.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use jobstream_producer::inspect::Inspector;
use jobstream_testkit::{RedisServer, unique_queue};
use jobstream_worker::{Missed, Schedule, Worker, WorkerBuilder};

/// A worker serving a queue of its own (so the ticks' jobs stay in their
/// queue's `ready`, to be counted), declaring `schedules`.
fn worker(server: &RedisServer, schedules: Vec<Schedule>) -> WorkerBuilder {
    let mut builder = Worker::builder(&server.url())
        .timings(fast_timings())
        .queue(&unique_queue("cron-own"))
        .handle("noop", |_: u32, _| async { Ok(()) });
    for s in schedules {
        builder = builder.schedule(s);
    }
    builder
}

fn schedule(name: &str, expr: &str, queue: &str, missed: Missed) -> Schedule {
    Schedule::cron(name, expr)
        .unwrap()
        .enqueue(queue, "tick", &serde_json::json!({ "schedule": name }))
        .unwrap()
        .missed(missed)
}

/// The job ids in `queue`'s ready stream, in order.
async fn ids(server: &RedisServer, queue: &str) -> Vec<String> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(format!("jobstream:{{{queue}}}:ready"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    reply
        .ids
        .iter()
        .map(|e| e.get::<String>("id").expect("an id field"))
        .collect()
}

/// The ticks (unix ms) of schedule `name`'s jobs in `queue`, in order.
async fn ticks(server: &RedisServer, queue: &str, name: &str) -> Vec<u64> {
    let prefix = format!("cron:{name}:");
    ids(server, queue)
        .await
        .iter()
        .map(|id| {
            id.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{id} is not a job of {name}"))
                .parse()
                .unwrap()
        })
        .collect()
}

async fn last_fired(server: &RedisServer, queue: &str, name: &str) -> Option<u64> {
    store(server, queue).cron_last(name).await.unwrap()
}

/// Waits until schedule `name` has fired a tick after `after` (or any).
async fn wait_fired(server: &RedisServer, queue: &str, name: &str, after: Option<u64>) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(t) = last_fired(server, queue, name).await
            && after.is_none_or(|a| t > a)
        {
            return t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} fired nothing after {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn sleep_until_ms(at: u64) {
    let now = jobstream_core::now_ms();
    if at > now {
        tokio::time::sleep(Duration::from_millis(at - now)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_workers_fire_each_tick_once_even_when_one_is_killed() {
    let server = RedisServer::start();
    let queue = unique_queue("cron-fleet");
    let name = "every-second";
    let mut fleet: Vec<Running> = (0..5)
        .map(|_| {
            start(worker(
                &server,
                vec![schedule(name, "*/1 * * * * *", &queue, Missed::Skip)],
            ))
        })
        .collect();
    let first = wait_fired(&server, &queue, name, None).await;
    sleep_until_ms(first + 2_500).await;
    // Killed: its tasks are dropped where they stand, nothing graceful.
    let killed = fleet.remove(2);
    killed.task.abort();
    let _ = killed.task.await;
    sleep_until_ms(first + 5_500).await;
    for w in fleet {
        w.stop().await;
    }

    let all = ticks(&server, &queue, name).await;
    let distinct: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "a tick was enqueued twice: {all:?}"
    );
    assert!(all.len() >= 5, "too few ticks: {all:?}");
    assert!(
        all.windows(2).all(|w| w[1] == w[0] + 1_000),
        "ticks must be consecutive seconds, with no gap: {all:?}"
    );
    assert!(all.iter().all(|t| t % 1_000 == 0), "{all:?}");
    assert_eq!(all[0], first);
    assert!(
        *all.last().unwrap() >= first + 5_000,
        "ticks stopped after the kill: {all:?}"
    );
    assert_eq!(last_fired(&server, &queue, name).await, all.last().copied());

    // Listed, with its last tick and the next one.
    let inspector = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();
    let (crons, now) = inspector.crons().await.unwrap();
    assert_eq!(crons.len(), 1, "{crons:?}");
    let c = &crons[0];
    assert_eq!(c.info.name, name);
    assert_eq!(c.info.queue, queue);
    assert_eq!(c.info.job_type, "tick");
    assert_eq!(c.info.cron, "*/1 * * * * *");
    assert_eq!(c.info.time_zone, "UTC");
    assert_eq!(c.info.missed, "skip");
    assert_eq!(c.last_fired_ms, all.last().copied());
    assert!(
        c.next_at_ms.is_some_and(|n| n > now && n <= now + 1_000),
        "{c:?}"
    );
    // And the target queue is known to the tools.
    assert!(inspector.queues().await.unwrap().contains(&queue));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_three_missed_ticks_the_policy_decides_what_a_restart_fires() {
    let server = RedisServer::start();
    // Every 2 s, so a restart half-way between two ticks has a second of
    // margin either side.
    const EVERY: &str = "*/2 * * * * *";
    const PERIOD: u64 = 2_000;
    let cases: Vec<(String, String, Missed, usize)> = [
        ("skip", Missed::Skip, 0),
        ("once", Missed::RunOnce, 1),
        ("each2", Missed::RunEach { max: 2 }, 2),
        ("each10", Missed::RunEach { max: 10 }, 3),
    ]
    .into_iter()
    .map(|(name, missed, expect)| {
        (
            format!("missed-{name}"),
            unique_queue(&format!("cron-{name}")),
            missed,
            expect,
        )
    })
    .collect();

    // 1. The schedules fire (all as Skip), then every worker stops.
    let w = start(worker(
        &server,
        cases
            .iter()
            .map(|(name, queue, _, _)| schedule(name, EVERY, queue, Missed::Skip))
            .collect(),
    ));
    for (name, queue, _, _) in &cases {
        let first = wait_fired(&server, queue, name, None).await;
        wait_fired(&server, queue, name, Some(first)).await;
    }
    w.stop().await;
    let mut lasts = Vec::new();
    for (name, queue, _, _) in &cases {
        lasts.push(last_fired(&server, queue, name).await.unwrap());
    }
    let last = *lasts.iter().max().unwrap();
    assert!(lasts.iter().all(|l| *l == last), "{lasts:?}");

    // 2. Three ticks pass with no worker; restart half-way to the fourth.
    let restart_at = last + 3 * PERIOD + PERIOD / 2;
    sleep_until_ms(restart_at).await;
    assert!(
        ticks(&server, &cases[0].1, &cases[0].0)
            .await
            .iter()
            .all(|t| *t <= last),
        "a tick was fired with no worker running"
    );
    let w = start(worker(
        &server,
        cases
            .iter()
            .map(|(name, queue, missed, _)| schedule(name, EVERY, queue, *missed))
            .collect(),
    ));
    // 3. Once the next tick fired, the catch-up is long over.
    let next = last + 4 * PERIOD;
    for (name, queue, _, _) in &cases {
        let fired = wait_fired(&server, queue, name, Some(last + 3 * PERIOD)).await;
        assert_eq!(fired, next, "{name}");
    }
    w.stop().await;
    for (name, queue, missed, expect) in &cases {
        let all = ticks(&server, queue, name).await;
        let caught_up: Vec<u64> = all
            .iter()
            .copied()
            .filter(|t| *t > last && *t < restart_at)
            .collect();
        assert_eq!(
            caught_up.len(),
            *expect,
            "{missed:?} fired {caught_up:?} of the missed ticks {:?}",
            [last + PERIOD, last + 2 * PERIOD, last + 3 * PERIOD]
        );
        // The latest missed ones, oldest first.
        let want: Vec<u64> = (0..*expect as u64)
            .rev()
            .map(|k| last + (3 - k) * PERIOD)
            .collect();
        assert_eq!(caught_up, want, "{missed:?}");
        assert!(all.contains(&next), "{name}: {all:?}");
        let distinct: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(distinct.len(), all.len(), "{name}: {all:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_schedules_writes_nothing_for_them() {
    let server = RedisServer::start();
    let w = start(worker(&server, Vec::new()));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    w.stop().await;
    for pattern in ["*:cron", "*:crons"] {
        let keys = server.cli(&["KEYS", pattern]).unwrap();
        assert!(keys.trim().is_empty(), "{pattern}: {keys}");
    }
    let inspector = Inspector::connect(&server.url(), "jobstream")
        .await
        .unwrap();
    assert!(inspector.crons().await.unwrap().0.is_empty());
}

#[test]
fn bad_schedules_are_errors_at_build_time() {
    let err = |r: Result<Schedule, jobstream_worker::Error>| r.unwrap_err().to_string();
    let e = err(Schedule::cron("s", "61 * * * *"));
    assert!(
        e.contains("invalid cron expression") && e.contains("\"s\""),
        "{e}"
    );
    let e = err(Schedule::cron("s", "every day"));
    assert!(e.contains("invalid cron expression"), "{e}");
    let e = err(Schedule::cron("s", "0 9 * * *")
        .unwrap()
        .time_zone("Europe/Pariss"));
    assert!(e.contains("unknown time zone \"Europe/Pariss\""), "{e}");
    let e = err(Schedule::cron("a b", "* * * * *"));
    assert!(e.contains("invalid schedule name"), "{e}");
    let e = err(Schedule::cron("s", "* * * * *")
        .unwrap()
        .enqueue("bad{queue}", "t", &1));
    assert!(e.contains("invalid queue name"), "{e}");
    assert!(
        Schedule::cron("s", "0 9 * * MON-FRI")
            .unwrap()
            .time_zone("America/New_York")
            .is_ok()
    );

    let build = |schedules: Vec<Schedule>| {
        let mut b =
            Worker::builder("redis://127.0.0.1:1").handle("noop", |_: u32, _| async { Ok(()) });
        for s in schedules {
            b = b.schedule(s);
        }
        b.build().err().map(|e| e.to_string()).unwrap_or_default()
    };
    let e = build(vec![Schedule::cron("s", "* * * * *").unwrap()]);
    assert!(e.contains("no job to enqueue"), "{e}");
    let ok = || schedule("s", "* * * * *", "q", Missed::Skip);
    let e = build(vec![ok(), ok()]);
    assert!(e.contains("declared twice"), "{e}");
    let e = build(vec![ok().missed(Missed::RunEach { max: 0 })]);
    assert!(e.contains("max must be 1 to 1000"), "{e}");
    let e = build(vec![schedule("s", "0 0 30 2 *", "q", Missed::Skip)]);
    assert!(
        e.contains("never matches") || e.contains("invalid cron expression"),
        "{e}"
    );
    assert_eq!(build(vec![ok()]), "");
}
