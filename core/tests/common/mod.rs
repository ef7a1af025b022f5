//! Shared setup for the core tests against a real redis-server: a store
//! on a unique queue, plain jobs, add and fetch.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use jobstream_core::{QueueKeys, QueueName, QueueStore, Redis, StreamEntry, Timings};
use jobstream_testkit::{RedisServer, unique_queue};

pub const C1: &str = "worker-a";
pub const C2: &str = "worker-b";

pub fn store(server: &RedisServer) -> QueueStore {
    let redis = Redis::open(&server.url(), &Timings::default()).unwrap();
    let name = QueueName::new(&unique_queue("core")).unwrap();
    QueueStore::new(redis, QueueKeys::new("jobstream", &name), "workers")
}

pub fn job(i: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (b"type".to_vec(), b"t".to_vec()),
        (b"payload".to_vec(), vec![0x91, i as u8 & 0x7f]),
    ]
}

pub async fn add(store: &QueueStore, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let f = job(i);
        let refs: Vec<(&[u8], &[u8])> = f
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        ids.push(store.add(&refs).await.unwrap());
    }
    ids
}

pub async fn fetch(store: &QueueStore, consumer: &str, n: usize) -> Vec<StreamEntry> {
    let mut conn = store.redis().blocking().await.unwrap();
    store
        .read(&mut conn, consumer, n, Some(Duration::from_millis(50)))
        .await
        .unwrap()
}

pub fn cli(server: &RedisServer, args: &[&str]) -> String {
    server.cli(args).unwrap().trim().to_owned()
}
