//! What only SQLite has: the file it creates, its pragmas, and what a held write lock does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kit_oauth_core::{
    AccessToken, Authorized, Connection, ConnectionId, ConnectionStore, ConnectionStoreExt as _,
    Due, Freshness, Installed, KitAccount, KitAccountId, ManualClock, RefreshToken, Settled,
    StoreError, StoredConnection, Timestamp, TokenSet, Unauthorized, Version,
};
use kit_oauth_store::{KeyRing, KeyRingError, SeaOrmStore, StoreOptions};
use sea_orm::{ConnectionTrait as _, Statement};

const NOW: Timestamp = Timestamp::from_unix_seconds(1_750_000_000);

/// A connection as the flow makes one (the import transition).
fn imported() -> Connection<Authorized> {
    Connection::<Unauthorized>::new(None).import(
        ConnectionId::generate(&mut rand::rngs::OsRng),
        KitAccount {
            id: KitAccountId::parse("1").unwrap(),
            name: "A".into(),
            primary_email: None,
        },
        TokenSet::from_parts(
            AccessToken::new("a"),
            RefreshToken::new("r"),
            None,
            NOW,
            NOW.saturating_add(Duration::from_secs(60)),
        ),
    )
}

async fn pragma(store: &SeaOrmStore, name: &str) -> String {
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            store.backend(),
            format!("PRAGMA {name}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
        .unwrap()
}

#[tokio::test]
async fn the_url_creates_the_file_with_wal_busy_timeout_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kit-oauth.db");
    assert!(!path.exists());
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SeaOrmStore::connect(&url, KeyRing::generate())
        .await
        .unwrap();
    assert!(path.exists());
    assert_eq!(pragma(&store, "journal_mode").await, "wal");
    assert_eq!(pragma(&store, "foreign_keys").await, "1");
    assert_eq!(pragma(&store, "busy_timeout").await, "5000");
    store.readiness().await.unwrap();
    assert_eq!(
        kit_oauth_store::DEFAULT_DATABASE_URL,
        "sqlite://kit-oauth.db?mode=rwc"
    );
}

#[tokio::test]
async fn in_memory_database_works_on_one_connection() {
    let store = SeaOrmStore::connect("sqlite::memory:", KeyRing::generate())
        .await
        .unwrap();
    let connection = imported();
    let stored = store
        .upsert_installed(&Installed::new(&connection, NOW, NOW))
        .await
        .unwrap();
    assert_eq!(store.get(&stored.id).await.unwrap().unwrap(), stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_lock_is_unavailable_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("db").display());
    let keys = KeyRing::generate();
    let holder = SeaOrmStore::connect(&url, KeyRing::from_env_value(&keys.to_env_value()).unwrap())
        .await
        .unwrap();
    let connection = imported();
    let row = holder
        .upsert_installed(&Installed::new(&connection, NOW, NOW))
        .await
        .unwrap();
    let impatient = SeaOrmStore::connect_with(
        &url,
        keys,
        StoreOptions {
            busy_timeout: Duration::from_millis(50),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    // What the flow writes next: the row's grant, refreshed after Kit refused its access token.
    let Some((_, StoredConnection::Active(read))) = impatient.load(&row.id).await.unwrap() else {
        panic!("an active row")
    };
    let refused = read.tokens().access().fingerprint();
    let Freshness::Due(expired) = read.observe_for(Due::Replacing(refused), &ManualClock::new(NOW))
    else {
        panic!("the refused token is due")
    };
    let renewed = expired.refreshed(imported().tokens().clone());
    let settled = Settled::Refreshed {
        connection: &renewed,
        next_refresh_at: NOW,
        at: NOW,
    };
    // Another process holds the write lock.
    let pool = holder.connection().get_sqlite_connection_pool();
    let mut conn = pool.acquire().await.unwrap();
    sea_orm::sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .unwrap();
    let result = impatient.put(&settled, row.version).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "got {result:?}"
    );
    // Reads still work under WAL.
    assert!(impatient.get(&row.id).await.unwrap().is_some());
    sea_orm::sqlx::query("ROLLBACK")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(impatient.put(&settled, row.version).await, Ok(Version(2)));
}

#[tokio::test]
async fn unreachable_databases_are_unavailable() {
    let result = SeaOrmStore::connect_with(
        "postgres://postgres@127.0.0.1:1/none",
        KeyRing::generate(),
        StoreOptions {
            acquire_timeout: Duration::from_secs(2),
            ..StoreOptions::default()
        },
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "got {result:?}"
    );
    let missing_dir = "sqlite:///nonexistent-dir-kit-oauth/x.db?mode=rwc";
    let result = SeaOrmStore::connect(missing_dir, KeyRing::generate()).await;
    assert!(result.is_err());
}

#[test]
fn key_ring_from_env_names_the_variable() {
    // Setting variables is `unsafe` in edition 2024 (and racy in a threaded test binary):
    // check the missing case only when the environment leaves it unset.
    if std::env::var(kit_oauth_store::ENCRYPTION_KEY_ENV).is_err() {
        let err = KeyRing::from_env().unwrap_err();
        assert_eq!(err, KeyRingError::Missing);
        assert!(err.to_string().contains("KIT_OAUTH_ENCRYPTION_KEY"));
    }
    let ring = KeyRing::generate();
    assert_eq!(ring.current_key_id(), "default");
    assert!(!format!("{ring:?}").contains(ring.to_env_value().as_str()));
}
