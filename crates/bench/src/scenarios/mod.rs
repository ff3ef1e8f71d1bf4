//! The named scenarios. Each starts its own cluster, drives it, and returns its reports.

pub mod crash;
pub mod fleet;
pub mod hot;
pub mod install;
pub mod million;
pub mod pg_restart;
pub mod soak;
pub mod steady;
pub mod storm;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::db::DbKind;
use crate::error::{BenchError, Result};
use crate::supervisor::Bins;

/// Settings shared by every scenario; `None` means the scenario's own default.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the binaries are.
    pub bins: Bins,
    /// Database engine.
    pub db: DbKind,
    /// Existing PostgreSQL server for `--db postgres`.
    pub pg_url: String,
    /// PostgreSQL tools for the private cluster of `pg-restart`.
    pub pg_bin: PathBuf,
    /// Server processes (N).
    pub instances: Option<usize>,
    /// Connections (M).
    pub connections: Option<usize>,
    /// Concurrent requests (K).
    pub concurrency: Option<usize>,
    /// Length of timed scenarios.
    pub duration: Option<Duration>,
    /// Sandbox `--access-ttl` for the seeded connections.
    pub access_ttl: Option<u64>,
    /// Sandbox `--reuse-grace`.
    pub reuse_grace: Option<u64>,
    /// Keep the run directories (logs, SQLite files).
    pub keep: bool,
}

/// Seeds `m` connections whose tokens live `cluster.spec.access_ttl` seconds, stops every
/// server, waits until every seeded token has expired, and resets the sandbox's counters: when
/// the servers start again, all `m` connections are expired at once. Returns the seeding time.
///
/// # Errors
/// Seeding fails, or took so long that a refresher already renewed some tokens (then the access
/// TTL must be longer).
pub async fn seed_then_expire(
    cluster: &mut Cluster,
    m: usize,
    concurrency: usize,
) -> Result<Duration> {
    cluster.sandbox.reset_stats().await?;
    let seeded = cluster.seed("creator", m, concurrency).await?;
    let seed_end = Instant::now();
    let stats = cluster.sandbox.stats().await?;
    if stats.refreshes_ok > 0 {
        return Err(BenchError::setup(format!(
            "{} connections were refreshed while seeding ({:.1} s with --access-ttl {}): pass a longer --access-ttl",
            stats.refreshes_ok,
            seeded.as_secs_f64(),
            cluster.spec.access_ttl
        )));
    }
    cluster.stop_all().await;
    let expired_at = seed_end + Duration::from_secs(cluster.spec.access_ttl + 1);
    tokio::time::sleep_until(expired_at.into()).await;
    cluster.sandbox.reset_stats().await?;
    Ok(seeded)
}

/// The shortest access TTL that lets `m` installs (at `installs_per_sec`, with 50 % headroom)
/// finish before the first seeded token falls due. A token is due `refresh_margin` before it
/// expires, up to a quarter of that margin earlier with jitter: from ⅜ of its life for lifetimes
/// up to 120 s (margin = half), from `T − 75 s` for lifetimes up to 600 s (margin = 60 s).
#[must_use]
pub fn access_ttl_for(m: usize, installs_per_sec: usize) -> u64 {
    let seed_secs = (m / installs_per_sec.max(1)) as u64 + 2;
    let headroom = seed_secs * 3 / 2 + 1;
    let short = (headroom * 8).div_ceil(3);
    if short <= 120 {
        short.max(12)
    } else {
        headroom + 76
    }
}

/// Stops the cluster, keeping its directory if asked (and saying where).
pub async fn finish(cluster: Cluster, keep: bool) {
    if let Some(dir) = cluster.shutdown(keep).await {
        eprintln!("run directory kept: {}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::access_ttl_for;

    #[test]
    fn no_seeded_token_falls_due_while_seeding() {
        for (m, rate) in [
            (1, 100),
            (500, 100),
            (2_000, 100),
            (10_000, 100),
            (10_000, 20),
        ] {
            let ttl = access_ttl_for(m, rate);
            let margin = (ttl / 10).clamp(60, 900).min(ttl / 2);
            let earliest_due = ttl - margin - margin / 4;
            assert!(
                earliest_due > (m / rate) as u64,
                "m={m} rate={rate} ttl={ttl}"
            );
        }
    }
}
