//! `fleet`: M connections expire together across N server processes. Every process's refresher
//! finds them due at once, and apps ask every instance for every connection at the same moment.
//! Promise: exactly M refreshes (no duplicate), no reuse attempt, no `invalid_grant`, nothing
//! lost; every final token is the sandbox's current one and works. `crash` (its own file) is
//! this run with one process SIGKILLed mid-refresh.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, ClusterSpec};
use crate::demand;
use crate::error::Result;
use crate::scenarios::{Options, access_ttl_for, finish, seed_then_expire};
use crate::stats::{Report, ms, rate, thousands};

/// Runs the scenario.
///
/// # Errors
/// The cluster cannot be started or driven.
pub async fn run(o: &Options) -> Result<Vec<Report>> {
    let m = o.connections.unwrap_or(10_000);
    let instances = o.instances.unwrap_or(3);
    let mut spec = ClusterSpec::new(instances, o.db, &o.pg_url);
    spec.access_ttl = o.access_ttl.unwrap_or_else(|| access_ttl_for(m, 100));
    spec.reuse_grace = o.reuse_grace.unwrap_or(0);
    let mut cluster = Cluster::start(spec.clone(), &o.bins).await?;
    let result = drive(&mut cluster, &spec, m, o.concurrency.unwrap_or(64)).await;
    finish(cluster, o.keep).await;
    result
}

async fn drive(
    cluster: &mut Cluster,
    spec: &ClusterSpec,
    m: usize,
    k: usize,
) -> Result<Vec<Report>> {
    let seeded = seed_then_expire(cluster, m, 32).await?;
    let t0 = Instant::now();
    cluster.start_all().await?;
    let up = t0.elapsed();
    let ids = cluster.connection_ids().await?;
    let target = m as u64;
    let brokers = cluster.brokers.clone();
    let sandbox = cluster.sandbox.clone();
    let watcher = tokio::spawn(async move {
        demand::time_until_refreshed(&sandbox, target, t0, Duration::from_secs(1800)).await
    });
    let apps = tokio::spawn({
        let ids = ids.clone();
        async move {
            demand::every_connection_everywhere(&brokers, &ids, k, Duration::from_secs(300)).await
        }
    });
    let mut result = apps
        .await
        .map_err(|e| crate::error::BenchError::setup(format!("demand task: {e}")))?;
    let all_fresh = watcher.await.ok().flatten();
    let demand_done = t0.elapsed();
    // Let refreshes the refreshers started finish before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.check_servers()?;
    let stats = cluster.sandbox.stats().await?;
    let verification = cluster.verify(m).await?;

    let mut r = Report::new(format!(
        "fleet — {} connections, {}",
        thousands(target),
        spec.describe()
    ));
    r.row(
        "seeded (real installs through the callback)",
        format!("{} in {:.1} s", thousands(target), seeded.as_secs_f64()),
    );
    r.row(
        "access TTL of the seeded tokens",
        format!(
            "{} s (all expired before the servers restarted)",
            spec.access_ttl
        ),
    );
    r.row("servers up (from start to healthy)", ms(up));
    r.row(
        "time to all-fresh (server start → M refreshes at Kit)",
        all_fresh.map_or_else(|| "never".into(), ms),
    );
    r.row(
        "refreshes/s",
        all_fresh.map_or_else(|| "n/a".into(), |d| rate(stats.refreshes_ok, d)),
    );
    r.row(
        "app requests (each connection on every instance at once)",
        format!(
            "{} ok in {:.1} s, {} concurrent connections",
            thousands(result.ok),
            demand_done.as_secs_f64(),
            k
        ),
    );
    r.row("app request latency", result.latencies.summary());
    r.row(
        "5xx answers from the broker (retried)",
        result.describe_5xx(),
    );
    r.row(
        "attempts with no answer (instance down, retried elsewhere)",
        thousands(result.no_answer),
    );
    r.row("sandbox token requests", thousands(stats.token_requests()));
    r.row(
        "reuse attempts absorbed by the grace window",
        thousands(stats.refresh_grace_hits),
    );
    r.check("refreshes at Kit", stats.refreshes_ok, target);
    r.check(
        "duplicate refreshes",
        stats.refreshes_ok.saturating_sub(target),
        0,
    );
    // Without a grace window the sandbox counts no grace hits: every reuse is outside it.
    r.check(
        if spec.reuse_grace == 0 {
            "refresh-token reuse attempts"
        } else {
            "reuse attempts outside the grace window"
        },
        stats
            .refresh_reuse_attempts
            .saturating_sub(stats.refresh_grace_hits),
        0,
    );
    r.check("invalid_grant", stats.invalid_grant_total, 0);
    r.check("app requests that never got a token", result.failed, 0);
    verification.report(&mut r, target);
    for e in &result.examples_5xx {
        r.note(format!("a 5xx answer (retried): {e}"));
    }
    for e in &result.examples {
        r.note(format!("failed request: {e}"));
    }
    Ok(vec![r])
}
