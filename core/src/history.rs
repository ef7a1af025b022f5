//! A queue's recent throughput, kept in Redis so that every viewer of the
//! dashboard sees the same curve and a reload loses nothing.
//!
//! `PREFIX:{Q}:history` is a stream with one entry per interval: its id is
//! `<interval start, unix ms>-1` and its fields are the queue's counters at
//! that moment (`processed`, `failed` = `retried` + `dead`). Rates are the
//! differences between neighbouring samples. Writing an entry with an
//! explicit id makes sampling idempotent across processes: when several
//! dashboards run, the first to sample an interval writes it and the others'
//! `XADD` is refused (an id not above the last one), at the cost of one
//! refused command each. `MAXLEN` bounds the stream to [`HISTORY_POINTS`]
//! entries (an hour at the default step).

use redis::Value;

use crate::error::{Error, Result};
use crate::reply;
use crate::store::QueueStore;

/// Entries kept per queue: an hour of 10 s samples.
pub const HISTORY_POINTS: usize = 360;

/// One sample of a queue's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// The start of its interval, unix ms (server clock).
    pub at_ms: u64,
    /// Jobs processed, in total, then.
    pub processed: u64,
    /// Failed attempts (retried + dead), in total, then.
    pub failed: u64,
}

/// What [`QueueStore::record_sample`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sampled {
    /// This call wrote the interval's sample.
    Written,
    /// Another process wrote it first.
    AlreadyThere,
}

impl QueueStore {
    /// Writes the queue's counters as the sample of the interval of length
    /// `step_ms` that contains `now_ms` (server clock). One `HMGET` and
    /// one `XADD … MAXLEN`.
    pub async fn record_sample(&self, now_ms: u64, step_ms: u64) -> Result<Sampled> {
        let step = step_ms.max(1);
        let at = now_ms / step * step;
        let mut hmget = redis::cmd("HMGET");
        hmget
            .arg(self.keys().stats())
            .arg("processed")
            .arg("retried")
            .arg("dead");
        let counts: Vec<Option<i64>> = self.query("HMGET", &hmget).await?;
        let n = |i: usize| counts.get(i).copied().flatten().unwrap_or(0).max(0) as u64;
        let mut xadd = redis::cmd("XADD");
        xadd.arg(self.keys().history())
            .arg("MAXLEN")
            .arg(HISTORY_POINTS)
            .arg(format!("{at}-1"))
            .arg("processed")
            .arg(n(0))
            .arg("failed")
            .arg(n(1).saturating_add(n(2)));
        match self.query::<Value>("XADD", &xadd).await {
            Ok(_) => Ok(Sampled::Written),
            // "ERR The ID specified in XADD is equal or smaller than the
            // target stream top item": this interval is written already.
            Err(Error::Redis { message, .. }) if message.contains("equal or smaller") => {
                Ok(Sampled::AlreadyThere)
            }
            Err(e) => Err(e),
        }
    }

    /// The newest `count` samples, oldest first (`XREVRANGE … COUNT`).
    /// Entries that are not samples (written by hand) are skipped.
    pub async fn samples(&self, count: usize) -> Result<Vec<Sample>> {
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(self.keys().history())
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(count.max(1));
        let v: Value = self.query("XREVRANGE", &cmd).await?;
        let mut out: Vec<Sample> = reply::entries("XREVRANGE", v)?
            .into_iter()
            .filter_map(|e| {
                let at_ms = e.id.split_once('-')?.0.parse().ok()?;
                let num = |name: &str| -> Option<u64> {
                    let (_, v) = e.fields.iter().find(|(k, _)| k == name.as_bytes())?;
                    std::str::from_utf8(v).ok()?.parse().ok()
                };
                Some(Sample {
                    at_ms,
                    processed: num("processed")?,
                    failed: num("failed")?,
                })
            })
            .collect();
        out.reverse();
        Ok(out)
    }
}

/// Per-second rates between neighbouring samples: `(at_ms, processed/s,
/// failed/s)` at the later sample of each pair. A pair further apart than
/// `max_gap_ms` (no dashboard ran) gives no point, and a counter that went
/// down (the stats hash was reset) counts as 0.
pub fn rates(samples: &[Sample], max_gap_ms: u64) -> Vec<(u64, f64, f64)> {
    samples
        .windows(2)
        .filter_map(|w| {
            let dt = w[1].at_ms.checked_sub(w[0].at_ms)?;
            if dt == 0 || dt > max_gap_ms {
                return None;
            }
            let per_s = |a: u64, b: u64| b.saturating_sub(a) as f64 * 1000.0 / dt as f64;
            Some((
                w[1].at_ms,
                per_s(w[0].processed, w[1].processed),
                per_s(w[0].failed, w[1].failed),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: u64, processed: u64, failed: u64) -> Sample {
        Sample {
            at_ms,
            processed,
            failed,
        }
    }

    #[test]
    fn rates_skip_gaps_and_resets() {
        let samples = [
            s(0, 0, 0),
            s(10_000, 100, 10),
            // a reset of the counters
            s(20_000, 50, 0),
            // a gap: no dashboard for a minute
            s(80_000, 60, 0),
            s(90_000, 160, 5),
        ];
        let r = rates(&samples, 25_000);
        assert_eq!(
            r,
            vec![(10_000, 10.0, 1.0), (20_000, 0.0, 0.0), (90_000, 10.0, 0.5)]
        );
    }
}
