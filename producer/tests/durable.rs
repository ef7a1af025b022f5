//! Durable enqueue against real servers: what each durability asks is
//! either confirmed or an error, never a silent success.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use jobstream_producer::{Durability, Error, NewJob, Producer, ProducerOptions};
use jobstream_testkit::{RedisServer, server, unique_queue};

fn job(queue: &str, n: u32) -> NewJob {
    NewJob::new("t", &n).unwrap().queue(queue)
}

fn xlen(server: &RedisServer, queue: &str) -> u64 {
    server
        .cli(&["XLEN", &format!("jobstream:{{{queue}}}:ready")])
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn waiting_for_replicas_that_are_not_there_is_not_durable_but_enqueued() {
    let server = RedisServer::start();
    let queue = unique_queue("durable");
    let p = Producer::connect(&server.url()).await.unwrap();
    // No replica is needed for 0: confirmed at once.
    p.durable(Durability::replicas(0, Duration::from_secs(1)))
        .push(job(&queue, 1))
        .await
        .unwrap();
    // One replica asked, none exists: refused after the timeout, and said
    // so; the job is on the master all the same.
    let t = Instant::now();
    let err = p
        .durable(Durability::replicas(1, Duration::from_millis(300)))
        .enqueue_many(&queue, vec![job(&queue, 2), job(&queue, 3)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotDurable { .. }), "{err}");
    assert!(err.to_string().contains("0 of 1 replicas"), "{err}");
    assert!(t.elapsed() >= Duration::from_millis(250), "it waited");
    assert_eq!(xlen(&server, &queue), 3);
}

#[tokio::test]
async fn waiting_for_the_aof_is_confirmed_with_appendonly_and_an_error_without() {
    let v = server();
    let has_waitaof = v.at_least("redis", 7, 2) || v.is_valkey();
    for aof in [true, false] {
        let server = RedisServer::start_with(&["--appendonly", if aof { "yes" } else { "no" }]);
        let queue = unique_queue("aof");
        let options = ProducerOptions::default()
            .durability(Durability::aof(0, Duration::from_secs(2)))
            .retry_for(Duration::ZERO);
        let p = Producer::with_options(&server.url(), options).unwrap();
        let got = p.push(job(&queue, 1)).await;
        match (has_waitaof, aof) {
            (true, true) => {
                got.unwrap();
            }
            // No WAITAOF (Redis 7.0), or AOF off: an error, never success.
            _ => {
                let err = got.unwrap_err();
                assert!(
                    err.to_string().to_ascii_lowercase().contains("waitaof"),
                    "{v}, appendonly {aof}: {err}"
                );
            }
        }
    }
}
