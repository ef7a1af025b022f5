//! Infrastructure errors: everything that can go wrong between jobstream and
//! Redis, or with what a caller hands in. What a *handler* returns is a
//! different type (`jobstream_worker::JobError`).

/// What kind of Redis failure happened, so callers can decide to retry
/// without matching on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisFailure {
    /// The connection could not be made, broke, or timed out. Retrying
    /// after a backoff is the right reaction.
    Connection,
    /// The consumer group does not exist (deleted, or Redis restarted
    /// without persistence). The worker recreates it.
    NoGroup,
    /// Redis is loading its data set after a restart. Retry shortly.
    Loading,
    /// Any other error reply from Redis (wrong type, script error, ...).
    Server,
    /// The reply had a shape jobstream did not expect.
    Protocol,
}

/// An infrastructure error.
#[derive(Debug, thiserror::Error)]
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
}

impl Error {
    /// True when retrying the same call later may succeed: connection
    /// trouble or a server that is still loading.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Redis {
                kind: RedisFailure::Connection | RedisFailure::Loading,
                ..
            }
        )
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
        let kind = if err.code() == Some("NOGROUP") {
            RedisFailure::NoGroup
        } else if err.code() == Some("LOADING") {
            RedisFailure::Loading
        } else if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error()
        {
            RedisFailure::Connection
        } else if err.kind() == redis::ErrorKind::UnexpectedReturnType
            || err.kind() == redis::ErrorKind::Parse
        {
            RedisFailure::Protocol
        } else {
            RedisFailure::Server
        };
        Error::Redis {
            op,
            kind,
            message: err.to_string(),
        }
    }

    pub(crate) fn protocol(op: &'static str, message: impl Into<String>) -> Self {
        Error::Redis {
            op,
            kind: RedisFailure::Protocol,
            message: message.into(),
        }
    }
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
