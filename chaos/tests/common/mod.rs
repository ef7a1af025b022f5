//! A fleet of `flow-worker` processes for the kill tests: spawned against
//! one server, queue and run, killed with SIGKILL one at a time, and all
//! killed when the fleet is dropped (a failed assertion too).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};

use jobstream_testkit::RedisServer;
use rand::Rng;

pub struct Fleet {
    pub url: String,
    pub queue: String,
    pub run: String,
    pub workers: Vec<Child>,
    pub kills: usize,
}

impl Fleet {
    /// A fleet with no worker yet.
    pub fn new(server: &RedisServer, queue: &str, run: &str) -> Self {
        Self {
            url: server.url(),
            queue: queue.to_owned(),
            run: run.to_owned(),
            workers: Vec::new(),
            kills: 0,
        }
    }

    /// Starts one more `flow-worker`.
    pub fn spawn(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_flow-worker"))
            .args([
                "--redis-url",
                &self.url,
                "--queue",
                &self.queue,
                "--run",
                &self.run,
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.workers.push(child);
    }

    /// SIGKILLs a random worker: no shutdown, no acks, no give-backs.
    pub fn kill_one(&mut self, rng: &mut impl Rng) {
        let i = rng.random_range(0..self.workers.len());
        let mut child = self.workers.swap_remove(i);
        child.kill().unwrap();
        child.wait().unwrap();
        self.kills += 1;
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for w in &mut self.workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// `redis-cli ARGS` against `server`, trimmed.
pub fn cli(server: &RedisServer, args: &[&str]) -> String {
    server.cli(args).unwrap().trim().to_owned()
}
