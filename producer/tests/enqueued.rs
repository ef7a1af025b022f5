#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! testing::enqueued reads a real queue back: ready entries and scheduled
//! members, with their options, extra fields and due times, into the same
//! assertions as a recording producer.

use std::time::{Duration, SystemTime};

use jobstream_producer::testing::enqueued;
use jobstream_producer::{Job, NewJob, Producer};
use jobstream_testkit::{RedisServer, unique_queue};
use serde::{Deserialize, Serialize};

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct SendEmail {
    to: String,
}

impl Job for SendEmail {
    const NAME: &'static str = "send_email";
}

#[tokio::test]
async fn a_queue_read_back_holds_what_was_enqueued_now_and_later() {
    let server = RedisServer::start();
    let q = unique_queue("enqueued");
    let producer = Producer::connect(&server.url()).await.unwrap();
    let now_id = producer
        .push(
            NewJob::of(&SendEmail { to: "a@x".into() })
                .unwrap()
                .queue(&q)
                .max_attempts(4)
                .idempotency_key("order-1")
                .field("tenant", "acme")
                .unwrap(),
        )
        .await
        .unwrap();
    let later_id = producer
        .push(
            NewJob::of(&SendEmail { to: "b@x".into() })
                .unwrap()
                .queue(&q)
                .delay(Duration::from_secs(3600))
                .timeout(Duration::from_secs(9)),
        )
        .await
        .unwrap();
    producer.enqueue_named(&q, "resize", &(1, 2)).await.unwrap();

    let jobs = enqueued(&server.url(), &q).await.unwrap();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let now = jobs.assert_enqueued::<SendEmail>(|e| e.to == "a@x");
    assert_eq!(now.id, now_id);
    assert_eq!(
        (now.queue.as_str(), now.max_attempts),
        (q.as_str(), Some(4))
    );
    assert_eq!(now.idempotency_key.as_deref(), Some("order-1"));
    assert_eq!(now.field("tenant"), Some(&b"acme"[..]));
    assert_eq!(now.run_at, None);
    let later = jobs.assert_enqueued::<SendEmail>(|e| e.to == "b@x");
    assert_eq!(later.id, later_id);
    assert_eq!(later.timeout, Some(Duration::from_secs(9)));
    // Due in about an hour, by the server's clock.
    let due = later.run_at.unwrap();
    let ahead = due.duration_since(SystemTime::now()).unwrap();
    assert!(
        ahead > Duration::from_secs(3500) && ahead <= Duration::from_secs(3700),
        "{ahead:?}"
    );
    // Only the payload, options and extra fields: no worker fields.
    assert!(later.fields.is_empty(), "{:?}", later.fields);
    assert_eq!(
        jobs.assert_enqueued_named(&q, "resize")
            .decode::<(u8, u8)>()
            .unwrap(),
        (1, 2)
    );
    jobs.refute_enqueued_named("elsewhere", "resize");

    let empty = enqueued(&server.url(), &unique_queue("nothing"))
        .await
        .unwrap();
    assert!(empty.is_empty());
}
