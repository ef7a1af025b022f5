//! What a handler returns when a job fails, and how the worker should react.

use std::borrow::Cow;
use std::time::Duration;

/// How a failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// Try again after the backoff of the retry policy (the default).
    Retry,
    /// Try again after exactly this long (still counts an attempt).
    RetryAfter(Duration),
    /// Never retry: straight to the dead-letter stream.
    Permanent,
    /// Drop the job without retrying or dead-lettering; counted as discarded.
    Discard,
    /// The payload could not be decoded for this handler: dead, as malformed.
    Malformed,
    /// The handler stopped because the job was cancelled: dropped, counted
    /// as `cancelled` (its record, if any, says `cancelled`).
    Cancelled,
    /// An upstream said "too many requests" (HTTP 429): the job's key is
    /// held back fleet-wide for this long, and the job itself waits for
    /// the hold's end without spending an attempt (see
    /// [`JobError::rate_limited`]).
    RateLimited(Duration),
}

/// A handler's failure: a kind, a class (a short label for metrics and the
/// dead-letter stream, such as `smtp` or `timeout`) and a message.
///
/// Any `std::error::Error` converts into a retryable `JobError` with class
/// `error`, so `?` works in handlers. Messages are stored truncated; never
/// put payload contents or secrets in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    kind: FailureKind,
    class: Cow<'static, str>,
    message: String,
}

impl JobError {
    fn new(kind: FailureKind, class: &'static str, message: impl std::fmt::Display) -> Self {
        Self {
            kind,
            class: Cow::Borrowed(class),
            message: message.to_string(),
        }
    }

    /// A transient failure: retry with backoff.
    pub fn retry(message: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::Retry, "error", message)
    }

    /// A transient failure that should be retried after `delay` (for
    /// example a rate limit's Retry-After).
    pub fn retry_after(delay: Duration, message: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::RetryAfter(delay), "error", message)
    }

    /// An upstream refused the call for its rate limit (HTTP 429, with a
    /// `Retry-After` of `retry_after`): holds the job's key back
    /// **fleet-wide** for `retry_after` (the key is the job's `rate_key`
    /// if it has one, else its job type; at most a day; a hold never
    /// shortens a longer one), so no worker starts another job of that key until then
    /// (workers learn of it within 250 ms); other keys go on. The job
    /// itself is deferred to the hold's end (plus a small spread) without
    /// spending an attempt: not a failure, counted `held`, outcome `held`.
    ///
    /// A job that keeps a record, has a uniqueness key or is a chain or
    /// batch step still sets the hold, but waits for it as a retry (an
    /// attempt spent), so its record stays right. Attempts are never spent
    /// otherwise: a handler that always returns this keeps its job
    /// waiting for ever, at the pace of its holds.
    ///
    /// ```
    /// use std::time::Duration;
    /// use jobstream_worker::JobError;
    /// let e = JobError::rate_limited(Duration::from_secs(30));
    /// assert_eq!(e.class(), "rate_limited");
    /// ```
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::new(
            FailureKind::RateLimited(retry_after),
            "rate_limited",
            format!("upstream rate limit; holding the key for {retry_after:?}"),
        )
    }

    /// A failure no retry can fix (bad input, a rejected request): skip the
    /// remaining attempts and dead-letter the job.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::Permanent, "permanent", message)
    }

    /// The job is no longer wanted (the user was deleted, say): drop it.
    pub fn discard(message: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::Discard, "discard", message)
    }

    /// The handler stopped on [`JobContext::cancelled`](crate::JobContext::cancelled):
    /// the job ends as `cancelled`, no retry, no dead letter.
    pub fn cancelled() -> Self {
        Self::new(FailureKind::Cancelled, "cancelled", "cancelled on request")
    }

    /// The payload does not decode into what the handler expects.
    pub fn malformed(message: impl std::fmt::Display) -> Self {
        Self::new(FailureKind::Malformed, "malformed", message)
    }

    pub(crate) fn timeout(after: Duration) -> Self {
        Self::new(
            FailureKind::Retry,
            "timeout",
            format!("handler did not finish within {after:?}"),
        )
    }

    pub(crate) fn panic(message: String) -> Self {
        Self::new(
            FailureKind::Retry,
            "panic",
            format!("handler panicked: {message}"),
        )
    }

    /// Sets the class, a short label such as `smtp` or `http_503`.
    pub fn with_class(mut self, class: impl Into<Cow<'static, str>>) -> Self {
        self.class = class.into();
        self
    }

    /// The kind.
    pub fn kind(&self) -> FailureKind {
        self.kind
    }

    /// The class.
    pub fn class(&self) -> &str {
        &self.class
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

/// Any error that converts into `anyhow::Error` — every
/// `std::error::Error + Send + Sync + 'static`, and `anyhow::Error` itself —
/// becomes a retryable failure, so `?` works in handlers on both. The
/// message keeps the whole cause chain (`outer: inner: root`).
impl<E: Into<anyhow::Error>> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::retry(format!("{:#}", e.into()))
    }
}

/// What a handler returns.
pub type JobResult = Result<(), JobError>;
