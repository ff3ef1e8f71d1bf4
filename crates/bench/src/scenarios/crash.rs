//! `crash`: `fleet` with one server process SIGKILLed while it is refreshing, then restarted.
//!
//! The kill is made to land mid-refresh: the sandbox rotates the next token requests at once
//! but holds their answers, and the victim dies holding rotated pairs it never stored, with
//! their leases and in-flight marks in the database. What happens next depends on Kit's
//! rotation (`--rotation`, `--reuse-grace`):
//! - `revoke-on-use` (Doorkeeper's default): the previous refresh token works until the new
//!   access token is used, and the dead process never used it, so the survivors' resend of the
//!   in-flight token succeeds: nothing may be lost, no `invalid_grant`.
//! - `strict`/`reuse-detection` with a grace window: the resend is absorbed by the window.
//! - without a grace window: the rotated pairs died with the process; those connections need a
//!   reinstall, and each says why in its `last_error`. The report counts them instead of
//!   failing on them (they are inherent to such a server, not to the protocol).
//!
//! Either way the survivors must take over the dead process's leases within seconds (they are
//! short and renewed only by a live holder's heartbeat): "time to all-fresh after the kill" is
//! the goal, ≤ 5 s.

use std::time::{Duration, Instant};

use crate::client::{Broker, SandboxStats};
use crate::cluster::{Cluster, ClusterSpec, SandboxRotation};
use crate::demand;
use crate::error::{BenchError, Result};
use crate::scenarios::{Options, access_ttl_for, finish, seed_then_expire};
use crate::stats::{Report, ms, thousands};

/// The crash to inject.
#[derive(Debug, Clone, Copy)]
pub struct Crash {
    /// The instance killed.
    pub victim: usize,
    /// When: refreshes done, per mille of M.
    pub at_permille: u64,
    /// Down time before the restart.
    pub down: Duration,
    /// Kit's rotation mode.
    pub rotation: SandboxRotation,
    /// The promise on recovery: every connection fresh again this soon after the kill.
    pub recovery_goal: Duration,
}

/// How long the sandbox holds each token answer around the kill (well under the servers' 20 s
/// request timeout, and longer than their 1 s lease heartbeat, so the survivors keep their
/// leases through it). Every token answer is held from the trigger until the kill.
const HELD_ANSWER_MS: u64 = 2_000;

/// A victim's in-flight mark made after the answers began to be held and at least this old has
/// its request at the sandbox (loopback), and one younger than [`IN_FLIGHT_AT_MOST_MS`] still
/// has its answer held: killing then leaves a rotation the victim never stored, whatever the
/// scheduling of the three processes did.
const IN_FLIGHT_AT_LEAST_MS: i64 = 300;
const IN_FLIGHT_AT_MOST_MS: i64 = 1_500;

/// Runs the scenario.
///
/// # Errors
/// The cluster cannot be started or driven.
pub async fn run(o: &Options, crash: Crash) -> Result<Vec<Report>> {
    let m = o.connections.unwrap_or(2_000);
    let instances = o.instances.unwrap_or(3);
    let mut spec = ClusterSpec::new(instances, o.db, &o.pg_url);
    spec.access_ttl = o.access_ttl.unwrap_or_else(|| access_ttl_for(m, 100));
    spec.rotation = crash.rotation;
    spec.reuse_grace = o.reuse_grace.unwrap_or(0);
    let mut cluster = Cluster::start(spec.clone(), &o.bins).await?;
    let result = drive(&mut cluster, &spec, m, o.concurrency.unwrap_or(64), crash).await;
    finish(cluster, o.keep).await;
    result
}

/// Polls the broker's list until no connection is `expired` (each is fresh, or ended with a
/// cause); returns how long that took from `since`.
async fn time_until_all_fresh(broker: Broker, since: Instant) -> Option<Duration> {
    while since.elapsed() < Duration::from_secs(600) {
        if let Ok(list) = broker.connections().await
            && !list.is_empty()
            && list.iter().all(|c| c.state != "expired")
        {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Rotations the victim left unstored that a survivor's resend recovered at Kit.
fn resent_and_accepted(stats: &SandboxStats) -> u64 {
    stats.refresh_grace_hits + stats.refresh_reuse_accepted
}

/// Waits (up to 30 s) until process `pid` holds a lease whose in-flight mark says its token
/// request is at Kit and its answer still held (answers are held from `held_since`, unix ms);
/// whether it saw one.
async fn victim_awaits_kit(url: &str, pid: u32, held_since: i64) -> Result<bool> {
    use sea_orm::ConnectionTrait as _;
    let db = sea_orm::Database::connect(url)
        .await
        .map_err(|e| BenchError::setup(format!("opening the run's database: {e}")))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        let now = unix_millis();
        let sql = format!(
            "SELECT COUNT(*) AS n FROM connections WHERE lease_owner LIKE '{pid}-%' \
             AND in_flight_hash IS NOT NULL AND in_flight_started_at <= {} \
             AND in_flight_started_at >= {}",
            now - IN_FLIGHT_AT_LEAST_MS,
            (now - IN_FLIGHT_AT_MOST_MS).max(held_since)
        );
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .map_err(|e| BenchError::setup(format!("reading in-flight marks: {e}")))?;
        let n: i64 = match row {
            Some(row) => row
                .try_get("", "n")
                .map_err(|e| BenchError::setup(format!("reading in-flight marks: {e}")))?,
            None => 0,
        };
        seen = n > 0;
        if !seen {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = db.close().await;
    Ok(seen)
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn drive(
    cluster: &mut Cluster,
    spec: &ClusterSpec,
    m: usize,
    k: usize,
    crash: Crash,
) -> Result<Vec<Report>> {
    let seeded = seed_then_expire(cluster, m, 32).await?;
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
    let trigger = target * crash.at_permille / 1000;
    demand::time_until_refreshed(&cluster.sandbox, trigger, t0, Duration::from_secs(1800)).await;
    let at = cluster.sandbox.stats().await?.refreshes_ok;
    // Kit rotates every token request at once but holds its answer; the kill waits until the
    // victim has a request at Kit, so it dies holding a rotated pair it never stored.
    cluster
        .sandbox
        .add_fault(serde_json::json!({
            "endpoint": "token", "kind": "latency", "ms": HELD_ANSWER_MS, "count": target,
        }))
        .await?;
    let held_since = unix_millis();
    let victim_pid = cluster.server_pid(crash.victim);
    let waited = Instant::now();
    let mid_refresh = match victim_pid {
        Some(pid) => victim_awaits_kit(&cluster.db.url(), pid, held_since).await?,
        None => false,
    };
    let waited = waited.elapsed();
    let pid = cluster.kill_server(crash.victim).await;
    let killed = Instant::now();
    // Answers already held still arrive; requests after the kill are answered at once.
    cluster.sandbox.clear_faults().await?;
    let survivor = cluster.brokers[(crash.victim + 1) % cluster.brokers.len()].clone();
    let recovery = tokio::spawn(time_until_all_fresh(survivor, killed));
    tokio::time::sleep(crash.down).await;
    let back = Instant::now();
    cluster.restart_server(crash.victim).await?;
    let restarted_in = back.elapsed();
    let mut result = apps
        .await
        .map_err(|e| BenchError::setup(format!("demand task: {e}")))?;
    let all_fresh = recovery.await.ok().flatten();
    let killed_after = killed.duration_since(t0);
    let demand_done = t0.elapsed();
    // Let refreshes the refreshers started finish before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.check_servers()?;
    let stats = cluster.sandbox.stats().await?;
    let verification = cluster.verify(m).await?;
    let lost_list: Vec<_> = cluster.brokers[0]
        .connections()
        .await?
        .into_iter()
        .filter(|c| c.state != "authorized" && c.state != "expired")
        .collect();

    let mut r = Report::new(format!(
        "crash — {} connections, {}",
        thousands(target),
        spec.describe()
    ));
    r.row(
        "seeded (real installs through the callback)",
        format!("{} in {:.1} s", thousands(target), seeded.as_secs_f64()),
    );
    r.row(
        "the kill",
        format!(
            "server #{} (pid {}) SIGKILLed after {} of {} refreshes, {} after token answers \
             began to be held {HELD_ANSWER_MS} ms, with a request of its own at Kit: {}; \
             restarted {} later (healthy after {})",
            crash.victim,
            pid.map_or_else(|| "?".into(), |p| p.to_string()),
            thousands(at),
            thousands(target),
            ms(waited),
            if mid_refresh { "yes" } else { "not seen" },
            ms(crash.down),
            ms(restarted_in)
        ),
    );
    r.row(
        "time to all-fresh after the kill (no connection left `expired`)",
        all_fresh.map_or_else(|| "never".into(), ms),
    );
    r.row(
        "time to all-fresh from server start (the kill came at)",
        all_fresh.map_or_else(
            || "never".into(),
            |d| format!("{} ({})", ms(killed_after + d), ms(killed_after)),
        ),
    );
    r.row(
        "app requests (each connection on every instance at once)",
        format!(
            "{} ok, {} reauth-required in {:.1} s, {} concurrent connections",
            thousands(result.ok),
            thousands(result.reauth),
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
    let resent = resent_and_accepted(&stats);
    r.row(
        "rotations the victim never stored, resent by a survivor and accepted by Kit",
        thousands(resent),
    );
    let reused = stats
        .invalid_grant
        .get("refresh_reused")
        .copied()
        .unwrap_or(0);
    r.row(
        "rotations the victim never stored, refused at resend (inherently lost)",
        thousands(reused),
    );
    // Proof that the kill landed mid-refresh: the victim left rotated pairs behind.
    r.check(
        "kill landed mid-refresh (victim left ≥ 1 unstored rotation)",
        u64::from(resent + reused + stats.invalid_grant_total > 0),
        1,
    );
    r.check(
        "refreshes at Kit (one per connection, plus accepted resends)",
        stats
            .refreshes_ok
            .saturating_sub(stats.refresh_reuse_accepted),
        target,
    );
    r.check(
        "reuse attempts outside the grace window (other than the victim's resends)",
        stats
            .reuse_outside_grace()
            .saturating_sub(reused + stats.refresh_reuse_accepted),
        0,
    );
    let strict_without_grace =
        spec.reuse_grace == 0 && crash.rotation != SandboxRotation::RevokeOnUse;
    let goal = crash.recovery_goal;
    let recovered = u64::from(all_fresh.is_some_and(|d| d <= goal));
    if strict_without_grace {
        // This run reports what a strict server inherently loses; the recovery goal is the
        // revoke-on-use run's promise.
        r.row(
            format!("time to all-fresh after the kill ≤ {goal:?}"),
            if recovered == 1 { "yes" } else { "no" },
        );
    } else {
        r.check(
            format!("time to all-fresh after the kill ≤ {goal:?}"),
            recovered,
            1,
        );
    }
    if strict_without_grace {
        r.check(
            "invalid_grant other than the victim's unstored rotations",
            stats.invalid_grant_total.saturating_sub(reused),
            0,
        );
        r.check(
            "lost connections without their cause in last_error",
            lost_list
                .iter()
                .filter(|c| {
                    !c.last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("stopped mid-refresh"))
                })
                .count() as u64,
            0,
        );
        r.row(
            "connections lost (inherent: Kit rotated for a dead process, no grace window)",
            thousands(lost_list.len() as u64),
        );
        for c in lost_list.iter().take(3) {
            r.note(format!(
                "lost {}: last_error {:?}",
                c.id,
                c.last_error.as_deref().unwrap_or("none")
            ));
        }
    } else {
        r.check("invalid_grant", stats.invalid_grant_total, 0);
        r.check("app requests that never got a token", result.failed, 0);
        verification.report(&mut r, target);
    }
    for e in &result.examples_5xx {
        r.note(format!("a 5xx answer (retried): {e}"));
    }
    for e in result.examples.iter().take(3) {
        r.note(format!("failed request: {e}"));
    }
    Ok(vec![r])
}
