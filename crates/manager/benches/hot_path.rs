//! The `access_token` hot path: a cached token outside its refresh margin.
//!
//! ```sh
//! cargo bench -p kit-oauth --bench hot_path
//! ```
//!
//! Compares, on the same connections: the cached path (one task, and two tasks on two cores
//! contending), over 1 and 100,000 connections, against a storage read per call (what an
//! integration without the in-process cache pays).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kit_oauth::KitOAuth;
use kit_oauth::core::{
    AccessToken, Callback, Connection, ConnectionId, ConnectionStore as _, CsrfState, InstallStart,
    Installed, KitAccount, KitAccountId, KitRedirect, ManualClock, PkceVerifier, RedirectAllowlist,
    RefreshToken, Timestamp, TokenSet, Unauthorized,
};
use kit_oauth::http::KitEndpoints;
use kit_oauth::store::{KeyRing, SeaOrmStore};

struct Fixture {
    kit: KitOAuth,
    store: SeaOrmStore,
    ids: Vec<ConnectionId>,
    _dir: tempfile::TempDir,
}

async fn fixture(connections: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let store = SeaOrmStore::connect(&url, KeyRing::generate())
        .await
        .unwrap();
    let now = Timestamp::from_unix_seconds(1_800_000_000);
    let clock = ManualClock::new(now);
    let mut rng = rand::rngs::OsRng;
    let mut ids = Vec::with_capacity(connections);
    for i in 0..connections {
        let id = ConnectionId::generate(&mut rng);
        let tokens = TokenSet::from_parts(
            AccessToken::new(format!("access-{i}-{}", "x".repeat(40))),
            RefreshToken::new(format!("refresh-{i}")),
            Some("public".into()),
            now,
            now.saturating_add(Duration::from_secs(172_800)),
        );
        // Through the install flow (without Kit): the only way to an `Authorized` outside a
        // store.
        let start = InstallStart {
            state: CsrfState::new("s"),
            verifier: PkceVerifier::generate(&mut rng),
            kit_redirect: KitRedirect::parse("https://app.kit.com/", &RedirectAllowlist::default())
                .unwrap(),
        };
        let connection = Connection::<Unauthorized>::new(None)
            .begin(start, &clock)
            .callback(Callback::from_query("code=c&state=s").unwrap(), &clock)
            .unwrap()
            .authorize(
                id.clone(),
                KitAccount {
                    id: KitAccountId::from(i as u64),
                    name: format!("account {i}"),
                    primary_email: None,
                },
                tokens.clone(),
            );
        store
            .upsert_installed(&Installed::new(&connection, tokens.due_at(), now))
            .await
            .unwrap();
        ids.push(id);
    }
    let kit = KitOAuth::builder()
        .endpoints(
            KitEndpoints::builder()
                .base_url("http://127.0.0.1:9")
                .client_id("bench")
                .redirect_uri("http://127.0.0.1:9/cb")
                .build()
                .unwrap(),
        )
        .store(store.clone())
        .clock(Arc::new(clock))
        .build()
        .await
        .unwrap();
    // Warm the cache: one storage read per connection.
    for id in &ids {
        kit.manager().access_token(id).await.unwrap();
    }
    Fixture {
        kit,
        store,
        ids,
        _dir: dir,
    }
}

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("access_token");
    group.throughput(Throughput::Elements(1));
    for connections in [1usize, 100_000] {
        let f = runtime.block_on(fixture(connections));
        let ids = Arc::new(f.ids.clone());

        group.bench_with_input(
            BenchmarkId::new("cached/1-task", connections),
            &connections,
            |b, _| {
                // One task on a runtime worker making `iters` calls in a row, as an app's
                // request handler does; a `block_on` per call would time the runtime instead.
                b.iter_custom(|iters| {
                    let manager = f.kit.manager().clone();
                    let ids = Arc::clone(&ids);
                    runtime.block_on(async move {
                        tokio::spawn(async move {
                            let mut i = 0usize;
                            let start = Instant::now();
                            for _ in 0..iters {
                                i = (i + 7919) % ids.len();
                                std::hint::black_box(manager.access_token(&ids[i]).await.unwrap());
                            }
                            start.elapsed()
                        })
                        .await
                        .unwrap()
                    })
                });
            },
        );

        group.bench_with_input(
            BenchmarkId::new("cached/2-tasks-contended", connections),
            &connections,
            |b, _| {
                b.iter_custom(|iters| {
                    let manager = f.kit.manager().clone();
                    let ids = Arc::clone(&ids);
                    runtime.block_on(async move {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..2u64)
                            .map(|t| {
                                let manager = manager.clone();
                                let ids = Arc::clone(&ids);
                                tokio::spawn(async move {
                                    let mut i = usize::try_from(t).unwrap() * 13;
                                    for _ in 0..iters / 2 {
                                        i = (i + 7919) % ids.len();
                                        std::hint::black_box(
                                            manager.access_token(&ids[i]).await.unwrap(),
                                        );
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                        // Per call across both cores: wall time / calls.
                        start.elapsed()
                    })
                });
            },
        );

        group.bench_with_input(
            BenchmarkId::new("storage-read", connections),
            &connections,
            |b, _| {
                let mut i = 0usize;
                b.to_async(&runtime).iter(|| {
                    i = (i + 7919) % ids.len();
                    let store = f.store.clone();
                    let id = ids[i].clone();
                    async move { store.get(&id).await.unwrap().unwrap() }
                });
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = hot_path
}
criterion_main!(benches);
