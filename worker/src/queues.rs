//! Which queues a worker serves, and how they share its slots.

use jobstream_core::{Error, QueueName};

/// How a queue shares the worker's slots with the other queues it serves
/// (see [`WorkerBuilder::queue_with`](crate::WorkerBuilder::queue_with)).
///
/// ```
/// use jobstream_worker::QueueOptions;
/// // A third of the slots under backlog, never more than 4 at once.
/// let reports = QueueOptions::new().weight(1).max_concurrency(4);
/// # let _ = reports;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueOptions {
    /// Share of the slots under backlog, against the other queues' weights
    /// (ignored under [`QueueOrder::Strict`](crate::QueueOrder::Strict)).
    /// At least 1; default 1.
    pub weight: u32,
    /// Most of this queue's jobs running at once (default: the worker's
    /// whole concurrency). Caps keep slow work from taking every slot.
    pub max_concurrency: Option<usize>,
    /// Fleet-wide rate limit: at most this many of the queue's jobs start
    /// per period across every worker (default: none).
    pub rate_limit: Option<jobstream_core::RateLimit>,
    /// Most jobs of one group (field `group`) admitted at once, fleet-wide;
    /// `None` leaves the queue's setting in Redis as it is (default 1).
    pub group_concurrency: Option<u32>,
    /// Fleet-wide rate limits of single job types of the queue (see
    /// [`QueueOptions::type_rate_limit`]); default none.
    pub type_rate_limits: Vec<(String, jobstream_core::RateLimit)>,
    /// Fleet-wide rate limit of every distinct `rate_key` of the queue
    /// (see [`QueueOptions::key_rate_limit`]); default none.
    pub key_rate_limit: Option<jobstream_core::RateLimit>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl QueueOptions {
    /// Weight 1, no cap of its own.
    pub fn new() -> Self {
        Self {
            weight: 1,
            max_concurrency: None,
            rate_limit: None,
            group_concurrency: None,
            type_rate_limits: Vec::new(),
            key_rate_limit: None,
        }
    }

    /// This queue's weight.
    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// At most `n` of this queue's jobs run at once.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// At most `limit` of this queue's jobs start per period, across the
    /// whole fleet (state in Redis, `PREFIX:{Q}:rate`): a worker takes
    /// tokens before it fetches and fetches no more than it was granted,
    /// so a job held back waits in the queue, spending no attempt. Every
    /// worker of the queue should declare the same limit.
    ///
    /// ```
    /// use jobstream_worker::{QueueOptions, RateLimit};
    /// let api = QueueOptions::new().rate_limit(RateLimit::per_second(100)?);
    /// # let _ = api;
    /// # Ok::<(), jobstream_worker::Error>(())
    /// ```
    pub fn rate_limit(mut self, limit: jobstream_core::RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// At most `n` jobs of one group (a customer, a tenant: the job's
    /// `group`) are admitted at once, across the whole fleet (1 to 10,000;
    /// the default is 1: each group's jobs run one at a time, in enqueue
    /// order). Groups take turns, so one group's backlog delays another
    /// group's job by at most `n` jobs of each busy group. Written at start
    /// to `PREFIX:{Q}:meta` (field `group_concurrency`), where producers
    /// and every worker read it: the last worker to start wins, so every
    /// worker of the queue should declare the same. See
    /// docs/flow-control.md.
    ///
    /// ```
    /// use jobstream_worker::QueueOptions;
    /// let tenants = QueueOptions::new().group_concurrency(2);
    /// # let _ = tenants;
    /// ```
    pub fn group_concurrency(mut self, n: u32) -> Self {
        self.group_concurrency = Some(n.clamp(1, jobstream_core::groups::MAX_GROUP_CONCURRENCY));
        self
    }

    /// At most `limit` jobs of type `job_type` of this queue start per
    /// period, across the whole fleet (state in Redis,
    /// `PREFIX:{Q}:rate:type:<job_type>`); the queue's other types are not
    /// slowed. Checked after a job is read, before its handler runs (one
    /// `throttle-6` call per job of that type): a job over the limit is
    /// deferred to `scheduled`, to its place in line, with no attempt
    /// spent (counted `throttled`). Declaring the same type again replaces
    /// its limit. Every worker of the queue should declare the same limits.
    ///
    /// ```
    /// use jobstream_worker::{QueueOptions, RateLimit};
    /// let q = QueueOptions::new().type_rate_limit("geocode", RateLimit::per_second(50)?);
    /// # let _ = q;
    /// # Ok::<(), jobstream_worker::Error>(())
    /// ```
    pub fn type_rate_limit(
        mut self,
        job_type: impl Into<String>,
        limit: jobstream_core::RateLimit,
    ) -> Self {
        let job_type = job_type.into();
        self.type_rate_limits.retain(|(t, _)| *t != job_type);
        self.type_rate_limits.push((job_type, limit));
        self
    }

    /// Every distinct rate key of this queue's jobs (the job field
    /// `rate_key`, e.g. a customer id: `NewJob::rate_key`) gets its own
    /// fleet-wide bucket with this limit (`PREFIX:{Q}:rate:key:<K>`); jobs
    /// without a rate key are not limited by it. Enforced as
    /// [`QueueOptions::type_rate_limit`] is (one `throttle-6` call per job
    /// with a rate key; both limits apply to a job that has both, a token
    /// taken from each only when both have one).
    ///
    /// ```
    /// use jobstream_worker::{QueueOptions, RateLimit};
    /// let q = QueueOptions::new().key_rate_limit(RateLimit::per_second(5)?.burst(5));
    /// # let _ = q;
    /// # Ok::<(), jobstream_worker::Error>(())
    /// ```
    pub fn key_rate_limit(mut self, limit: jobstream_core::RateLimit) -> Self {
        self.key_rate_limit = Some(limit);
        self
    }
}

/// A checked queue: its name and options.
#[derive(Debug, Clone)]
pub(crate) struct QueueSpec {
    pub(crate) name: QueueName,
    pub(crate) options: QueueOptions,
}

/// Checks the queues as configured; none configured means `default`.
pub(crate) fn check(
    queues: Vec<(String, QueueOptions)>,
    concurrency: usize,
) -> Result<Vec<QueueSpec>, Error> {
    let queues = if queues.is_empty() {
        vec![("default".to_owned(), QueueOptions::new())]
    } else {
        queues
    };
    let mut out: Vec<QueueSpec> = Vec::with_capacity(queues.len());
    for (name, options) in queues {
        let name = QueueName::new(&name)?;
        if out.iter().any(|q| q.name == name) {
            return Err(Error::Config(format!(
                "queue {:?} is added twice; add each queue once",
                name.as_str()
            )));
        }
        if options.weight == 0 {
            return Err(Error::Config(format!(
                "queue {:?}: weight must be at least 1",
                name.as_str()
            )));
        }
        if options.max_concurrency == Some(0) {
            return Err(Error::Config(format!(
                "queue {:?}: max_concurrency must be at least 1",
                name.as_str()
            )));
        }
        if let Some(cap) = options.max_concurrency
            && cap > concurrency
        {
            tracing::debug!(
                queue = name.as_str(),
                cap,
                concurrency,
                "queue cap above the worker's concurrency has no effect"
            );
        }
        out.push(QueueSpec { name, options });
    }
    Ok(out)
}
