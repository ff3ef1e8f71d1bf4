//! Audit-trail retention, enforced by the background refresher: one bounded DELETE per scan,
//! counted exactly on a real SQLite file and on PostgreSQL (when reachable; required under CI).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use kit_oauth::core::{
    Clock as _, ConnectionId, ConnectionStore as _, Event, EventId, EventKind, ManualClock,
    Timestamp,
};
use kit_oauth::http::{KitEndpoints, KitOAuthClient};
use kit_oauth::store::{KeyRing, SeaOrmStore};
use kit_oauth::{
    MIN_EVENT_RETENTION, ManagerConfig, Refresher, RefresherConfig, TokenManager, TracingEvents,
};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use sea_orm::{ConnectionTrait as _, Database};

const DAY_MS: i64 = 24 * 3_600_000;
const HOUR_MS: i64 = 3_600_000;

fn refresher(
    store: &SeaOrmStore,
    clock: &ManualClock,
    retention: Duration,
    batch: u32,
) -> Refresher<KitOAuthClient, SeaOrmStore> {
    // Nobody listens on the endpoint: nothing here refreshes.
    let endpoint = KitOAuthClient::new(
        KitEndpoints::builder()
            .base_url("http://127.0.0.1:9")
            .client_id("retention")
            .redirect_uri("http://127.0.0.1:9/cb")
            .build()
            .unwrap(),
    )
    .unwrap();
    let manager = TokenManager::new(
        endpoint,
        store.clone(),
        Arc::new(clock.clone()),
        Arc::new(TracingEvents),
        ManagerConfig::default(),
    );
    Refresher::new(
        manager,
        RefresherConfig {
            event_retention: retention,
            event_purge_batch: batch,
            ..RefresherConfig::default()
        },
    )
}

async fn append(store: &SeaOrmStore, id: &ConnectionId, at_ms: i64, n: usize) {
    for _ in 0..n {
        store
            .append_event(&Event {
                id: EventId::generate(&mut rand::rngs::OsRng),
                at: Timestamp::from_unix_millis(at_ms),
                connection: id.clone(),
                tenant: None,
                account: None,
                kind: EventKind::Refreshed {
                    expires_at: Timestamp::from_unix_millis(at_ms + 2 * DAY_MS),
                },
            })
            .await
            .unwrap();
    }
}

async fn retention_on(store: SeaOrmStore) {
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let now = clock.now().unix_millis();
    let a = ConnectionId::generate(&mut rand::rngs::OsRng);
    let b = ConnectionId::generate(&mut rand::rngs::OsRng);
    // 250 events past 30 days, 7 inside them (one a millisecond inside).
    append(&store, &a, now - 31 * DAY_MS, 150).await;
    append(&store, &b, now - 40 * DAY_MS, 100).await;
    append(&store, &a, now - 29 * DAY_MS, 5).await;
    append(&store, &b, now - 30 * DAY_MS + 1, 2).await;
    // The dashboard's sign-outs: one long ago, and the latest 11 h ago, which still ends the
    // sessions started before it (they live 12 h).
    store
        .end_dashboard_sessions(Timestamp::from_unix_millis(now - 40 * DAY_MS))
        .await
        .unwrap();
    let signed_out = Timestamp::from_unix_millis(now - 11 * HOUR_MS);
    store.end_dashboard_sessions(signed_out).await.unwrap();

    let thirty_days = refresher(&store, &clock, Duration::from_secs(30 * 24 * 3600), 100);
    // 251 rows are old (250 events and the old sign-out): 100 + 100 + 51, then nothing.
    let mut removed = Vec::new();
    for _ in 0..4 {
        removed.push(thirty_days.purge_events_once().await);
    }
    assert_eq!(removed, [100, 100, 51, 0]);
    assert_eq!(store.events(&a).await.unwrap().len(), 5);
    assert_eq!(store.events(&b).await.unwrap().len(), 2);
    assert_eq!(
        store.dashboard_sessions_ended_at().await.unwrap(),
        Some(signed_out)
    );

    // A retention below a day is raised to a day: the 11-hour-old sign-out stays, so signing
    // out keeps ending the sessions it ended; the events past a day go.
    assert_eq!(MIN_EVENT_RETENTION, Duration::from_secs(24 * 3600));
    let an_hour = refresher(&store, &clock, Duration::from_secs(3600), 1_000);
    assert_eq!(an_hour.purge_events_once().await, 7);
    assert_eq!(an_hour.purge_events_once().await, 0);
    assert_eq!(
        store.dashboard_sessions_ended_at().await.unwrap(),
        Some(signed_out)
    );
    // 13 h later it is older than any session it could end, and past the one-day floor only
    // the next day: still kept at 13 h, gone after 25 h.
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(an_hour.purge_events_once().await, 0);
    clock.advance(Duration::from_secs(12 * 3600));
    assert_eq!(an_hour.purge_events_once().await, 1);
    assert_eq!(store.dashboard_sessions_ended_at().await.unwrap(), None);
}

async fn the_refresher_deletes_old_events_in_batches_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("retention.db").display()
    );
    let store = SeaOrmStore::connect(&url, KeyRing::generate())
        .await
        .unwrap();
    retention_on(store).await;
}

async fn the_refresher_deletes_old_events_in_batches_on_postgres() -> Completion {
    let admin = std::env::var("KIT_OAUTH_TEST_POSTGRES_URL")
        .or_else(|_| std::env::var("KIT_OAUTH_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let Ok(Ok(db)) =
        tokio::time::timeout(Duration::from_secs(10), Database::connect(admin.as_str())).await
    else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "PostgreSQL is required under CI but {admin} is unreachable"
        );
        return Completion::ignored_with(format!(
            "PostgreSQL at {admin} is unreachable: start it (bash .ci/ensure-postgres) or set \
             KIT_OAUTH_TEST_POSTGRES_URL"
        ));
    };
    let name = format!(
        "kit_oauth_retention_{}",
        ConnectionId::generate(&mut rand::rngs::OsRng)
            .as_str()
            .to_lowercase()
            .replace('-', "_")
    );
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    let store = SeaOrmStore::connect(url.as_str(), KeyRing::generate())
        .await
        .unwrap();
    retention_on(store.clone()).await;
    drop(store);
    let _ = db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    Completion::Completed
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Its own harness, so an unreachable PostgreSQL shows as ignored with the reason.
fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "the_refresher_deletes_old_events_in_batches_on_sqlite",
            || {
                runtime().block_on(the_refresher_deletes_old_events_in_batches_on_sqlite());
                Ok(())
            },
        ),
        Trial::ignorable_test(
            "the_refresher_deletes_old_events_in_batches_on_postgres",
            || -> Result<Completion, Failed> {
                Ok(runtime().block_on(the_refresher_deletes_old_events_in_batches_on_postgres()))
            },
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
