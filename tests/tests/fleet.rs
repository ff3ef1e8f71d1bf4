//! Guarantee 2 — Fleet: several independent instances (separate pools, as separate processes
//! would be) share one database; 1,000 connections expire together; every instance hammers all
//! of them and runs its refresher. Exactly one refresh per connection, no `invalid_grant`, no
//! reuse attempt, no connection lost — on a SQLite file and on PostgreSQL, and once with real
//! separate OS processes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use kit_oauth::core::{ConnectionId, ListQuery, ManualClock, StateName, Timestamp};
use kit_oauth::{KitOAuth, ManagerError, RefresherConfig};
use kit_oauth_tests::harness::runtime;
use kit_oauth_tests::{Db, World, invalid_grants};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use tokio::sync::Semaphore;

const INSTANCES: usize = 4;

/// Installs `n` connections (16 at a time) through the whole flow.
async fn install_many(world: &World, kit: &KitOAuth, n: usize) -> Vec<ConnectionId> {
    let permits = Arc::new(Semaphore::new(16));
    let mut installs = Vec::with_capacity(n);
    for i in 0..n {
        let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
        let kit = kit.clone();
        let base = world.sandbox.base_url().to_owned();
        installs.push(tokio::spawn(async move {
            let _permit = permit;
            install_one(&base, &kit, &format!("creator-{i}")).await
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for install in installs {
        ids.push(install.await.unwrap());
    }
    ids
}

async fn install_one(base: &str, kit: &KitOAuth, account: &str) -> ConnectionId {
    let redirect = format!("{base}/apps/1?success=true");
    let started = kit.install().begin(&redirect, None, None).await.unwrap();
    let mut url = started.authorize_url.clone();
    url.query_pairs_mut()
        .append_pair("sandbox_account", account);
    let response = kit_oauth_tests::http_client()
        .get(url)
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let query = url::Url::parse(&location)
        .unwrap()
        .query()
        .unwrap()
        .to_owned();
    let binding = started.browser_binding.expose_secret().to_owned();
    kit.install()
        .complete(&query, Some(&binding))
        .await
        .unwrap()
        .connection_id
}

/// Asks for every connection's token, retrying transient failures (SQLite's single writer is
/// busy under four pools); a dead grant fails the test.
async fn hammer(kit: KitOAuth, ids: Arc<Vec<ConnectionId>>) {
    let mut calls = Vec::with_capacity(ids.len());
    for id in ids.iter() {
        let id = id.clone();
        let manager = kit.manager().clone();
        calls.push(tokio::spawn(async move {
            for _ in 0..200 {
                match manager.access_token(&id).await {
                    Ok(_) => return,
                    Err(e @ ManagerError::Unavailable { .. }) => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => panic!("connection {id} failed: {e}"),
                }
            }
            panic!("connection {id} never got a token");
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
}

async fn fleet(db: &Db, connections: usize) {
    let world = World::new(|b| b).await;
    let mut instances = Vec::with_capacity(INSTANCES);
    for _ in 0..INSTANCES {
        instances.push(world.instance(db).await);
    }
    let ids = Arc::new(install_many(&world, &instances[0], connections).await);

    world.advance(172_800 + 60);
    world.sandbox.reset_stats();
    let started = std::time::Instant::now();

    let refreshers: Vec<_> = instances
        .iter()
        .map(|kit| {
            kit.refresher(RefresherConfig {
                interval: Duration::from_millis(50),
                batch: 100,
                concurrency: 8,
                rate_per_second: 10_000,
                ..RefresherConfig::default()
            })
            .spawn()
        })
        .collect();
    let hammers: Vec<_> = instances
        .iter()
        .map(|kit| tokio::spawn(hammer(kit.clone(), Arc::clone(&ids))))
        .collect();
    for h in hammers {
        h.await.unwrap();
    }
    for r in refreshers {
        r.shutdown().await;
    }
    // A figure for docs/benchmarks.md, never an assertion.
    eprintln!(
        "fleet: {connections} connections, {INSTANCES} instances, all fresh after {:?}",
        started.elapsed()
    );

    let stats = world.stats();
    assert_eq!(
        stats.refreshes_ok, connections as u64,
        "one refresh per connection: {stats:?}"
    );
    assert_eq!(invalid_grants(&stats), 0, "{stats:?}");
    assert_eq!(stats.refresh_reuse_attempts, 0, "{stats:?}");
    assert_conserved(&world, &instances[0], &ids).await;
}

/// Every connection is `Authorized`, its stored token is the one the sandbox has, and the
/// sandbox has as many live grants.
async fn assert_conserved(world: &World, kit: &KitOAuth, ids: &[ConnectionId]) {
    let statuses = kit
        .manager()
        .list(&ListQuery {
            limit: u32::try_from(ids.len() + 10).unwrap(),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        statuses.len(),
        ids.len(),
        "no connection lost or duplicated"
    );
    assert!(
        statuses.iter().all(|s| s.state == StateName::Authorized),
        "all authorized"
    );
    let alive: std::collections::HashSet<String> = world
        .sandbox
        .grants()
        .into_iter()
        .filter(|g| g.alive)
        .map(|g| g.access_token_sha256)
        .collect();
    assert_eq!(alive.len(), ids.len());
    for id in ids {
        let token = kit.manager().access_token(id).await.unwrap();
        assert!(
            alive.contains(&token.fingerprint().to_string()),
            "stored token of {id} is the sandbox's current one"
        );
    }
}

async fn fleet_on_sqlite() {
    let db = Db::sqlite();
    fleet(&db, 1_000).await;
}

async fn fleet_on_postgres() -> Completion {
    let db = match Db::postgres_or_why().await {
        Ok(db) => db,
        Err(why) => return Completion::ignored_with(why),
    };
    fleet(&db, 1_000).await;
    db.drop_database().await;
    Completion::Completed
}

/// Environment of a worker process (see [`worker_process_entry`]).
const WORKER_ENV: &str = "KIT_OAUTH_FLEET_WORKER";

/// Real OS processes: the parent installs, then this same test binary is started three times
/// as workers (each its own process with its own pool and cache), all hammering and refreshing
/// the same SQLite file alongside the parent.
async fn fleet_across_os_processes() {
    let db = Db::sqlite();
    let world = World::new(|b| b).await;
    let parent = world.instance(&db).await;
    let ids = Arc::new(install_many(&world, &parent, 200).await);
    world.advance(172_800 + 60);
    world.sandbox.reset_stats();

    let exe = std::env::current_exe().unwrap();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .args([
                    "--exact",
                    "worker_process_entry",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(WORKER_ENV, "1")
                .env("WORKER_DB_URL", &db.url)
                .env("WORKER_KEYS", db.keys_value())
                .env("WORKER_SANDBOX", world.sandbox.base_url())
                .env("WORKER_NOW", world.sandbox.now().to_string())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        })
        .collect();
    hammer(parent.clone(), Arc::clone(&ids)).await;
    for worker in workers {
        let out = worker.wait_with_output().await.unwrap();
        assert!(out.status.success(), "worker failed: {out:?}");
    }
    let stats = world.stats();
    assert_eq!(stats.refreshes_ok, 200, "{stats:?}");
    assert_eq!(invalid_grants(&stats), 0, "{stats:?}");
    assert_eq!(stats.refresh_reuse_attempts, 0, "{stats:?}");
    assert_conserved(&world, &parent, &ids).await;
}

/// Not a test on its own: the body of a worker process of [`fleet_across_os_processes`]. Run
/// without its environment (as in a normal `cargo test`) it only checks that it was not asked
/// to work.
async fn worker_process_entry() {
    if std::env::var(WORKER_ENV).is_err() {
        assert!(std::env::var("WORKER_DB_URL").is_err());
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap();
    let keys = kit_oauth::store::KeyRing::from_env_value(&var("WORKER_KEYS")).unwrap();
    let store = kit_oauth::store::SeaOrmStore::connect(&var("WORKER_DB_URL"), keys)
        .await
        .unwrap();
    let clock = ManualClock::new(Timestamp::from_unix_seconds(
        var("WORKER_NOW").parse().unwrap(),
    ));
    let endpoints = kit_oauth::http::KitEndpoints::builder()
        .base_url(var("WORKER_SANDBOX"))
        .client_id(kit_oauth_tests::CLIENT_ID)
        .client_secret(kit_oauth_tests::CLIENT_SECRET)
        .redirect_uri(kit_oauth_tests::REDIRECT_URI)
        .build()
        .unwrap();
    let kit = KitOAuth::builder()
        .endpoints(endpoints)
        .store(store.clone())
        .clock(Arc::new(clock))
        .manager_config(World::manager_config())
        .build()
        .await
        .unwrap();
    let refresher = kit
        .refresher(RefresherConfig {
            interval: Duration::from_millis(50),
            batch: 50,
            concurrency: 4,
            rate_per_second: 10_000,
            ..RefresherConfig::default()
        })
        .spawn();
    let ids: Vec<ConnectionId> = kit
        .manager()
        .list(&ListQuery {
            limit: 10_000,
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    hammer(kit.clone(), Arc::new(ids)).await;
    refresher.shutdown().await;
}

/// Its own harness, so an unreachable PostgreSQL shows as ignored with the reason.
fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("fleet_on_sqlite", || {
            runtime().block_on(fleet_on_sqlite());
            Ok(())
        }),
        Trial::ignorable_test("fleet_on_postgres", || -> Result<Completion, Failed> {
            Ok(runtime().block_on(fleet_on_postgres()))
        }),
        Trial::test("fleet_across_os_processes", || {
            runtime().block_on(fleet_across_os_processes());
            Ok(())
        }),
        Trial::test("worker_process_entry", || {
            runtime().block_on(worker_process_entry());
            Ok(())
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}
