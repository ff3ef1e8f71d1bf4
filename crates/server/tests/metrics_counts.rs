//! `/metrics` counts connections by state exactly beyond the 20,000 rows the scrape used to
//! page through: 25,000 rows seeded straight into the SQLite file through the store's seeding
//! API (sealed as an install seals them), then one scrape; then the snapshot later scrapes
//! answer from, and its recount once stale. Alone in its binary: the Prometheus registry is per
//! process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kit_oauth::RefresherConfig;
use kit_oauth::core::{Clock, Grant, ListQuery, SystemClock};
use kit_oauth::store::seed_record;
use kit_oauth_server::count_snapshot::MAX_AGE;
use support::{Broker, Extra, sample};

const SEEDED: u64 = 25_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_gauges_are_exact_above_twenty_thousand_rows() {
    // The background refresher scans once, at start (an empty table): the due rows stay due.
    let broker = Broker::start(Extra {
        refresher: Some(RefresherConfig {
            interval: Duration::from_secs(3_600),
            ..RefresherConfig::default()
        }),
        ..Extra::default()
    })
    .await;
    let manager = broker.running.kit().manager();
    let now = SystemClock.now();
    let started = std::time::Instant::now();
    let records: Vec<_> = (0..SEEDED).map(|n| seed_record(n, now).unwrap()).collect();
    assert_eq!(
        manager.store().seed_connections(&records).await.unwrap(),
        SEEDED
    );

    eprintln!("seeded {SEEDED} rows in {:?}", started.elapsed());
    // What each row is, decided by the core's own rule, record by record.
    let (mut authorized, mut expired, mut unauthorized) = (0u64, 0u64, 0u64);
    for record in &records {
        match &record.grant {
            Grant::Active(tokens) if tokens.is_due(now) => expired += 1,
            Grant::Active(_) => authorized += 1,
            Grant::Ended(_) => unauthorized += 1,
        }
    }
    assert_eq!(expired, SEEDED / 100, "1 % due");
    assert!(
        authorized > 20_000,
        "more than the old scan limit in one state"
    );

    let text = support::metrics(&broker.base).await;
    let gauge = |state: &str| {
        sample(
            &text,
            &format!("kit_oauth_connections{{state=\"{state}\"}}"),
        )
    };
    #[allow(clippy::cast_precision_loss)]
    let f = |n: u64| n as f64;
    assert_eq!(gauge("authorized"), f(authorized));
    assert_eq!(gauge("expired"), f(expired));
    assert_eq!(gauge("unauthorized"), f(unauthorized));
    assert_eq!(sample(&text, "kit_oauth_tokens_due"), f(expired), "{text}");

    // Later scrapes answer from that snapshot (exact as of its count, its age exported) until it
    // is older than `MAX_AGE`; the scrape that finds it so starts a recount for the next ones.
    let more: Vec<_> = (SEEDED..SEEDED + 100)
        .map(|n| seed_record(n, now).unwrap())
        .collect();
    manager.store().seed_connections(&more).await.unwrap();
    let total = |text: &str| {
        ["authorized", "expired", "unauthorized"]
            .iter()
            .map(|state| sample(text, &format!("kit_oauth_connections{{state=\"{state}\"}}")))
            .sum::<f64>()
    };
    let text = support::metrics(&broker.base).await;
    assert_eq!(total(&text), f(SEEDED), "served from the snapshot: {text}");
    let age = sample(&text, "kit_oauth_connection_counts_age_seconds");
    assert!(age < MAX_AGE.as_secs_f64(), "{text}");
    tokio::time::sleep(MAX_AGE).await;
    let mut scrapes = 0;
    let text = loop {
        let text = support::metrics(&broker.base).await;
        scrapes += 1;
        if total(&text) != f(SEEDED) || scrapes == 50 {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(total(&text), f(SEEDED + 100), "recounted: {text}");
    assert!(
        scrapes >= 2,
        "the stale scrape itself answered from the snapshot"
    );

    // The seeded rows open as installed ones do: the manager reads and decrypts them.
    let page = manager
        .list(&ListQuery {
            limit: 1000,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1000);
    broker.running.shutdown().await;
}
