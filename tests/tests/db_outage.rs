//! A database outage is not a death (docs/refresh-protocol.md): while PostgreSQL cannot be
//! reached nobody can renew a refresh lease, so a lease that lapsed meanwhile says nothing about
//! its holder, which may be alive with Kit's answer and retrying its commit. CI's `pg-restart`
//! run lost 2 of 300 connections to exactly this before the rule existed: a waiter took over the
//! lapsed lease the moment PostgreSQL was back and resent the spent refresh token, and reuse
//! detection ended the grant.
//!
//! The outage is real: the stores under test reach PostgreSQL through a TCP forwarder that the
//! test cuts (every open connection closed, new ones refused) and restores. PostgreSQL only:
//! a SQLite file has no network to lose. Every count exact, no timing asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit_oauth::ManagerConfig;
use kit_oauth::core::{
    Clock as _, ConnectionStore as _, ConnectionStoreExt as _, LeaseOutcome, LeaseOwner, StoreError,
};
use kit_oauth::store::{SeaOrmStore, StoreOptions};
use kit_oauth_tests::postgres_trial;
use kit_oauth_tests::{Db, World, invalid_grants, stored_access};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, Rotation};
use libtest_mimic::Arguments;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A TCP forwarder in front of PostgreSQL that the test can cut and restore.
struct Cuttable {
    addr: SocketAddr,
    state: Arc<Mutex<Links>>,
}

#[derive(Default)]
struct Links {
    cut: bool,
    open: Vec<AbortHandle>,
}

impl Cuttable {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(Links::default()));
        let links = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut links = links.lock().unwrap();
                if links.cut {
                    drop(client);
                    continue;
                }
                let forward = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links.open.push(forward.abort_handle());
            }
        });
        Self { addr, state }
    }

    /// Closes every forwarded connection and refuses new ones.
    fn cut(&self) {
        let mut links = self.state.lock().unwrap();
        links.cut = true;
        for link in links.open.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.state.lock().unwrap().cut = false;
    }

    /// A store on `db` (already migrated) whose pool goes through this forwarder, failing fast
    /// while it is cut.
    async fn store(&self, db: &Db) -> SeaOrmStore {
        let mut url = url::Url::parse(&db.url).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        SeaOrmStore::connect_with(
            url.as_str(),
            db.keys(),
            StoreOptions {
                acquire_timeout: Duration::from_millis(500),
                migrate: false,
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap()
    }
}

async fn proxy_for(db: &Db) -> Cuttable {
    let url = url::Url::parse(&db.url).unwrap();
    let upstream = tokio::net::lookup_host((
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap(),
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    Cuttable::start(upstream).await
}

fn short_leases() -> ManagerConfig {
    ManagerConfig {
        lease_ttl: Duration::from_secs(1),
        lease_heartbeat: Duration::from_millis(50),
        ..World::manager_config()
    }
}

/// The store's rule, step by step: a store that was cut off does not take over a lease that
/// lapsed (by the clock) until it has been back for a TTL; the holder can still renew meanwhile;
/// after that TTL a lapse is evidence again and the takeover bumps the fence.
async fn a_lease_that_lapsed_during_an_outage_is_not_taken_at_once(db: &Db) {
    let world = World::new(|b| b).await;
    let installer = world.instance(db).await;
    let id = world.install(&installer, "outage", None).await;
    let direct = installer.manager().store().clone();
    let proxy = proxy_for(db).await;
    let via = proxy.store(db).await;
    let ttl = Duration::from_secs(1);
    let t0 = world.clock.now();
    let at = |ms: u64| t0.saturating_add(Duration::from_millis(ms));

    let LeaseOutcome::Acquired { lease: held, .. } = direct
        .acquire_lease(&id, &LeaseOwner("a".into()), t0, ttl)
        .await
        .unwrap()
    else {
        panic!("the row is free");
    };
    assert!(via.get(&id).await.unwrap().is_some(), "reachable at first");
    proxy.cut();
    assert!(
        matches!(via.get(&id).await, Err(StoreError::Unavailable(_))),
        "the cut is an outage for this store"
    );
    proxy.restore();

    // 5 s later by the clock the lease has lapsed, but this store has only just come back.
    let outcome = via
        .acquire_lease(&id, &LeaseOwner("b".into()), at(5_000), ttl)
        .await
        .unwrap();
    assert!(
        matches!(&outcome, LeaseOutcome::Held { owner, until }
            if owner.0 == "a" && until > &at(5_000) && until <= &at(6_000)),
        "held back for the rest of a TTL: {outcome:?}"
    );
    // The holder shows it lives: its renewal (owner and fence) still lands.
    assert!(direct.renew_lease(&held, at(5_000), ttl).await.unwrap());

    // A TTL of being reachable later, a lapse is evidence again.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let outcome = via
        .acquire_lease(&id, &LeaseOwner("b".into()), at(8_000), ttl)
        .await
        .unwrap();
    let LeaseOutcome::Acquired { lease: taken, .. } = outcome else {
        panic!("the lapsed lease is taken over once the store has been back a TTL: {outcome:?}");
    };
    assert_eq!(taken.fence, held.fence + 1);
    // A store that saw no outage takes a lapsed lease at once (the rule is about this store).
    let LeaseOutcome::Acquired { lease: again, .. } = direct
        .acquire_lease(&id, &LeaseOwner("c".into()), at(10_000), ttl)
        .await
        .unwrap()
    else {
        panic!("the direct store saw no outage");
    };
    assert_eq!(again.fence, taken.fence + 1);
}

/// Two instances behind the same cut link: the first has Kit's answer (Kit rotated) when
/// PostgreSQL becomes unreachable, its lease lapses by the clock while nobody can write, and
/// the second asks for the token the moment the link is back. Under reuse detection with no
/// grace window a resend of the spent token would end the grant; instead the second waits, the
/// first renews and commits, and Kit sees exactly one refresh.
async fn a_holder_cut_off_with_kits_answer_keeps_the_grant(db: &Db) {
    let world = World::new(|b| b.rotation(Rotation::ReuseDetection)).await;
    let installer = world.instance(db).await;
    let id = world.install(&installer, "cut-off", None).await;
    world.advance(172_800 + 60);
    world.sandbox.reset_stats();
    let proxy = proxy_for(db).await;
    let first = world
        .instance_on(proxy.store(db).await, short_leases())
        .await;
    let second = world
        .instance_on(proxy.store(db).await, short_leases())
        .await;
    world
        .sandbox
        .add_fault(Fault::new(
            FaultEndpoint::Token,
            FaultKind::Latency { ms: 1_500 },
        ))
        .unwrap();

    let holder = {
        let manager = first.manager().clone();
        let id = id.clone();
        tokio::spawn(async move { manager.access_token(&id).await })
    };
    world.until_kit_has_the_refresh().await;
    assert_eq!(world.token_requests(), 1, "the first instance is at Kit");
    proxy.cut();
    assert!(
        second.manager().access_token(&id).await.is_err(),
        "no token while the database is unreachable"
    );
    // The lease lapses by the clock; Kit answers the first instance (1.5 s), whose commit
    // fails until the link is back.
    world.advance(5);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    proxy.restore();

    let waited = second.manager().access_token(&id).await.unwrap();
    let held = holder.await.unwrap().unwrap();

    let stats = world.stats();
    assert_eq!(
        world.token_requests(),
        1,
        "exactly one refresh at Kit: {stats:?}"
    );
    assert_eq!(stats.refreshes_ok, 1, "{stats:?}");
    assert_eq!(stats.refresh_reuse_attempts, 0, "{stats:?}");
    assert_eq!(invalid_grants(&stats), 0, "{stats:?}");
    let current = world.current_access();
    assert_eq!(held.fingerprint().to_string(), current);
    assert_eq!(waited.fingerprint().to_string(), current);
    assert_eq!(stored_access(&installer, &id).await, current);
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        postgres_trial!(a_lease_that_lapsed_during_an_outage_is_not_taken_at_once),
        postgres_trial!(a_holder_cut_off_with_kits_answer_keeps_the_grant),
    ];
    libtest_mimic::run(&args, trials).exit();
}
