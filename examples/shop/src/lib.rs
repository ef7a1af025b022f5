//! A small shop's background jobs on jobstream, to copy from:
//!
//! - typed jobs: a struct per job type, its name and queue in `impl Job`;
//! - four queues sharing one worker: `critical` (weight 6), `default` (3),
//!   `low` (1), and a slow `reports` queue capped at one job at a time;
//! - shared state: a Redis connection pool for the shop's own data and a
//!   producer for follow-up jobs, handed to every handler;
//! - a middleware that logs every job's time;
//! - handlers that enqueue follow-up jobs, now and days later.
//!
//! The flow: [`place_order`] enqueues [`ChargeOrder`]; once paid, it
//! enqueues [`SendReceipt`]; the receipt schedules [`AskForReview`] three
//! days later. [`DailyReport`] sums the paid orders. `tests/` shows how to
//! test all of it: handlers alone, without Redis (`tests/handlers.rs`), and
//! the whole flow against a throwaway Redis (`tests/flow.rs`).

use std::time::{Duration, Instant};

use deadpool_redis::redis;
use jobstream::{
    Job, JobContext, JobError, JobId, JobOptions, JobResult, Middleware, NewJob, Next, Producer,
    QueueOptions, Worker, WorkerBuilder,
};
use serde::{Deserialize, Serialize};

/// How long after the receipt we ask for a review.
pub const REVIEW_DELAY: Duration = Duration::from_secs(3 * 24 * 3600);

/// Charge an order's card. `critical`: a customer is waiting for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChargeOrder {
    /// The order.
    pub order_id: u64,
    /// Where the receipt goes.
    pub email: String,
    /// The amount, in cents.
    pub cents: u64,
}

impl Job for ChargeOrder {
    const NAME: &'static str = "charge_order";
    const QUEUE: &'static str = "critical";
    fn options() -> Option<JobOptions> {
        Some(
            JobOptions::new()
                .timeout(Duration::from_secs(30))
                .max_attempts(5),
        )
    }
}

/// Email the receipt of a paid order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendReceipt {
    /// The order.
    pub order_id: u64,
    /// The customer's address.
    pub email: String,
}

impl Job for SendReceipt {
    const NAME: &'static str = "send_receipt";
    // `default`, the default queue.
}

/// Ask the customer for a review, a few days after the receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskForReview {
    /// The order.
    pub order_id: u64,
    /// The customer's address.
    pub email: String,
}

impl Job for AskForReview {
    const NAME: &'static str = "ask_for_review";
    const QUEUE: &'static str = "low";
}

/// Sum the paid orders into a report. Slow: it reads every order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyReport {
    /// The report's day, `2024-05-01`.
    pub day: String,
}

impl Job for DailyReport {
    const NAME: &'static str = "daily_report";
    const QUEUE: &'static str = "reports";
    fn options() -> Option<JobOptions> {
        Some(
            JobOptions::new()
                .timeout(Duration::from_secs(600))
                .max_attempts(3),
        )
    }
}

/// What every handler shares: cheap to clone (the pool and the producer
/// are handles to shared connections).
#[derive(Clone, Debug)]
pub struct App {
    /// The shop's own data (orders, reports), here in Redis too.
    pub db: deadpool_redis::Pool,
    /// For follow-up jobs.
    pub producer: Producer,
}

impl App {
    /// The shop's state: a pool for the database at `db_url` (nothing
    /// connects until a handler asks for a connection) and `producer`.
    pub fn new(db_url: &str, producer: Producer) -> Result<Self, deadpool_redis::CreatePoolError> {
        let db = deadpool_redis::Config::from_url(db_url)
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
        Ok(Self { db, producer })
    }
}

/// What the web side calls when an order is placed: charge it in the
/// background. The order id as idempotency key lets the payment side
/// recognise a repeated charge.
pub async fn place_order(
    producer: &Producer,
    order_id: u64,
    email: &str,
    cents: u64,
) -> jobstream::Result<JobId> {
    let job = ChargeOrder {
        order_id,
        email: email.to_owned(),
        cents,
    };
    producer
        .push(NewJob::of(&job)?.idempotency_key(format!("order-{order_id}")))
        .await
}

/// The key of an order's hash.
pub fn order_key(order_id: u64) -> String {
    format!("shop:order:{order_id}")
}

/// Charges the order, records it as paid, and enqueues its receipt.
pub async fn charge_order(job: ChargeOrder, ctx: JobContext<App>) -> JobResult {
    if job.cents == 0 {
        // No retry can fix this: straight to the dead letters.
        return Err(JobError::permanent("nothing to charge"));
    }
    // The payment provider would be called here, with ctx.id() (stable
    // across retries) as its idempotency key.
    let mut db = ctx.state().db.get().await?;
    // Each write can be repeated safely: a retry after a crash changes
    // nothing twice.
    redis::pipe()
        .hset_multiple(
            order_key(job.order_id),
            &[
                ("status", "paid".to_owned()),
                ("cents", job.cents.to_string()),
            ],
        )
        .sadd("shop:paid", job.order_id)
        .exec_async(&mut db)
        .await?;
    let receipt = SendReceipt {
        order_id: job.order_id,
        email: job.email,
    };
    ctx.state().producer.enqueue(&receipt).await?;
    Ok(())
}

/// Sends the receipt, then schedules the review request.
pub async fn send_receipt(job: SendReceipt, ctx: JobContext<App>) -> JobResult {
    if !job.email.contains('@') {
        return Err(JobError::permanent("no valid address").with_class("bad_address"));
    }
    // A mail API would be called here.
    tracing::info!(order_id = job.order_id, to = %job.email, "receipt sent");
    let review = AskForReview {
        order_id: job.order_id,
        email: job.email,
    };
    ctx.state()
        .producer
        .push(NewJob::of(&review)?.delay(REVIEW_DELAY))
        .await?;
    Ok(())
}

/// Asks for a review (and remembers that it did).
pub async fn ask_for_review(job: AskForReview, ctx: JobContext<App>) -> JobResult {
    tracing::info!(order_id = job.order_id, to = %job.email, "review requested");
    let mut db = ctx.state().db.get().await?;
    redis::cmd("SADD")
        .arg("shop:reviews_asked")
        .arg(job.order_id)
        .exec_async(&mut db)
        .await?;
    Ok(())
}

/// Writes `shop:report:DAY` = `orders=N cents=M` over the paid orders.
pub async fn daily_report(job: DailyReport, ctx: JobContext<App>) -> JobResult {
    let mut db = ctx.state().db.get().await?;
    let paid: Vec<u64> = redis::cmd("SMEMBERS")
        .arg("shop:paid")
        .query_async(&mut db)
        .await?;
    let mut cents = 0;
    for order_id in &paid {
        let c: Option<u64> = redis::cmd("HGET")
            .arg(order_key(*order_id))
            .arg("cents")
            .query_async(&mut db)
            .await?;
        cents += c.unwrap_or(0);
    }
    redis::cmd("SET")
        .arg(format!("shop:report:{}", job.day))
        .arg(format!("orders={} cents={cents}", paid.len()))
        .exec_async(&mut db)
        .await?;
    Ok(())
}

/// Logs every job's type, queue, attempt, time and result.
#[derive(Debug)]
pub struct Timing;

impl Middleware for Timing {
    async fn around(&self, job: JobContext, next: Next<'_>) -> JobResult {
        let started = Instant::now();
        let (job_type, queue, attempt) = (
            job.job_type().to_owned(),
            job.queue().to_owned(),
            job.attempt(),
        );
        let result = next.run(job).await;
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(()) => tracing::info!(job_type, queue, attempt, ms, "job done"),
            Err(e) => tracing::warn!(job_type, queue, attempt, ms, error = %e, "job failed"),
        }
        result
    }
}

/// The shop's worker: every queue, every handler, the middleware and the
/// state. `main` runs it; the tests drain it.
pub fn worker(redis_url: &str, app: App) -> WorkerBuilder<App> {
    Worker::builder(redis_url)
        .concurrency(20)
        // Under backlog, critical gets 6 slots of every 10, default 3, low 1.
        .queue_with(ChargeOrder::QUEUE, QueueOptions::new().weight(6))
        .queue_with(SendReceipt::QUEUE, QueueOptions::new().weight(3))
        .queue_with(AskForReview::QUEUE, QueueOptions::new().weight(1))
        // Reports are slow: never more than one at a time.
        .queue_with(
            DailyReport::QUEUE,
            QueueOptions::new().weight(1).max_concurrency(1),
        )
        .middleware(Timing)
        .state(app)
        .job::<ChargeOrder>(charge_order)
        .job::<SendReceipt>(send_receipt)
        .job::<AskForReview>(ask_for_review)
        .job::<DailyReport>(daily_report)
}
