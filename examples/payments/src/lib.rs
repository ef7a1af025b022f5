//! Exactly-once effects on a real database, with jobstream's at-least-once
//! delivery: a payments ledger in PostgreSQL.
//!
//! A [`Payment`] job carries a `txn_id` the producer chose. Its handler,
//! [`apply_payment`], applies it in one PostgreSQL transaction that first
//! inserts the `txn_id` into `applied_txns` (primary key, `ON CONFLICT DO
//! NOTHING`) and changes the balance only when that row was new
//! ([`ledger::apply`]). However often the payment is delivered (a worker
//! killed before its ack, a retry after an error past the commit, the same
//! payment enqueued twice), the balance changes once.
//!
//! `tests/chaos.rs` checks that against a real PostgreSQL and Redis while
//! worker processes are SIGKILLed and Redis restarts. The recipe:
//! `docs/exactly-once.md`.

pub mod app;
pub mod faults;
pub mod ledger;
pub mod payment;
pub mod plan;

pub use app::{App, WorkerOptions, apply_payment, connect, error_chain, worker};
pub use faults::Faults;
pub use payment::Payment;
