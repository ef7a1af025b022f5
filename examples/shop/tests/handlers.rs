#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Unit tests of the shop's handlers and of the code that enqueues: no
//! Redis. `TestJob` runs one job through its handler with the real
//! MessagePack round trip and says what the worker would do next; a
//! recording producer keeps what the code enqueues for the test to check.

use std::time::Duration;

use example_shop::{
    App, AskForReview, ChargeOrder, REVIEW_DELAY, SendReceipt, charge_order, place_order,
    send_receipt,
};
use jobstream::Producer;
use jobstream::testing::{DeadReason, Disposition, Recorder, TestJob};

/// The shop's state with a recording producer. The pool points at a port
/// nothing listens on: these tests never use it (a handler that did would
/// fail, and the test with it).
fn app() -> (App, Recorder) {
    let (producer, enqueued) = Producer::recording();
    (App::new("redis://127.0.0.1:1", producer).unwrap(), enqueued)
}

#[tokio::test]
async fn placing_an_order_enqueues_its_charge() {
    let (producer, enqueued) = Producer::recording();
    place_order(&producer, 7, "ann@example.com", 1999)
        .await
        .unwrap();

    let charge = enqueued.assert_enqueued::<ChargeOrder>(|c| c.order_id == 7 && c.cents == 1999);
    assert_eq!(charge.queue, "critical");
    assert_eq!(charge.idempotency_key.as_deref(), Some("order-7"));
}

#[tokio::test]
async fn a_receipt_asks_for_a_review_three_days_later() {
    let (app, enqueued) = app();
    let job = SendReceipt {
        order_id: 7,
        email: "ann@example.com".into(),
    };

    let run = TestJob::of(&job)
        .unwrap()
        .run_job_with_state(send_receipt, app)
        .await;

    assert_eq!(run.disposition, Disposition::Ack);
    let review = enqueued.assert_enqueued::<AskForReview>(|r| r.order_id == 7);
    assert_eq!(review.queue, "low");
    assert_eq!(review.delay, Some(REVIEW_DELAY));
    assert_eq!(REVIEW_DELAY, Duration::from_secs(3 * 24 * 3600));
}

#[tokio::test]
async fn a_receipt_without_an_address_goes_to_the_dead_letters_at_once() {
    let (app, enqueued) = app();
    let job = SendReceipt {
        order_id: 8,
        email: "no address".into(),
    };

    let run = TestJob::of(&job)
        .unwrap()
        .run_job_with_state(send_receipt, app)
        .await;

    assert_eq!(
        run.disposition,
        Disposition::Dead {
            reason: DeadReason::Permanent
        }
    );
    assert_eq!(run.result.unwrap_err().class(), "bad_address");
    enqueued.refute_enqueued::<AskForReview>(|_| true);
}

#[tokio::test]
async fn a_free_order_is_never_charged() {
    let (app, enqueued) = app();
    let job = ChargeOrder {
        order_id: 9,
        email: "ann@example.com".into(),
        cents: 0,
    };

    let run = TestJob::of(&job)
        .unwrap()
        .run_job_with_state(charge_order, app)
        .await;

    assert_eq!(
        run.disposition,
        Disposition::Dead {
            reason: DeadReason::Permanent
        }
    );
    enqueued.refute_enqueued::<SendReceipt>(|_| true);
}

#[tokio::test]
async fn a_charge_that_fails_is_retried_until_its_fifth_attempt() {
    // The database is unreachable: the handler's error is retryable, and
    // ChargeOrder's own options allow 5 attempts.
    let (app, _) = app();
    let job = ChargeOrder {
        order_id: 10,
        email: "ann@example.com".into(),
        cents: 500,
    };
    let test_job = TestJob::of(&job).unwrap();

    let first = test_job.run_job_with_state(charge_order, app.clone()).await;
    assert!(
        matches!(first.disposition, Disposition::Retry { .. }),
        "{first:?}"
    );
    let last = test_job
        .clone()
        .attempt(5)
        .run_job_with_state(charge_order, app)
        .await;
    assert_eq!(
        last.disposition,
        Disposition::Dead {
            reason: DeadReason::Exhausted
        }
    );
}
