//! Worker processes of the example binary: started, SIGKILLed, replaced,
//! each logging to its own file.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// The running workers, and every log file ever written.
#[derive(Debug)]
pub struct Fleet {
    redis_url: String,
    database_url: String,
    args: Vec<String>,
    log_dir: PathBuf,
    children: Vec<Child>,
    started: usize,
    /// Workers killed with SIGKILL so far.
    pub kills: usize,
}

impl Fleet {
    /// No workers yet; `args` follow `worker` on each one's command line.
    pub fn new(redis_url: &str, database_url: &str, args: &[&str]) -> Self {
        let log_dir =
            std::env::temp_dir().join(format!("jobstream-payments-{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&log_dir).expect("create the log directory");
        Self {
            redis_url: redis_url.to_owned(),
            database_url: database_url.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            log_dir,
            children: Vec::new(),
            started: 0,
            kills: 0,
        }
    }

    /// Starts one more worker.
    pub fn spawn(&mut self) {
        self.started += 1;
        let log = File::create(self.log_dir.join(format!("worker-{}.log", self.started)))
            .expect("create a worker log");
        let child = Command::new(env!("CARGO_BIN_EXE_example-payments"))
            .arg("worker")
            .args(&self.args)
            .env("REDIS_URL", &self.redis_url)
            .env("DATABASE_URL", &self.database_url)
            // info for the handler: its "applied before" lines are counted.
            .env("RUST_LOG", "warn,example_payments=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start a worker");
        self.children.push(child);
    }

    /// SIGKILLs the worker at `index` (modulo the fleet's size) and starts
    /// a replacement.
    pub fn kill_and_replace(&mut self, index: usize) {
        if self.children.is_empty() {
            return;
        }
        let mut child = self.children.swap_remove(index % self.children.len());
        child.kill().expect("SIGKILL a worker"); // Child::kill is SIGKILL
        let _ = child.wait();
        self.kills += 1;
        self.spawn();
    }

    /// Workers that exited on their own (each one a bug: a worker rides
    /// out a Redis restart), with their exit status.
    pub fn exited(&mut self) -> Vec<String> {
        self.children
            .iter_mut()
            .filter_map(|c| match c.try_wait() {
                Ok(Some(status)) => Some(format!("pid {}: {status}", c.id())),
                _ => None,
            })
            .collect()
    }

    /// Log lines, over every worker that ran, that contain `needle`.
    pub fn count_in_logs(&self, needle: &str) -> usize {
        (1..=self.started)
            .map(|n| {
                std::fs::read_to_string(self.log_dir.join(format!("worker-{n}.log")))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(needle))
                    .count()
            })
            .sum()
    }

    /// The last lines of every worker's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in 1..=self.started {
            let text = std::fs::read_to_string(self.log_dir.join(format!("worker-{n}.log")))
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!(
                "--- worker {n} ({} lines)\n{}\n",
                lines.len(),
                tail.join("\n")
            ));
        }
        out
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for mut child in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}
