//! `storm`: K simultaneous `POST /v1/connections/{id}/token` on one expired connection, spread
//! over N server processes. Promise: exactly one refresh at Kit, no `invalid_grant`, no reuse.
//!
//! The connection is seeded, the servers are stopped until its token has expired, and then
//! started again with Kit's token endpoint slowed down (one latency fault), so that the refresh
//! the first process starts is still in flight when the K requests arrive.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, ClusterSpec};
use crate::demand;
use crate::error::Result;
use crate::scenarios::{Options, finish, seed_then_expire};
use crate::stats::{Report, ms, thousands};

/// How long the sandbox holds the one refresh answer (a slow Kit).
const KIT_LATENCY_MS: u64 = 300;

/// Runs the scenario.
///
/// # Errors
/// The cluster cannot be started or driven.
pub async fn run(o: &Options) -> Result<Vec<Report>> {
    let instances = o.instances.unwrap_or(2);
    let k = o.concurrency.unwrap_or(500);
    let mut spec = ClusterSpec::new(instances, o.db, &o.pg_url);
    spec.access_ttl = o.access_ttl.unwrap_or(4);
    spec.reuse_grace = o.reuse_grace.unwrap_or(0);
    let mut cluster = Cluster::start(spec.clone(), &o.bins).await?;
    let result = drive(&mut cluster, &spec, k).await;
    finish(cluster, o.keep).await;
    result
}

async fn drive(cluster: &mut Cluster, spec: &ClusterSpec, k: usize) -> Result<Vec<Report>> {
    seed_then_expire(cluster, 1, 1).await?;
    cluster
        .sandbox
        .add_fault(
            serde_json::json!({"endpoint": "token", "kind": "latency", "ms": KIT_LATENCY_MS}),
        )
        .await?;
    let restart = Instant::now();
    cluster.start_all().await?;
    let started_in = restart.elapsed();
    let ids = cluster.connection_ids().await?;
    let id = ids.first().cloned().unwrap_or_default();
    let fired = Instant::now();
    let mut result = demand::storm(&cluster.brokers, &id, k, Duration::from_secs(60)).await;
    let wall = fired.elapsed();
    let stats = cluster.sandbox.stats().await?;
    let verification = cluster.verify(1).await?;

    let mut r = Report::new(format!(
        "storm — {k} concurrent token requests, {}",
        spec.describe()
    ));
    r.row("requests answered with a token", thousands(result.ok));
    r.row("latency (client-observed)", result.latencies.summary());
    r.row("storm wall time", ms(wall));
    r.row(
        "requests that waited for the in-flight refresh (> 100 ms)",
        thousands(result.latencies.count_over(Duration::from_millis(100)) as u64),
    );
    r.row("servers restarted in", ms(started_in));
    r.row(
        "sandbox token requests (refresh calls)",
        thousands(stats.token_requests()),
    );
    r.row("5xx answers from the broker", result.describe_5xx());
    r.check("refreshes at Kit", stats.refreshes_ok, 1);
    r.check("invalid_grant", stats.invalid_grant_total, 0);
    r.check(
        "refresh-token reuse attempts",
        stats.refresh_reuse_attempts,
        0,
    );
    r.check("requests without a token", result.failed, 0);
    verification.report(&mut r, 1);
    r.note(format!(
        "The token endpoint answered the refresh after {KIT_LATENCY_MS} ms (one injected latency fault: a slow Kit), so the storm arrives while the refresh is in flight."
    ));
    Ok(vec![r])
}
