//! `example-payments worker` applies payments until Ctrl-C or SIGTERM;
//! `example-payments produce --count N` enqueues N payments (some twice);
//! `example-payments report` prints the balances. Redis at `$REDIS_URL`,
//! PostgreSQL at `$DATABASE_URL`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use example_payments::plan::{self, PlanOptions};
use example_payments::{Faults, Payment, WorkerOptions, connect, error_chain, ledger, worker};
use jobstream::{Job, NewJob, Producer};

#[derive(Parser)]
#[command(about = "jobstream example: exactly-once payments on PostgreSQL")]
struct Cli {
    /// Redis URL.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true,
        hide_env_values = true
    )]
    redis_url: String,
    /// PostgreSQL URL (`postgres://user:password@host:port/db`).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true,
        hide_env_values = true
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply payments until SIGTERM or Ctrl-C.
    Worker {
        /// Jobs run at once (and database connections).
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Share (0..0.9) of attempts failing on purpose before the
        /// transaction, and again after the commit (as after a lost ack).
        #[arg(long, default_value_t = 0.0)]
        fail_rate: f64,
        /// Simulated work inside each payment's transaction, ms.
        #[arg(long, default_value_t = 0)]
        work_ms: u64,
        /// Attempts per job before it goes to dead.
        #[arg(long, default_value_t = 20)]
        max_attempts: u32,
        /// First retry wait in ms (doubles per attempt, equal jitter).
        #[arg(long, default_value_t = 200)]
        backoff_ms: u64,
        /// Longest retry wait in ms.
        #[arg(long, default_value_t = 10_000)]
        backoff_max_ms: u64,
        /// Jobs of a crashed worker are taken over after this long, ms.
        #[arg(long, default_value_t = 30_000)]
        visibility_timeout_ms: u64,
    },
    /// Enqueue payments with random accounts and amounts.
    Produce {
        /// Distinct payments.
        #[arg(long, default_value_t = 100)]
        count: usize,
        /// Accounts to spread them over.
        #[arg(long, default_value_t = 10)]
        accounts: usize,
        /// Share of payments enqueued twice (as two jobs, same txn_id).
        #[arg(long, default_value_t = 0.1)]
        duplicate_rate: f64,
        /// Seed of the generator: the same seed makes the same txn_ids, so
        /// producing twice with one seed changes no balance.
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Print every balance and the number of applied payments (creating
    /// the tables if no worker did yet).
    Report,
}

#[tokio::main]
async fn main() -> ExitCode {
    // RUST_LOG for the level, JOBSTREAM_LOG_FORMAT=json for JSON lines.
    jobstream::init_logging();
    let cli = Cli::parse();
    // Errors are printed without the URLs: they may hold passwords.
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("example-payments: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn run(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        Command::Worker {
            concurrency,
            fail_rate,
            work_ms,
            max_attempts,
            backoff_ms,
            backoff_max_ms,
            visibility_timeout_ms,
        } => {
            let options = WorkerOptions {
                concurrency,
                max_attempts,
                backoff: Duration::from_millis(backoff_ms),
                backoff_max: Duration::from_millis(backoff_max_ms),
                visibility_timeout: Duration::from_millis(visibility_timeout_ms),
            };
            let faults = Faults::with_rate(fail_rate);
            let work = Duration::from_millis(work_ms);
            let app = connect(&cli.database_url, concurrency, faults, work).await?;
            tracing::info!(concurrency, fail_rate = faults.rate(), "payments worker");
            worker(&cli.redis_url, app, &options).build()?.run().await?;
        }
        Command::Produce {
            count,
            accounts,
            duplicate_rate,
            seed,
        } => {
            let seed = seed.unwrap_or_else(rand::random);
            let payments = plan::generate(&PlanOptions {
                seed,
                payments: count,
                accounts,
                duplicate_rate,
                txn_prefix: format!("t{seed:x}"),
            });
            let jobs = payments
                .iter()
                .map(NewJob::of)
                .collect::<Result<Vec<_>, _>>()?;
            let producer = Producer::connect(&cli.redis_url).await?;
            let ids = producer.enqueue_many(Payment::QUEUE, jobs).await?;
            println!(
                "seed {seed}: {} jobs for {count} payments ({} enqueued twice)",
                ids.len(),
                ids.len().saturating_sub(count)
            );
            for (account, cents) in plan::expected_balances(&payments) {
                println!("{account} +{cents} cents");
            }
        }
        Command::Report => {
            let db = example_payments::app::pool(&cli.database_url, 1)?;
            let mut client = db.get().await?;
            // Before any worker ran, an empty ledger rather than an error.
            ledger::ensure_schema(&mut client).await?;
            let applied = ledger::applied(&client).await?;
            for (account, cents) in ledger::balances(&client).await? {
                println!("{account} {cents} cents");
            }
            println!("{} payments applied", applied.len());
        }
    }
    Ok(())
}
