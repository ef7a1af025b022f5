#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The whole flow against a real Redis: each test starts a throwaway
//! redis-server (killed when the test ends), runs the code that enqueues,
//! then drains the shop's worker: the real worker, its middleware and
//! queues, run until nothing is left, follow-up jobs included.

use deadpool_redis::redis;
use example_shop::{App, AskForReview, DailyReport, order_key, place_order, worker};
use jobstream::testing::{Drain, enqueued};
use jobstream::testkit::RedisServer;
use jobstream::{Job, NewJob, Producer};

/// A server, a producer on it, and the shop's state on the same server.
async fn shop() -> (RedisServer, Producer, App) {
    let server = RedisServer::start();
    let producer = Producer::connect(&server.url()).await.unwrap();
    let app = App::new(&server.url(), producer.clone()).unwrap();
    (server, producer, app)
}

async fn get<T: redis::FromRedisValue>(app: &App, cmd: &mut redis::Cmd) -> T {
    let mut db = app.db.get().await.unwrap();
    cmd.query_async(&mut db).await.unwrap()
}

#[tokio::test]
async fn an_order_is_charged_receipted_and_followed_up() {
    let (server, producer, app) = shop().await;
    place_order(&producer, 7, "ann@example.com", 1999)
        .await
        .unwrap();

    // with_scheduled: the review, due in three days, runs now too.
    let report = Drain::new(worker(&server.url(), app.clone()))
        .with_scheduled(true)
        .run()
        .await
        .unwrap();

    // charge_order, then send_receipt, then ask_for_review.
    assert_eq!((report.processed, report.dead), (3, 0), "{report:?}");
    let status: String = get(&app, redis::cmd("HGET").arg(order_key(7)).arg("status")).await;
    assert_eq!(status, "paid");
    let asked: bool = get(
        &app,
        redis::cmd("SISMEMBER").arg("shop:reviews_asked").arg(7),
    )
    .await;
    assert!(asked);
}

#[tokio::test]
async fn reviews_wait_and_the_report_sums_the_paid_orders() {
    let (server, producer, app) = shop().await;
    place_order(&producer, 1, "ann@example.com", 1000)
        .await
        .unwrap();
    place_order(&producer, 2, "bob@example.com", 2500)
        .await
        .unwrap();

    // Without with_scheduled, what is due later stays scheduled.
    let report = Drain::new(worker(&server.url(), app.clone()))
        .run()
        .await
        .unwrap();
    assert_eq!((report.processed, report.scheduled), (4, 2), "{report:?}");
    let waiting = enqueued(&server.url(), AskForReview::QUEUE).await.unwrap();
    waiting.assert_enqueued::<AskForReview>(|r| r.order_id == 1 && r.email == "ann@example.com");
    assert!(waiting.iter().all(|j| j.run_at.is_some()));

    // Tonight's report, run now: only the reports queue is drained, so the
    // reviews keep waiting.
    producer
        .push(
            NewJob::of(&DailyReport {
                day: "2024-05-01".into(),
            })
            .unwrap()
            .delay(std::time::Duration::from_secs(12 * 3600)),
        )
        .await
        .unwrap();
    let report = Drain::new(worker(&server.url(), app.clone()))
        .only(DailyReport::QUEUE)
        .with_scheduled(true)
        .run()
        .await
        .unwrap();
    assert_eq!(report.processed, 1, "{report:?}");
    let sums: String = get(&app, redis::cmd("GET").arg("shop:report:2024-05-01")).await;
    assert_eq!(sums, "orders=2 cents=3500");
    assert_eq!(
        enqueued(&server.url(), AskForReview::QUEUE)
            .await
            .unwrap()
            .len(),
        2
    );
}
