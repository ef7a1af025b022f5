//! Infrastructure errors: everything that can go wrong between jobstream and
//! Redis, or with what a caller hands in. What a *handler* returns is a
//! different type (`jobstream_worker::JobError`).
//!
//! Redis errors are classified **by kind** (the error code Redis sends, or
//! the client's own error kind), never by luck: see [`RedisFailure`] and the
//! failure matrix in docs/failure-handling.md.

/// What kind of Redis failure happened, so callers can decide to retry
/// without matching on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisFailure {
    /// The connection could not be made, broke, or timed out. Transient.
    Connection,
    /// The consumer group does not exist (deleted, or Redis restarted
    /// without persistence). The worker recreates it.
    NoGroup,
    /// `LOADING`: Redis is loading its data set after a restart. Transient.
    Loading,
    /// `OOM`: `maxmemory` is reached under `noeviction`; writes are refused
    /// until memory is freed. Transient: nothing was written.
    OutOfMemory,
    /// `BUSY`: a script (or function) has run past the busy threshold and
    /// the server answers nothing else until it ends. Transient.
    Busy,
    /// `READONLY`: the server is a replica (a failover is under way, or the
    /// URL points at a replica). Transient.
    ReadOnly,
    /// `MASTERDOWN`: a replica that lost its primary and serves no stale
    /// data. Transient.
    MasterDown,
    /// `TRYAGAIN` / `CLUSTERDOWN`: a cluster slot is moving or the cluster is
    /// down. Transient.
    TryAgain,
    /// `MISCONF`: the server refuses writes because its last background
    /// save failed (`stop-writes-on-bgsave-error`, a full disk). Transient:
    /// writes resume once a save succeeds.
    SaveFailing,
    /// `NOREPLICAS`: fewer replicas in sync than `min-replicas-to-write`.
    /// Transient.
    NoReplicas,
    /// `WRONGPASS` / `NOAUTH` / a failed `AUTH`: the credentials are wrong or
    /// missing. Fatal: retrying cannot help.
    Auth,
    /// `NOPERM`: the ACL user may not run a command or touch a key. Fatal.
    NoPermission,
    /// `WRONGTYPE`: a queue key holds another type (something else wrote
    /// it). Fatal.
    WrongType,
    /// The server lacks a command jobstream needs (too old, or the command
    /// was renamed away), or refused the connection's setup (for example a
    /// database index out of range). Fatal.
    Unsupported,
    /// The TLS handshake was refused: the server's certificate is not
    /// trusted (unknown CA, expired, for another host name), the server
    /// wants a client certificate, or the port does not speak TLS. Fatal.
    Tls,
    /// Any other error reply from Redis.
    Server,
    /// The reply had a shape jobstream did not expect.
    Protocol,
}

impl RedisFailure {
    /// True for failures that go away on their own: retry after a backoff.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            RedisFailure::Connection
                | RedisFailure::Loading
                | RedisFailure::OutOfMemory
                | RedisFailure::Busy
                | RedisFailure::ReadOnly
                | RedisFailure::MasterDown
                | RedisFailure::TryAgain
                | RedisFailure::SaveFailing
                | RedisFailure::NoReplicas
        )
    }

    /// True for failures of configuration: the credentials, the ACL, the
    /// server or the data in it must be fixed by someone; retrying cannot
    /// help.
    pub fn is_fatal(self) -> bool {
        matches!(
            self,
            RedisFailure::Auth
                | RedisFailure::NoPermission
                | RedisFailure::WrongType
                | RedisFailure::Unsupported
                | RedisFailure::Tls
        )
    }

    /// What to do about a fatal failure, for the one message an operator sees.
    pub fn fix(self) -> &'static str {
        match self {
            RedisFailure::Auth => {
                "check the user name and password in the Redis URL (redis://user:password@host:port/db)"
            }
            RedisFailure::NoPermission => {
                "grant the ACL user the rights of its role, as in deploy/redis/users.acl (docs/deployment.md, \"ACL users\"): the refused command and key are named above"
            }
            RedisFailure::WrongType => {
                "a jobstream key holds another type: something else writes to it; use another prefix or remove the foreign key"
            }
            RedisFailure::Unsupported => {
                "use Redis 7.0 or later (or Valkey 7.2 or later) with every stream and scripting command enabled, and a database index the server has"
            }
            RedisFailure::Tls => {
                "trust the server's CA with JOBSTREAM_TLS_CA=/path/to/ca.pem (or TlsOptions::ca_file), use a host name the certificate names, give a client certificate with JOBSTREAM_TLS_CERT and JOBSTREAM_TLS_KEY if the server requires one, and use rediss:// only on the server's TLS port"
            }
            RedisFailure::OutOfMemory => {
                "raise maxmemory or free memory on the Redis server; jobstream keys must not be evicted"
            }
            _ => "check that the Redis server is up and reachable",
        }
    }

    /// Classifies an error by the code Redis sent (`OOM`, `NOPERM`, …). The
    /// code is the first word of the error line; inside a script's error,
    /// older servers wrap it as `... -CODE message`.
    pub fn from_code(code: &str, message: &str) -> Option<Self> {
        let by_code = |code: &str| {
            Some(match code {
                "NOGROUP" => RedisFailure::NoGroup,
                "LOADING" => RedisFailure::Loading,
                "OOM" => RedisFailure::OutOfMemory,
                "BUSY" => RedisFailure::Busy,
                "READONLY" => RedisFailure::ReadOnly,
                "MASTERDOWN" => RedisFailure::MasterDown,
                "TRYAGAIN" | "CLUSTERDOWN" => RedisFailure::TryAgain,
                "MISCONF" => RedisFailure::SaveFailing,
                "NOREPLICAS" => RedisFailure::NoReplicas,
                "WRONGPASS" | "NOAUTH" => RedisFailure::Auth,
                "NOPERM" => RedisFailure::NoPermission,
                "WRONGTYPE" => RedisFailure::WrongType,
                _ => return None,
            })
        };
        if let Some(kind) = by_code(code) {
            return Some(kind);
        }
        // The code is not first when the client wraps the reply (a
        // pipeline: `Pipeline failures: [(Index 0, error: "BUSY": ...)]`)
        // or an older server wraps a script's error (`ERR Error running
        // script ...: -OOM command not allowed ...`): look for a code as a
        // whole upper-case word.
        if matches!(code, "" | "ERR")
            && let Some(inner) = message
                .split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| w.len() >= 3 && w.bytes().all(|b| b.is_ascii_uppercase()))
                .find_map(by_code)
        {
            return Some(inner);
        }
        let lower = message.to_ascii_lowercase();
        // An ACL refusal inside a script comes back as `-ERR` on every
        // server (docs/servers.md): "ACL failure in script: ..." (Redis 8,
        // Valkey) or "The user executing the script can't ..." (Redis 7).
        if lower.contains("acl failure")
            || lower.contains("user executing the script can't")
            || lower.contains("no permissions to")
        {
            return Some(RedisFailure::NoPermission);
        }
        if lower.contains("unknown command")
            || lower.contains("unknown redis command")
            || lower.contains("refused to switch database")
            || lower.contains("db index is out of range")
        {
            return Some(RedisFailure::Unsupported);
        }
        None
    }
}

/// An infrastructure error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A queue name that cannot be used.
    #[error("invalid queue name {name:?}: {reason}")]
    InvalidQueueName {
        /// The name as given (cut to a readable length).
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A payload above the configured limit.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A payload that could not be encoded to MessagePack.
    #[error("payload could not be encoded as MessagePack: {0}")]
    Encode(String),
    /// A payload or field that could not be decoded.
    #[error("could not decode {what}: {detail}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        detail: String,
    },
    /// A job that breaks a rule of the wire format (empty type, reserved field, ...).
    #[error("invalid job: {0}")]
    InvalidJob(String),
    /// A job has no record to read, wait on or cancel through: an unknown
    /// id, a job enqueued without `keep_record`, or a record that expired.
    #[error(
        "no record of job {id:?} on queue {queue:?} (an unknown id, a job without keep_record, or its record expired)"
    )]
    NoRecord {
        /// The queue asked.
        queue: String,
        /// The job id asked.
        id: String,
    },
    /// A job was not final within the time waited for it.
    #[error("job {id:?} was not final after {waited:?}")]
    WaitTimeout {
        /// The job id.
        id: String,
        /// How long was waited.
        waited: std::time::Duration,
    },
    /// A queue with backpressure limits refused the jobs (policy
    /// `reject`, or `wait` after waiting): its undelivered backlog plus the
    /// jobs would exceed `limit`, or its oldest undelivered job is older
    /// than `max_age_ms`. Nothing of the refused call was enqueued. See
    /// docs/flow-control.md.
    #[error("{}", queue_full_message(.queue, .depth, .limit, .oldest_age_ms, .max_age_ms))]
    QueueFull {
        /// The queue.
        queue: String,
        /// Its undelivered backlog when the jobs were refused.
        depth: u64,
        /// Its `max_ready`, if set.
        limit: Option<u64>,
        /// Age of its oldest undelivered job, ms.
        oldest_age_ms: u64,
        /// Its `max_age_ms`, if set.
        max_age_ms: Option<u64>,
    },
    /// A durable enqueue ([`Durability`](crate::durability::Durability))
    /// was sent, but not confirmed in time: fewer replicas (or AOF fsyncs)
    /// acknowledged it than asked for, or the connection changed between
    /// the writes and the wait. **The jobs were written to the master**:
    /// they may survive or be lost with it. Enqueueing them again is safe
    /// for jobs with a uniqueness key or a record and may duplicate others
    /// (at-least-once).
    #[error("enqueue not confirmed durable: {detail}")]
    NotDurable {
        /// What was asked and what was acknowledged.
        detail: String,
    },
    /// A setting out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Redis answered with an error or could not be reached.
    #[error("redis {op} failed ({kind:?}): {message}")]
    Redis {
        /// The operation, e.g. `script ack-2` or `XREADGROUP`.
        op: &'static str,
        /// Classified kind of failure.
        kind: RedisFailure,
        /// The client's message.
        message: String,
    },
    /// Redis answered, but cannot be used as configured: wrong credentials,
    /// an ACL that forbids a command, a foreign key in the way, a server
    /// without a needed command. Retrying cannot help; the message says
    /// what to fix. Never carries the password.
    #[error("cannot use Redis at {server}: {detail}. Fix: {fix}")]
    Unusable {
        /// The server's URL without credentials.
        server: String,
        /// The kind of failure.
        kind: RedisFailure,
        /// What Redis said.
        detail: String,
        /// What to change.
        fix: &'static str,
    },
}

impl Error {
    /// True when retrying the same call later may succeed: connection
    /// trouble or a server that is still loading.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Redis { kind, .. } if kind.is_transient())
    }

    /// True when retrying cannot help: bad credentials, ACL, a foreign key
    /// of the wrong type, an unsupported server, or a bad setting.
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Redis { kind, .. } => kind.is_fatal(),
            Error::Unusable { .. } | Error::Config(_) => true,
            _ => false,
        }
    }

    /// The failure kind of a Redis error.
    pub fn redis_failure(&self) -> Option<RedisFailure> {
        match self {
            Error::Redis { kind, .. } | Error::Unusable { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// A fatal Redis error turned into [`Error::Unusable`], naming the
    /// server (`server` must be the URL without credentials) and the fix.
    /// Other errors are returned unchanged.
    pub fn for_server(self, server: &str) -> Self {
        match self {
            Error::Redis { op, kind, message } if kind.is_fatal() => Error::Unusable {
                server: server.to_owned(),
                kind,
                detail: format!("{op}: {message}"),
                fix: kind.fix(),
            },
            other => other,
        }
    }

    /// True when the consumer group is missing.
    pub fn is_no_group(&self) -> bool {
        matches!(
            self,
            Error::Redis {
                kind: RedisFailure::NoGroup,
                ..
            }
        )
    }

    pub(crate) fn redis(op: &'static str, err: redis::RedisError) -> Self {
        let message = err.to_string();
        let kind = if let Some(kind) = RedisFailure::from_code(err.code().unwrap_or(""), &message) {
            kind
        } else if err.kind() == redis::ErrorKind::AuthenticationFailed {
            RedisFailure::Auth
        } else if err.kind() == redis::ErrorKind::InvalidClientConfig {
            RedisFailure::Unsupported
        } else if err.kind() == redis::ErrorKind::UnexpectedReturnType
            || err.kind() == redis::ErrorKind::Parse
        {
            // Before the connection checks: redis-rs counts a parse error
            // as "reconnect", but a reply that cannot be parsed (a server
            // that is not Redis) does not go away by waiting.
            RedisFailure::Protocol
        } else if err.is_io_error() && crate::tls::is_tls_refusal(&message) {
            // Before the connection checks: a refused handshake is an I/O
            // error to redis-rs, but does not go away by reconnecting.
            RedisFailure::Tls
        } else if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error()
        {
            RedisFailure::Connection
        } else {
            RedisFailure::Server
        };
        Error::Redis { op, kind, message }
    }

    pub(crate) fn protocol(op: &'static str, message: impl Into<String>) -> Self {
        Error::Redis {
            op,
            kind: RedisFailure::Protocol,
            message: message.into(),
        }
    }
}

fn queue_full_message(
    queue: &str,
    depth: &u64,
    limit: &Option<u64>,
    age: &u64,
    max_age: &Option<u64>,
) -> String {
    let mut why = Vec::new();
    if let Some(limit) = limit {
        why.push(format!("{depth} undelivered jobs (max_ready {limit})"));
    }
    if let Some(max_age) = max_age {
        why.push(format!(
            "oldest undelivered job {age} ms old (max_age_ms {max_age})"
        ));
    }
    format!(
        "queue {queue:?} is full: {}; nothing was enqueued",
        why.join(", ")
    )
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::RedisFailure::{self, *};

    #[test]
    fn every_error_class_is_classified_by_its_code() {
        let cases: &[(&str, &str, Option<RedisFailure>)] = &[
            (
                "OOM",
                "OOM command not allowed when used memory > 'maxmemory'.",
                Some(OutOfMemory),
            ),
            ("BUSY", "BUSY Redis is busy running a script.", Some(Busy)),
            (
                "LOADING",
                "LOADING Redis is loading the dataset in memory",
                Some(Loading),
            ),
            (
                "READONLY",
                "READONLY You can't write against a read only replica.",
                Some(ReadOnly),
            ),
            (
                "MASTERDOWN",
                "MASTERDOWN Link with MASTER is down",
                Some(MasterDown),
            ),
            (
                "TRYAGAIN",
                "TRYAGAIN Multiple keys request during rehashing of slot",
                Some(TryAgain),
            ),
            (
                "CLUSTERDOWN",
                "CLUSTERDOWN The cluster is down",
                Some(TryAgain),
            ),
            (
                "WRONGPASS",
                "WRONGPASS invalid username-password pair",
                Some(Auth),
            ),
            ("NOAUTH", "NOAUTH Authentication required.", Some(Auth)),
            (
                "NOPERM",
                "NOPERM this user has no permissions",
                Some(NoPermission),
            ),
            (
                "WRONGTYPE",
                "WRONGTYPE Operation against a key",
                Some(WrongType),
            ),
            ("NOGROUP", "NOGROUP No such key", Some(NoGroup)),
            ("ERR", "ERR unknown command 'XAUTOCLAIM'", Some(Unsupported)),
            ("ERR", "ERR DB index is out of range", Some(Unsupported)),
            (
                "ERR",
                "ERR Unknown Redis command called from script script: 5f1e, on @user_script:46.",
                Some(Unsupported),
            ),
            (
                "ERR",
                "ERR Error running script (call to f_1): @user_script:1: -OOM command not allowed",
                Some(OutOfMemory),
            ),
            (
                "",
                "Pipeline failures: [(Index 0, error: \"BUSY\": Redis is busy)]",
                Some(Busy),
            ),
            (
                "ERR",
                "ERR ACL failure in script: User probe has no permissions to run the 'set' command script: on @user_script:1.",
                Some(NoPermission),
            ),
            (
                "ERR",
                "ERR The user executing the script can't run this command or subcommand script: bd6f, on @user_script:1.",
                Some(NoPermission),
            ),
            (
                "MISCONF",
                "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
                Some(SaveFailing),
            ),
            (
                "NOREPLICAS",
                "NOREPLICAS Not enough good replicas to write.",
                Some(NoReplicas),
            ),
            ("ERR", "ERR syntax error", None),
            ("ERR", "ERR the busy bee said OOMPH", None),
        ];
        for (code, message, want) in cases {
            assert_eq!(
                RedisFailure::from_code(code, message),
                *want,
                "{code} {message}"
            );
        }
        for kind in [
            Connection,
            Loading,
            OutOfMemory,
            Busy,
            ReadOnly,
            MasterDown,
            TryAgain,
            SaveFailing,
            NoReplicas,
        ] {
            assert!(kind.is_transient() && !kind.is_fatal(), "{kind:?}");
        }
        for kind in [Auth, NoPermission, WrongType, Unsupported, Tls] {
            assert!(kind.is_fatal() && !kind.is_transient(), "{kind:?}");
        }
    }
}
