//! The ledger in PostgreSQL: account balances, and the payments applied to
//! them, one row per `txn_id`.
//!
//! The whole exactly-once effect is [`apply`]: the `txn_id` row and the
//! balance change are written in one transaction, and the primary key on
//! `applied_txns.txn_id` lets only one of them ever commit.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::Client;

use crate::payment::Payment;

/// The tables. `applied_txns.txn_id` is the guard: its primary key is what
/// makes a second application of the same payment impossible, whatever
/// the worker, the attempt or the job that carries it.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    account       TEXT PRIMARY KEY,
    balance_cents BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS applied_txns (
    txn_id       TEXT PRIMARY KEY,
    account      TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    job_id       TEXT NOT NULL,
    applied_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
";

/// Any number fixed for this example: the advisory lock that serialises
/// schema creation.
const SCHEMA_LOCK: i64 = 0x006a_6f62_7370_6179; // "jobspay"

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The payment was applied now.
    Now,
    /// It had been applied before (by this job's earlier attempt, or by
    /// another job with the same `txn_id`): nothing changed.
    Already,
}

/// Why [`apply`] failed.
#[derive(Debug)]
pub enum LedgerError {
    /// The database failed (connection lost, timeout): worth a retry. The
    /// transaction was rolled back or never committed, or committed with
    /// its reply lost: either way a retry is safe.
    Db(tokio_postgres::Error),
    /// The `txn_id` was applied before with another account or amount: the
    /// producer reused a `txn_id` for a different payment. No retry fixes
    /// that.
    Conflict {
        /// The reused `txn_id`.
        txn_id: String,
    },
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Db(e) => write!(f, "database: {e}"),
            Self::Conflict { txn_id } => write!(
                f,
                "txn_id {txn_id} was applied before with another account or amount"
            ),
        }
    }
}

impl std::error::Error for LedgerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Db(e) => Some(e),
            Self::Conflict { .. } => None,
        }
    }
}

impl From<tokio_postgres::Error> for LedgerError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e)
    }
}

/// Creates the tables unless they exist.
///
/// Several workers starting at once would race on `CREATE TABLE IF NOT
/// EXISTS` (PostgreSQL can then fail one of them on its catalog's unique
/// index), so creation runs under a transaction-scoped advisory lock.
pub async fn ensure_schema(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute(SCHEMA).await?;
    tx.commit().await
}

/// Applies `payment` once, in one transaction:
///
/// 1. `INSERT INTO applied_txns … ON CONFLICT (txn_id) DO NOTHING`: the
///    guard. When another transaction holds the same `txn_id` uncommitted,
///    this waits for it: if it commits, no row is inserted here; if it
///    rolls back, this one inserts.
/// 2. No row inserted: applied before. Nothing else is written; the stored
///    payment is compared with this one, to catch a reused `txn_id`.
/// 3. Row inserted: `work` passes (simulated work, so that a SIGKILL can
///    land inside the transaction), then the balance changes, and both
///    commit together. A crash before the commit leaves neither.
///
/// `job_id` is recorded for the audit trail only: which job applied it.
pub async fn apply(
    client: &mut Client,
    payment: &Payment,
    job_id: &str,
    work: Duration,
) -> Result<Applied, LedgerError> {
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            "INSERT INTO applied_txns (txn_id, account, amount_cents, job_id)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (txn_id) DO NOTHING",
            &[
                &payment.txn_id,
                &payment.account,
                &payment.amount_cents,
                &job_id,
            ],
        )
        .await?;
    if inserted == 0 {
        let row = tx
            .query_one(
                "SELECT account, amount_cents FROM applied_txns WHERE txn_id = $1",
                &[&payment.txn_id],
            )
            .await?;
        let (account, amount_cents): (String, i64) = (row.try_get(0)?, row.try_get(1)?);
        // Dropping `tx` rolls back: nothing was written.
        if account != payment.account || amount_cents != payment.amount_cents {
            return Err(LedgerError::Conflict {
                txn_id: payment.txn_id.clone(),
            });
        }
        return Ok(Applied::Already);
    }
    if !work.is_zero() {
        tokio::time::sleep(work).await;
    }
    tx.execute(
        "INSERT INTO accounts (account, balance_cents) VALUES ($1, $2)
         ON CONFLICT (account) DO UPDATE
         SET balance_cents = accounts.balance_cents + EXCLUDED.balance_cents",
        &[&payment.account, &payment.amount_cents],
    )
    .await?;
    tx.commit().await?;
    Ok(Applied::Now)
}

/// Every account's balance, by account.
pub async fn balances(client: &Client) -> Result<BTreeMap<String, i64>, tokio_postgres::Error> {
    let rows = client
        .query("SELECT account, balance_cents FROM accounts", &[])
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Every applied `txn_id` with its account and amount.
pub async fn applied(client: &Client) -> Result<Vec<(String, String, i64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT txn_id, account, amount_cents FROM applied_txns ORDER BY txn_id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}
