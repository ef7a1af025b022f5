//! Test payments: random accounts and amounts from a seeded generator,
//! some enqueued twice, and the balances they must add up to.

use std::collections::{BTreeMap, HashSet};

use rand::{Rng, SeedableRng};

use crate::payment::Payment;

/// What to generate.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// The generator's seed: the same seed gives the same payments.
    pub seed: u64,
    /// Distinct payments (distinct `txn_id`s).
    pub payments: usize,
    /// Accounts they are spread over (`acct-00`, `acct-01`, …).
    pub accounts: usize,
    /// Share of payments enqueued a second time, as another job with the
    /// same `txn_id`, somewhere later in the sequence.
    pub duplicate_rate: f64,
    /// Start of every `txn_id`: `PREFIX-00042`.
    pub txn_prefix: String,
}

/// The payments to enqueue, in order, duplicates included.
pub fn generate(options: &PlanOptions) -> Vec<Payment> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let accounts = options.accounts.max(1);
    let originals: Vec<Payment> = (0..options.payments)
        .map(|i| Payment {
            txn_id: format!("{}-{i:05}", options.txn_prefix),
            account: format!("acct-{:02}", rng.random_range(0..accounts)),
            amount_cents: rng.random_range(1..=100_000),
        })
        .collect();
    // (slot, payment): the originals in order, then each duplicate at a
    // slot at or after its original's: right behind it (two jobs racing for
    // the same txn_id) or long after it was applied.
    let mut order: Vec<(usize, usize)> = (0..originals.len()).map(|i| (i, i)).collect();
    for i in 0..originals.len() {
        if rng.random::<f64>() < options.duplicate_rate {
            order.push((rng.random_range(i..originals.len()), i));
        }
    }
    // Stable: at the same slot the original, pushed first, stays first.
    order.sort_by_key(|&(slot, _)| slot);
    order
        .into_iter()
        .filter_map(|(_, i)| originals.get(i).cloned())
        .collect()
}

/// The balance each account must end with once every distinct `txn_id`
/// in `payments` was applied exactly once.
pub fn expected_balances(payments: &[Payment]) -> BTreeMap<String, i64> {
    let mut seen = HashSet::new();
    let mut balances = BTreeMap::new();
    for p in payments {
        if seen.insert(p.txn_id.as_str()) {
            *balances.entry(p.account.clone()).or_insert(0) += p.amount_cents;
        }
    }
    balances
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn options(seed: u64) -> PlanOptions {
        PlanOptions {
            seed,
            payments: 200,
            accounts: 5,
            duplicate_rate: 0.1,
            txn_prefix: "t".into(),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_payments() {
        assert_eq!(generate(&options(7)), generate(&options(7)));
        assert_ne!(generate(&options(7)), generate(&options(8)));
    }

    #[test]
    fn duplicates_repeat_a_payment_whole_and_come_after_it() {
        let plan = generate(&options(1));
        let distinct: HashSet<&str> = plan.iter().map(|p| p.txn_id.as_str()).collect();
        assert_eq!(distinct.len(), 200);
        assert!(plan.len() > 205, "about 10% duplicates: {}", plan.len());
        for (i, p) in plan.iter().enumerate() {
            let first = plan.iter().position(|q| q.txn_id == p.txn_id).unwrap();
            assert!(first <= i);
            assert_eq!(&plan[first], p, "a duplicate is the same payment");
        }
    }

    #[test]
    fn expected_balances_count_each_txn_id_once() {
        let plan = generate(&options(3));
        let once: i64 = expected_balances(&plan).values().sum();
        let distinct: BTreeMap<&str, i64> = plan
            .iter()
            .map(|p| (p.txn_id.as_str(), p.amount_cents))
            .collect();
        assert_eq!(once, distinct.values().sum::<i64>());
        let all: i64 = plan.iter().map(|p| p.amount_cents).sum();
        assert!(all > once);
    }
}
