//! The groups of a queue (`jobstream queue groups`): which tenants have
//! jobs admitted and how many wait behind them.

use jobstream_core::groups::GroupInfo;

use crate::Result;
use crate::inspect::Inspector;

/// A queue's groups as [`Inspector::groups`] reads them.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[non_exhaustive]
pub struct GroupsView {
    /// Jobs of one group admitted at once (`group_concurrency`, default 1).
    pub concurrency: u32,
    /// Groups with jobs admitted, most waiting first (at most the limit
    /// asked for).
    pub groups: Vec<GroupInfo>,
    /// Groups with jobs admitted, in all (`HLEN`).
    pub total: u64,
    /// True when more groups exist than were read (the first `scan_cap`
    /// found by `HSCAN` were sorted): the busiest may be missing.
    pub capped: bool,
}

impl Inspector {
    /// The groups of `queue` with jobs admitted: reads at most `scan_cap`
    /// of them (one `XLEN` each, pipelined), and returns the `limit` with
    /// the most jobs waiting.
    pub async fn groups(&self, queue: &str, limit: usize, scan_cap: usize) -> Result<GroupsView> {
        let store = self.store(queue)?;
        let concurrency = store.group_concurrency().await?;
        let total = store.stats(0).await?.groups;
        let mut groups = store.groups(scan_cap).await?;
        let capped = (groups.len() as u64) < total;
        groups.sort_by(|a, b| {
            b.waiting
                .cmp(&a.waiting)
                .then(b.admitted.cmp(&a.admitted))
                .then(a.group.cmp(&b.group))
        });
        groups.truncate(limit);
        Ok(GroupsView {
            concurrency,
            groups,
            total,
            capped,
        })
    }
}
