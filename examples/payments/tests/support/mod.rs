//! What the chaos test runs: PostgreSQL, and the worker processes.

pub mod fleet;
pub mod postgres;
