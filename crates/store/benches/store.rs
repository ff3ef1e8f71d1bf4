//! Store benchmarks: get-by-id, CAS put, lease acquire+release, and `list_due` over 100,000
//! connections, on SQLite (file, WAL) and PostgreSQL (when reachable).
//!
//! `CARGO_TARGET_DIR=/work/target-store cargo bench -p kit-oauth-store --bench store`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kit_oauth_core::{
    AccessToken, Authorized, Connection, ConnectionId, ConnectionStore, ConnectionStoreExt as _,
    Installed, KitAccount, KitAccountId, LeaseOutcome, LeaseOwner, RefreshToken, Settled,
    Timestamp, TokenSet, Unauthorized, Url, Version,
};
use kit_oauth_store::{KeyRing, SeaOrmStore};
use sea_orm::{ConnectionTrait as _, Database};

const NOW: Timestamp = Timestamp::from_unix_seconds(1_750_000_000);
const ROWS: u32 = 100_000;

/// A connection as the flow makes one (the import transition).
fn imported(account: &str) -> Connection<Authorized> {
    Connection::<Unauthorized>::new(None).import(
        ConnectionId::generate(&mut rand::rngs::OsRng),
        KitAccount {
            id: KitAccountId::parse(account).unwrap(),
            name: "Bench".into(),
            primary_email: None,
        },
        TokenSet::from_parts(
            AccessToken::new("a".repeat(43)),
            RefreshToken::new("r".repeat(43)),
            Some("public".into()),
            NOW,
            NOW.saturating_add(Duration::from_secs(7200)),
        ),
    )
}

const NEXT_REFRESH: Timestamp = Timestamp::from_unix_seconds(1_750_006_000);

/// 100,000 active rows (only `list_due` reads them, and it reads ids only), 1 % of them due.
async fn fill(store: &SeaOrmStore, postgres: bool) {
    let series = if postgres {
        format!("SELECT g AS n FROM generate_series(1, {ROWS}) AS g")
    } else {
        format!(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {ROWS}) \
             SELECT n FROM s"
        )
    };
    let now = NOW.unix_millis();
    let sql = format!(
        "INSERT INTO connections (id, tenant_name, kit_account_id, account_name, state, \
         next_refresh_at, version, created_at, updated_at) \
         SELECT 'fill' || n, 'bench', 'acct' || n, 'n', 'authorized', \
         {now} - 1000000 + CAST(n AS BIGINT) * 1000, 1, 0, 0 FROM ({series}) AS t"
    );
    store.connection().execute_unprepared(&sql).await.unwrap();
    store
        .connection()
        .execute_unprepared("ANALYZE")
        .await
        .unwrap();
}

fn bench_backend(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &SeaOrmStore) {
    let postgres = name == "postgres";
    let connection = imported("1");
    let row = rt
        .block_on(store.upsert_installed(&Installed::new(&connection, NEXT_REFRESH, NOW)))
        .unwrap();
    // The CAS write a refresh makes (the same tokens each time: only the write is measured).
    let refused = connection.tokens().access().fingerprint();
    let clock = kit_oauth_core::ManualClock::new(NOW);
    let kit_oauth_core::Freshness::Due(expired) =
        connection.observe_for(kit_oauth_core::Due::Replacing(refused), &clock)
    else {
        panic!("the token Kit refused is due")
    };
    let renewed = expired.refreshed(imported("1").tokens().clone());
    let refreshed = Settled::Refreshed {
        connection: &renewed,
        next_refresh_at: NEXT_REFRESH,
        at: NOW,
    };
    rt.block_on(fill(store, postgres));
    let mut group = c.benchmark_group(format!("store/{name}"));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(4));

    group.bench_function("get_by_id", |b| {
        b.to_async(rt)
            .iter(|| async { store.get(&row.id).await.unwrap().unwrap() });
    });

    let version = Arc::new(AtomicU64::new(row.version.0));
    group.bench_function("put_cas", |b| {
        b.to_async(rt).iter(|| {
            let version = Arc::clone(&version);
            let refreshed = &refreshed;
            async move {
                let expected = Version(version.load(Ordering::SeqCst));
                let next = store.put(refreshed, expected).await.unwrap();
                version.store(next.0, Ordering::SeqCst);
            }
        });
    });

    let owner = LeaseOwner("bench".into());
    group.bench_function("lease_acquire_release", |b| {
        b.to_async(rt).iter(|| async {
            let LeaseOutcome::Acquired { lease, .. } = store
                .acquire_lease(&row.id, &owner, NOW, Duration::from_secs(30))
                .await
                .unwrap()
            else {
                panic!("the bench is the only holder")
            };
            assert!(store.release_lease(&lease, None, true).await.unwrap());
        });
    });

    group.bench_function("list_due_100_of_100k", |b| {
        b.to_async(rt).iter(|| async {
            let due = store.list_due(NOW, 100).await.unwrap();
            assert_eq!(due.len(), 100);
        });
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = rt
        .block_on(SeaOrmStore::connect(&url, KeyRing::generate()))
        .unwrap();
    bench_backend(c, &rt, "sqlite", &store);
    drop(store);

    let admin = std::env::var("KIT_OAUTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let connect = async {
        tokio::time::timeout(Duration::from_secs(5), Database::connect(admin.as_str())).await
    };
    let Ok(Ok(admin_db)) = rt.block_on(connect) else {
        eprintln!("!!!!! PostgreSQL at {admin} unreachable: PostgreSQL benchmarks skipped !!!!!");
        return;
    };
    let name = format!("kit_oauth_bench_{}", std::process::id());
    rt.block_on(admin_db.execute_unprepared(&format!("CREATE DATABASE {name}")))
        .unwrap();
    let mut url = Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    let store = rt
        .block_on(SeaOrmStore::connect(url.as_str(), KeyRing::generate()))
        .unwrap();
    bench_backend(c, &rt, "postgres", &store);
    drop(store);
    rt.block_on(admin_db.execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)")))
        .unwrap();
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
