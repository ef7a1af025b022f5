//! `dlq list --json` gives the exact bytes of a dead entry's `raw` field
//! (an undecodable `scheduled` member is only that), as hex.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use jobstream_testkit::{RedisServer, unique_queue};

#[test]
fn a_raw_dead_entry_shows_its_exact_bytes_as_hex() {
    let server = RedisServer::start();
    let queue = unique_queue("rawdead");
    server.cli(&["SADD", "jobstream:queues", &queue]).unwrap();
    // What promote-4 writes for a member that is not a map: its bytes
    // (here with a control byte, shown lossily anywhere else) and context.
    let dead = format!("jobstream:{{{queue}}}:dead");
    server
        .cli(&[
            "XADD",
            &dead,
            "*",
            "raw",
            "ab\u{1}\u{7f}",
            "reason",
            "malformed",
            "error_class",
            "malformed",
            "error",
            "scheduled member is not a MessagePack map of scalar fields",
            "failed_at",
            "1",
        ])
        .unwrap();
    let v = json(&server, &["dlq", "list", "--queue", &queue]);
    let job = &v["jobs"][0];
    assert_eq!(job["raw_hex"], "6162017f", "{v}");
    assert_eq!(job["reason"], "malformed", "{v}");
    assert_eq!(job["fields"][0][1], "<4 bytes: see raw_hex>", "{v}");
    // An entry without raw has none.
    server
        .cli(&["XADD", &dead, "*", "type", "t", "reason", "permanent"])
        .unwrap();
    let v = json(&server, &["dlq", "list", "--queue", &queue]);
    assert_eq!(v["jobs"][1]["raw_hex"], "", "{v}");
}
