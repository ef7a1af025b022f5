//! What the harness measures besides time: Redis CPU and commands (from
//! `INFO`), process RSS, latency percentiles.

use redis::aio::MultiplexedConnection;

/// Redis-side cost of a scenario.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisCost {
    /// CPU seconds (user + sys) Redis spent.
    pub cpu_s: f64,
    /// Commands Redis executed (including those run inside scripts).
    pub calls: u64,
}

async fn info(conn: &mut MultiplexedConnection, section: &str) -> String {
    redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .unwrap_or_default()
}

/// Resets `INFO commandstats` and returns the CPU used so far.
pub async fn start(conn: &mut MultiplexedConnection) -> f64 {
    let _: Result<(), _> = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(conn)
        .await;
    cpu(conn).await
}

async fn cpu(conn: &mut MultiplexedConnection) -> f64 {
    let text = info(conn, "cpu").await;
    ["used_cpu_sys:", "used_cpu_user:"]
        .iter()
        .map(|k| {
            field(&text, k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum()
}

fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

/// Cost since [`start`] returned `cpu_before`.
pub async fn finish(conn: &mut MultiplexedConnection, cpu_before: f64) -> RedisCost {
    let cpu_after = cpu(conn).await;
    let stats = info(conn, "commandstats").await;
    // Lines like: cmdstat_xadd:calls=1000,usec=...; the INFO and CONFIG
    // calls of the harness itself are left out.
    let calls = stats
        .lines()
        .filter(|l| {
            l.starts_with("cmdstat_")
                && !l.starts_with("cmdstat_info:")
                && !l.starts_with("cmdstat_config")
        })
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    RedisCost {
        cpu_s: (cpu_after - cpu_before).max(0.0),
        calls,
    }
}

/// Peak resident set size of this process, MB (VmHWM).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// p-th percentile (0..=100) of sorted samples.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
