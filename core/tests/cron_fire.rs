#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `cron-fire-2` against a real server and a wrong clock: a tick ahead of
//! the server's clock is refused (a fast worker cannot make the fleet skip
//! ticks), and a stored last tick that is not finite or lies in the future
//! cannot silence a schedule.

use jobstream_core::cron::CronFire;
use jobstream_testkit::RedisServer;

mod common;
use common::*;

fn fields() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b"type".as_slice(), b"tick".as_slice()),
        (b"payload".as_slice(), b"\xc0".as_slice()),
    ]
}

#[tokio::test]
async fn a_tick_ahead_of_the_server_clock_is_refused_and_a_bad_stored_tick_is_overwritten() {
    let server = RedisServer::start();
    let s = store(&server);
    let now = s.redis().server_now_ms().await.unwrap();
    let minute = |m: u64| (now / 60_000 + m) * 60_000;
    let f = fields();
    // A worker ten minutes ahead: its tick is refused, nothing recorded.
    let early = s.cron_fire("report", minute(10), &f).await.unwrap();
    assert!(
        matches!(early, CronFire::Early { server_now_ms } if server_now_ms.abs_diff(now) < 5_000),
        "{early:?}"
    );
    assert_eq!(s.cron_last("report").await.unwrap(), None);
    // An accurate worker fires the current tick; the same tick again is
    // already fired.
    let tick = minute(0);
    assert!(matches!(
        s.cron_fire("report", tick, &f).await.unwrap(),
        CronFire::Enqueued(_)
    ));
    assert_eq!(
        s.cron_fire("report", tick, &f).await.unwrap(),
        CronFire::AlreadyFired
    );
    // Stored values a fast worker (before the check) or a hand could have
    // left: a year ahead, inf, nan, 1e400, 20 digits: overwritten by the
    // next real tick instead of silencing the schedule.
    let cron_key = s.keys().cron();
    let year_ahead = (now + 365 * 86_400_000).to_string();
    for bad in [
        year_ahead.as_str(),
        "inf",
        "nan",
        "1e400",
        "99999999999999999999",
    ] {
        server.cli(&["HSET", &cron_key, "report", bad]).unwrap();
        let fired = s.cron_fire("report", tick, &f).await.unwrap();
        assert!(matches!(fired, CronFire::Enqueued(_)), "{bad}: {fired:?}");
        assert_eq!(s.cron_last("report").await.unwrap(), Some(tick), "{bad}");
    }
}
