//! `install`: full installs per second — `GET /kit/oauth` (state, cookie), the sandbox's
//! authorize (auto-approved), `GET /kit/oauth/callback` (code exchange, account lookup,
//! encrypted upsert) — over loopback, K at a time.

use std::time::Duration;

use crate::cluster::{Cluster, ClusterSpec};
use crate::error::Result;
use crate::scenarios::{Options, finish};
use crate::stats::{Report, rate, thousands};

/// Runs the scenario.
///
/// # Errors
/// The cluster cannot be started or an install fails.
pub async fn run(o: &Options) -> Result<Vec<Report>> {
    let spec = ClusterSpec::new(o.instances.unwrap_or(1), o.db, &o.pg_url);
    let mut cluster = Cluster::start(spec.clone(), &o.bins).await?;
    let result = drive(&mut cluster, &spec, o).await;
    finish(cluster, o.keep).await;
    result
}

async fn drive(cluster: &mut Cluster, spec: &ClusterSpec, o: &Options) -> Result<Vec<Report>> {
    let m = o.connections.unwrap_or(1_000);
    let k = o.concurrency.unwrap_or(32);
    // Warm the connection pools and the database with a few installs that are not counted.
    cluster.seed("warm", 16, 4).await?;
    cluster.sandbox.reset_stats().await?;
    let took: Duration = cluster.seed("install", m, k).await?;
    let stats = cluster.sandbox.stats().await?;
    let listed = cluster.brokers[0].connections().await?.len() as u64;
    let mut r = Report::new(format!(
        "install — {} installs, {k} at a time, {}",
        thousands(m as u64),
        spec.describe()
    ));
    r.row(
        "installs/s (whole flow, through the callback)",
        format!("**{}**", rate(m as u64, took)),
    );
    r.row("wall time", format!("{:.1} s", took.as_secs_f64()));
    r.row(
        "sandbox requests (authorize / token / account)",
        format!(
            "{} / {} / {}",
            stats.requests.get("authorize").copied().unwrap_or(0),
            stats.token_requests(),
            stats.requests.get("account").copied().unwrap_or(0)
        ),
    );
    r.check("codes redeemed", stats.codes_redeemed, m as u64);
    r.check("grants created", stats.grants_created, m as u64);
    r.check("connections listed (16 warm-up + M)", listed, m as u64 + 16);
    r.check("invalid_grant", stats.invalid_grant_total, 0);
    Ok(vec![r])
}
