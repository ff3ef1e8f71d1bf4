//! `pg-restart`: the servers run on a PostgreSQL cluster the harness started itself; while M
//! expired connections are being refreshed, the cluster is stopped (`pg_ctl stop -m fast`) and
//! started again. Promise: every server reports not-ready on `/readyz` while it is down and
//! ready again afterwards without being restarted; no duplicate refresh, no reuse attempt,
//! nothing lost.

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, ClusterSpec};
use crate::db::{Database, DbKind};
use crate::demand;
use crate::error::{BenchError, Result};
use crate::scenarios::{Options, access_ttl_for, finish, seed_then_expire};
use crate::stats::{Report, ms, thousands};

/// Runs the scenario.
///
/// # Errors
/// PostgreSQL or the cluster cannot be started.
pub async fn run(o: &Options) -> Result<Vec<Report>> {
    let m = o.connections.unwrap_or(1_000);
    let mut spec = ClusterSpec::new(o.instances.unwrap_or(2), DbKind::Postgres, &o.pg_url);
    spec.own_pg = Some(o.pg_bin.clone());
    spec.access_ttl = o.access_ttl.unwrap_or_else(|| access_ttl_for(m, 100));
    spec.reuse_grace = o.reuse_grace.unwrap_or(0);
    let mut cluster = Cluster::start(spec.clone(), &o.bins).await?;
    let down_for = o.duration.unwrap_or(Duration::from_secs(5));
    let result = drive(
        &mut cluster,
        &spec,
        m,
        o.concurrency.unwrap_or(64),
        down_for,
    )
    .await;
    finish(cluster, o.keep).await;
    result
}

async fn drive(
    cluster: &mut Cluster,
    spec: &ClusterSpec,
    m: usize,
    k: usize,
    down_for: Duration,
) -> Result<Vec<Report>> {
    seed_then_expire(cluster, m, 32).await?;
    let t0 = Instant::now();
    cluster.start_all().await?;
    let ids = cluster.connection_ids().await?;
    let target = m as u64;
    let brokers = cluster.brokers.clone();
    let apps = tokio::spawn({
        let ids = ids.clone();
        async move {
            demand::every_connection_everywhere(&brokers, &ids, k, Duration::from_secs(300)).await
        }
    });
    demand::time_until_refreshed(&cluster.sandbox, target / 3, t0, Duration::from_secs(600)).await;
    let at = cluster.sandbox.stats().await?.refreshes_ok;
    let Database::Own(pg) = &cluster.db else {
        return Err(BenchError::setup(
            "pg-restart needs its own PostgreSQL cluster",
        ));
    };
    pg.stop().await?;
    let down_at = Instant::now();
    let mut saw_not_ready = vec![false; cluster.brokers.len()];
    while down_at.elapsed() < down_for {
        for (i, b) in cluster.brokers.iter().enumerate() {
            if b.ready_status().await == 503 {
                saw_not_ready[i] = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    pg.start().await?;
    let up_at = Instant::now();
    let mut ready_again = vec![None; cluster.brokers.len()];
    while ready_again.iter().any(Option::is_none) && up_at.elapsed() < Duration::from_secs(120) {
        for (i, b) in cluster.brokers.iter().enumerate() {
            if ready_again[i].is_none() && b.ready_status().await == 200 {
                ready_again[i] = Some(up_at.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut result = apps
        .await
        .map_err(|e| BenchError::setup(format!("demand task: {e}")))?;
    demand::time_until_refreshed(&cluster.sandbox, target, t0, Duration::from_secs(120)).await;
    let all_done = t0.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.check_servers()?;
    let stats = cluster.sandbox.stats().await?;
    let verification = cluster.verify(m).await?;

    let mut r = Report::new(format!(
        "pg-restart — {} expired connections, PostgreSQL stopped for {} s mid-run, {}",
        thousands(target),
        down_for.as_secs(),
        spec.describe()
    ));
    r.row(
        "PostgreSQL stopped after",
        format!("{} of {} refreshes", thousands(at), thousands(target)),
    );
    r.row(
        "servers ready again after PostgreSQL started",
        ready_again
            .iter()
            .map(|d| d.map_or_else(|| "never".into(), ms))
            .collect::<Vec<_>>()
            .join(", "),
    );
    r.row(
        "all refreshed and every app request answered after",
        format!("{:.1} s", all_done.as_secs_f64()),
    );
    r.row("app request latency", result.latencies.summary());
    r.row(
        "app requests that took longer than 10 s / 30 s",
        format!(
            "{} / {}",
            result.latencies.count_over(Duration::from_secs(10)),
            result.latencies.count_over(Duration::from_secs(30))
        ),
    );
    r.row(
        "5xx answers from the broker (while PostgreSQL was down, retried)",
        result.describe_5xx(),
    );
    r.check(
        "servers that reported not-ready while PostgreSQL was down",
        saw_not_ready.iter().filter(|s| **s).count() as u64,
        cluster.brokers.len() as u64,
    );
    r.check(
        "servers ready again without a restart",
        ready_again.iter().filter(|s| s.is_some()).count() as u64,
        cluster.brokers.len() as u64,
    );
    r.check("refreshes at Kit", stats.refreshes_ok, target);
    r.check(
        "refresh-token reuse attempts",
        stats.refresh_reuse_attempts,
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
