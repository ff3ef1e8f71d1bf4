//! `million`: one broker in front of a million connections. The rows are seeded straight into
//! the database through the store's own seeding API (sealed as an install seals them; 1 % due,
//! 4 % ended), not installed one by one; then the real `kit-oauth-server` starts on it, and the
//! harness measures what grows with the table: start-up time and RSS, the refresher's due scan
//! (plan and time), `GET /v1/connections` from the first page to the last, `/metrics` scrapes,
//! and RSS after reading more tokens than the cache may hold.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use kit_oauth::core::{Clock, ConnectionStore, SystemClock};
use kit_oauth::store::{KeyRing, SeaOrmStore, seed_record};
use sea_orm::ConnectionTrait as _;
use serde_json::Value;

use crate::cluster::{Cluster, ClusterSpec};
use crate::error::{BenchError, Result};
use crate::scenarios::{Options, finish};
use crate::stats::{Latencies, Report, ms, rate, thousands};

/// Rows generated and sealed per seeding task step.
const SEED_CHUNK: u64 = 10_000;
/// Seeding steps in flight (each holds one pooled database connection).
const SEED_TASKS: usize = 4;
/// Page size of the listing walk (the API's largest).
const PAGE: u32 = 200;
/// Scrapes of `/metrics` timed.
const SCRAPES: usize = 20;
/// Pause between timed scrapes: 20 of them span 30 s, three snapshot periods.
const SCRAPE_GAP: Duration = Duration::from_millis(1_500);
/// How long the broker's refresher may take to drain the seeded backlog.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);
/// Tokens read through the broker to fill its cache: more than the default capacity (100,000).
const TOKEN_READS: usize = 120_000;

/// Runs the scenario (default 1,000,000 connections; `--connections` to change).
///
/// # Errors
/// The cluster does not start, seeding or a request fails.
pub async fn run(o: &Options) -> Result<Vec<Report>> {
    let m = o.connections.unwrap_or(1_000_000) as u64;
    let concurrency = o.concurrency.unwrap_or(32);
    let spec = ClusterSpec::new(1, o.db, &o.pg_url);
    let mut cluster = Cluster::start(spec, &o.bins).await?;
    let result = measure(&mut cluster, m, concurrency).await;
    finish(cluster, o.keep).await;
    result.map(|report| vec![report])
}

async fn measure(cluster: &mut Cluster, m: u64, concurrency: usize) -> Result<Report> {
    // The first start migrated the empty database; the broker is stopped while seeding.
    cluster.stop_all().await;
    let keys = KeyRing::from_env_value(cluster.encryption_key())
        .map_err(|e| BenchError::setup(format!("the run's encryption key: {e}")))?;
    let store = SeaOrmStore::connect(&cluster.db.url(), keys)
        .await
        .map_err(|e| BenchError::setup(format!("opening the database: {e}")))?;
    let mut report = Report::new(format!(
        "million — {} connections, {}",
        thousands(m),
        cluster.spec.describe()
    ));

    let now = SystemClock.now();
    let started = Instant::now();
    let seeded = seed(&store, m, now).await?;
    let seeding = started.elapsed();
    report.check("rows seeded", seeded, m);
    report.row(
        "seeding (sealed, multi-row INSERT)",
        format!("{:.1} s ({})", seeding.as_secs_f64(), rate(seeded, seeding)),
    );

    // A table that grew over months has planner statistics (and, on PostgreSQL, a visibility
    // map); a bulk load has neither until autovacuum comes round. Do what it would do.
    let settle = Instant::now();
    let statement = match cluster.spec.db {
        crate::db::DbKind::Postgres => "VACUUM ANALYZE connections",
        crate::db::DbKind::Sqlite => "ANALYZE connections",
    };
    store
        .connection()
        .execute_unprepared(statement)
        .await
        .map_err(setup)?;
    report.row(format!("`{statement}` after seeding"), ms(settle.elapsed()));

    // The refresher's scan, before any broker runs (so nothing has been refreshed yet).
    let now = SystemClock.now();
    let backlog = store.count_due(now).await.map_err(setup)?;
    report.check("connections due (1 %)", backlog, m / 100);
    let scan = Instant::now();
    let batch = store.list_due(now, 200).await.map_err(setup)?;
    report.row(
        "refresher scan: `list_due` of 200 with 1 % due",
        format!("{} ({} ids)", ms(scan.elapsed()), batch.len()),
    );
    let plan = store.list_due_plan(now, 200).await.map_err(setup)?;
    report.note(format!("due-scan plan:\n```\n{plan}\n```"));
    let counts = Instant::now();
    let by_state = store.connection_counts(now).await.map_err(setup)?;
    report.row(
        "`COUNT … GROUP BY` state (the scrape's query)",
        ms(counts.elapsed()),
    );
    report.check("counted by state", by_state.total(), m);

    let boot = Instant::now();
    cluster.start_server(0).await?;
    report.row("broker start-up (spawn → /healthz 200)", ms(boot.elapsed()));
    report.row("broker RSS after start", rss(cluster));

    let broker = cluster.brokers[0].clone();
    // The first walk runs while the broker's refresher works through the seeded backlog (its
    // tokens are unknown to the sandbox: each ends `invalid_grant`, one row write and one event
    // each); the second once the backlog is gone (or after DRAIN_LIMIT: the row says how many
    // were still due), to tell the two costs apart.
    let (pages, listed, fresh) = walk_pages(cluster, &broker.base, broker_key(cluster)).await?;
    report.row(
        format!("`GET /v1/connections?limit={PAGE}`, every page, refresher draining the backlog"),
        page_summary(pages),
    );
    report.check("connections listed", listed, m);
    report.row("broker RSS after the walk", rss(cluster));
    let drained = Instant::now();
    let left = wait_drained(&store).await?;
    report.row(
        "backlog drained by the broker's refresher (after the first walk)",
        format!(
            "{} more, {} left due",
            ms(drained.elapsed()),
            thousands(left)
        ),
    );
    let (pages, listed, _) = walk_pages(cluster, &broker.base, broker_key(cluster)).await?;
    report.row(
        format!("`GET /v1/connections?limit={PAGE}`, every page, after the drain wait"),
        page_summary(pages),
    );
    report.check("connections listed again", listed, m);

    // The first scrape of a process counts before answering; later ones read the snapshot
    // (recounted in the background when older than 10 s: `count_snapshot.rs`).
    let first = Instant::now();
    scrape(cluster, &broker.base).await?;
    report.row(
        "first `/metrics` scrape (counts inline)",
        ms(first.elapsed()),
    );
    let mut scrapes = Latencies::default();
    for _ in 0..SCRAPES {
        let at = Instant::now();
        scrape(cluster, &broker.base).await?;
        scrapes.record(at.elapsed());
        // Spread over more than the snapshot's 10 s, so some scrapes start a recount.
        tokio::time::sleep(SCRAPE_GAP).await;
    }
    report.row(
        format!("`/metrics` scrape ({SCRAPES} scrapes)"),
        format!("{}, max {}", scrapes.summary(), ms(scrapes.quantile(1000))),
    );

    let reads: Vec<String> = fresh.into_iter().take(TOKEN_READS).collect();
    let read_at = Instant::now();
    let served = stream::iter(reads.iter())
        .map(|id| {
            let broker = broker.clone();
            async move {
                matches!(
                    broker.token(id).await,
                    crate::client::TokenOutcome::Token(_)
                )
            }
        })
        .buffer_unordered(concurrency)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await as u64;
    report.row(
        "token reads of distinct fresh connections (cache capacity 100,000)",
        format!(
            "{} in {:.1} s",
            thousands(served),
            read_at.elapsed().as_secs_f64()
        ),
    );
    report.check("tokens served", served, reads.len() as u64);
    report.row("broker RSS after the reads (goal < 256 MiB)", rss(cluster));
    Ok(report)
}

/// The goal for every page of the listing.
const PAGE_GOAL: Duration = Duration::from_millis(50);

/// One walk of the listing: each page's time, and which page was slowest (the first page of a
/// fresh broker and a page in the middle of the table are different problems).
#[derive(Default)]
struct Walk {
    pages: Latencies,
    slowest: (usize, Duration),
}

impl Walk {
    fn record(&mut self, elapsed: Duration) {
        if elapsed > self.slowest.1 {
            self.slowest = (self.pages.len() + 1, elapsed);
        }
        self.pages.record(elapsed);
    }
}

fn page_summary(mut walk: Walk) -> String {
    let (page, time) = walk.slowest;
    format!(
        "{} pages, {}, max {} (page {page}), {} over {}",
        walk.pages.len(),
        walk.pages.summary(),
        ms(time),
        walk.pages.count_over(PAGE_GOAL),
        ms(PAGE_GOAL),
    )
}

/// Waits until nothing is due (or [`DRAIN_LIMIT`]); returns how many are still due.
async fn wait_drained(store: &SeaOrmStore) -> Result<u64> {
    let until = Instant::now() + DRAIN_LIMIT;
    loop {
        let left = store.count_due(SystemClock.now()).await.map_err(setup)?;
        if left == 0 || Instant::now() >= until {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// One `/metrics` scrape, checked to carry the connection gauges.
async fn scrape(cluster: &Cluster, base: &str) -> Result<()> {
    let text = cluster
        .http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(BenchError::http("GET /metrics"))?
        .text()
        .await
        .map_err(BenchError::http("reading /metrics"))?;
    if text.contains("kit_oauth_connections{") {
        Ok(())
    } else {
        Err(BenchError::setup("/metrics has no connection gauges"))
    }
}

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::setup(e.to_string())
}

fn broker_key(cluster: &Cluster) -> &str {
    cluster.api_key()
}

fn rss(cluster: &Cluster) -> String {
    cluster.server_rss().first().copied().flatten().map_or_else(
        || "unknown".to_owned(),
        |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
    )
}

/// Seeds rows `0..m` in chunks, [`SEED_TASKS`] at once.
async fn seed(store: &SeaOrmStore, m: u64, now: kit_oauth::core::Timestamp) -> Result<u64> {
    let chunks =
        (0..m.div_ceil(SEED_CHUNK)).map(|c| (c * SEED_CHUNK, ((c + 1) * SEED_CHUNK).min(m)));
    let results: Vec<Result<u64>> = stream::iter(chunks)
        .map(|(from, to)| {
            let store = store.clone();
            async move {
                let records = (from..to)
                    .map(|n| seed_record(n, now))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(setup)?;
                store.seed_connections(&records).await.map_err(setup)
            }
        })
        .buffer_unordered(SEED_TASKS)
        .collect()
        .await;
    results.into_iter().sum()
}

/// Walks `GET /v1/connections` from the first page to the last, timing each page; returns the
/// page times, how many connections were listed, and the ids of those in state `authorized`.
async fn walk_pages(cluster: &Cluster, base: &str, key: &str) -> Result<(Walk, u64, Vec<String>)> {
    let mut pages = Walk::default();
    let mut listed = 0u64;
    let mut fresh = Vec::new();
    let mut cursor: Option<String> = None;
    // Token reads come later, possibly many minutes later on a slow machine (SQLite's seeding
    // alone took ten): a connection whose refresh falls due by then would be refreshed, and the
    // sandbox does not know the seeded tokens, so the read would fail for a reason the broker
    // has no part in (68 of 120,000 on one SQLite run). Only connections not due for an hour
    // are read.
    let horizon = fresh_horizon(Duration::from_secs(3600))?;
    loop {
        let mut url = format!("{base}/v1/connections?limit={PAGE}");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(c);
        }
        let at = Instant::now();
        let page: Value = cluster
            .http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(BenchError::http("GET /v1/connections"))?
            .json()
            .await
            .map_err(BenchError::http("reading /v1/connections"))?;
        pages.record(at.elapsed());
        let connections = page["connections"].as_array().cloned().unwrap_or_default();
        listed += connections.len() as u64;
        fresh.extend(connections.iter().filter_map(|c| {
            let not_due_soon = c["next_refresh_at"]
                .as_str()
                .is_some_and(|next| seconds_prefix(next) > horizon.as_str());
            (c["state"] == "authorized" && not_due_soon)
                .then(|| c["id"].as_str().map(str::to_owned))?
        }));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok((pages, listed, fresh)),
        }
        if pages.pages.len() % 1000 == 0 {
            tokio::time::sleep(Duration::ZERO).await;
        }
    }
}

/// RFC 3339 in UTC to the second (`2026-11-30T10:00:00`), which orders as the instants do.
fn seconds_prefix(rfc3339: &str) -> &str {
    rfc3339.get(..19).unwrap_or(rfc3339)
}

/// Now plus `ahead`, as [`seconds_prefix`] writes it.
fn fresh_horizon(ahead: Duration) -> Result<String> {
    let at = time::OffsetDateTime::now_utc() + ahead;
    let text = at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| BenchError::setup(format!("formatting the read horizon: {e}")))?;
    Ok(seconds_prefix(&text).to_owned())
}
