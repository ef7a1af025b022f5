//! Durable enqueue: an enqueue that returns only once its jobs are on the
//! replicas (`WAIT`) or fsynced to the append-only file (`WAITAOF`, Redis
//! 7.2+ and Valkey), so a master that dies right after the reply does not
//! take acknowledged jobs with it. See docs/deployment.md.
//!
//! `WAIT` and `WAITAOF` count the writes of the connection they are sent
//! on. The producer writes on one multiplexed connection, which reconnects
//! on its own; a wait sent on a new connection would count nothing and
//! succeed at once. So the connection is named (`CLIENT SETNAME` with a
//! token random to this handle) before the writes, and its name read back
//! in the same pipeline as the wait: a new connection has no name, so a
//! reconnect in between fails the call with [`Error::NotDurable`] instead
//! of claiming durability it did not see. (A `CLIENT ID` comparison would
//! not do: ids restart at 1 with the server, and a new master's may match.)
//!
//! `WAIT` holds its connection: Redis reads nothing more from it until the
//! wait ends. Every command of the same `Redis` handle (the producer and
//! its clones) waits behind it, so give durable enqueues a producer of
//! their own, never one shared with a worker or with latency-sensitive
//! work.

use std::time::Duration;

use redis::Value;

use crate::connection::Redis;
use crate::error::{Error, Result};

/// How durable an enqueue must be before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Return when the master has the jobs (the default; no extra command).
    #[default]
    Master,
    /// `WAIT replicas timeout`: return when `replicas` replicas acknowledged
    /// the writes (in their memory, not necessarily on disk).
    Replicas {
        /// Replicas that must acknowledge.
        replicas: u32,
        /// Longest wait; past it the enqueue fails with
        /// [`Error::NotDurable`]. At most three quarters of the response
        /// timeout ([`Timings::response_timeout`](crate::Timings), 10 s by
        /// default): a longer one is cut to that.
        timeout: Duration,
    },
    /// `WAITAOF 1 replicas timeout`: return when the master fsynced the
    /// writes to its AOF and `replicas` replicas fsynced them to theirs
    /// (Redis 7.2+, Valkey; needs `appendonly yes`).
    Aof {
        /// Replicas that must also fsync (0: the master's AOF only).
        replicas: u32,
        /// Longest wait.
        timeout: Duration,
    },
}

impl Durability {
    /// On `n` replicas, waiting at most `timeout`.
    pub fn replicas(n: u32, timeout: Duration) -> Self {
        Self::Replicas {
            replicas: n,
            timeout,
        }
    }

    /// Fsynced to the master's AOF and to `replicas` replicas' AOF.
    pub fn aof(replicas: u32, timeout: Duration) -> Self {
        Self::Aof { replicas, timeout }
    }

    /// Whether an enqueue must wait at all.
    pub fn is_required(&self) -> bool {
        !matches!(self, Self::Master)
    }
}

/// The timeout in ms as WAIT takes it (0 would mean "for ever"), ending
/// well before the connection's response timeout: a wait cut by the
/// client would look like a lost connection and be sent again.
fn timeout_ms(d: Duration, response_timeout: Duration) -> u64 {
    let cap = response_timeout.saturating_sub(response_timeout / 4);
    (d.min(cap).as_millis() as u64).max(1)
}

impl Redis {
    /// Names the shared connection with this handle's token before durable
    /// writes (`CLIENT SETNAME`); [`Redis::wait_durable`] checks the name.
    pub async fn mark_connection(&self) -> Result<()> {
        let mut conn = self.shared();
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(self.connection_token())
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.error("CLIENT SETNAME", e))
    }

    /// Waits until the writes sent on the shared connection since
    /// [`Redis::mark_connection`] are as durable as `durability` asks.
    pub async fn wait_durable(&self, durability: &Durability) -> Result<()> {
        let rt = self.response_timeout();
        let (cmd, wanted, what) = match *durability {
            Durability::Master => return Ok(()),
            Durability::Replicas { replicas, timeout } => {
                let mut c = redis::cmd("WAIT");
                c.arg(replicas).arg(timeout_ms(timeout, rt));
                (c, (0, replicas), "WAIT")
            }
            Durability::Aof { replicas, timeout } => {
                let mut c = redis::cmd("WAITAOF");
                c.arg(1).arg(replicas).arg(timeout_ms(timeout, rt));
                (c, (1, replicas), "WAITAOF")
            }
        };
        let mut pipe = redis::pipe();
        pipe.add_command(cmd).cmd("CLIENT").arg("GETNAME");
        let mut conn = self.shared();
        let (acked, name): (Value, Option<String>) = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.error(what, e))?;
        if name.as_deref() != Some(self.connection_token()) {
            return Err(Error::NotDurable {
                detail: format!(
                    "the connection was replaced between the writes and {what}: the writes were not counted"
                ),
            });
        }
        let (local, replicas) = match acked {
            Value::Int(n) => (1, n),
            Value::Array(v) => match v.as_slice() {
                [Value::Int(l), Value::Int(r)] => (*l, *r),
                _ => return Err(Error::protocol(what, "expected [local, replicas]")),
            },
            _ => {
                return Err(Error::protocol(
                    what,
                    "expected an integer or [local, replicas]",
                ));
            }
        };
        let (want_local, want_replicas) = wanted;
        if local < want_local || replicas < i64::from(want_replicas) {
            return Err(Error::NotDurable {
                detail: match what {
                    "WAIT" => {
                        format!("{replicas} of {want_replicas} replicas acknowledged in time")
                    }
                    _ => format!(
                        "AOF fsync: master {}, {replicas} of {want_replicas} replicas in time",
                        if local >= 1 { "yes" } else { "no" }
                    ),
                },
            });
        }
        Ok(())
    }
}
