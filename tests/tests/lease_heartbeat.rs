//! Short refresh leases (issue 14.1): a live holder renews its lease while Kit is slow and keeps
//! it; a holder that stops renewing (killed, or stalled) loses it once the TTL passes, the next
//! instance takes over, and the stale holder can no longer write under its fence. Two managers
//! on one store, SQLite and PostgreSQL; every count exact, no timing asserted.
//!
//! The managers decide expiry by the shared manual clock, so a lease "lapses" only when the
//! test moves that clock: the heartbeat (real time) renews to `clock.now() + ttl`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kit_oauth::core::{
    Clock as _, ConnectionId, ConnectionStore as _, ConnectionStoreExt as _, InFlight,
    LeaseOutcome, LeaseOwner, Sha256Hash, StoreError,
};
use kit_oauth::{KitOAuth, ManagerConfig};
use kit_oauth_tests::{Db, World, invalid_grants, stored_access};
use kit_oauth_tests::{postgres_trial, sqlite_trial};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, Rotation};
use libtest_mimic::Arguments;

/// Kit holds the answer this long: longer than the lease TTL in real time, shorter than the
/// test endpoints' 2 s request timeout.
const SLOW_KIT_MS: u64 = 1_500;

fn short_leases(heartbeat: Duration) -> ManagerConfig {
    ManagerConfig {
        lease_ttl: Duration::from_secs(1),
        lease_heartbeat: heartbeat,
        ..World::manager_config()
    }
}

struct Two {
    world: World,
    first: KitOAuth,
    id: ConnectionId,
}

/// One installed connection, expired, on `db`; stats reset; the token endpoint's next answer
/// is held `SLOW_KIT_MS`.
async fn setup(db: &Db, rotation: Rotation, first: ManagerConfig) -> Two {
    let world = World::new(|b| b.rotation(rotation)).await;
    let installer = world.instance(db).await;
    let id = world.install(&installer, "slow", None).await;
    world.advance(172_800 + 60);
    world.sandbox.reset_stats();
    let first = world.instance_with(db, first).await;
    world
        .sandbox
        .add_fault(Fault::new(
            FaultEndpoint::Token,
            FaultKind::Latency { ms: SLOW_KIT_MS },
        ))
        .unwrap();
    Two { world, first, id }
}

/// Kit answers after longer than the TTL: the holder's heartbeat keeps the lease, the second
/// manager waits for its commit instead of refreshing, and Kit sees one refresh (under reuse
/// detection a second one would revoke the grant).
async fn a_slow_holder_keeps_its_lease(db: &Db) {
    let two = setup(
        db,
        Rotation::ReuseDetection,
        short_leases(Duration::from_millis(50)),
    )
    .await;
    let holder = {
        let manager = two.first.manager().clone();
        let id = two.id.clone();
        tokio::spawn(async move { manager.access_token(&id).await })
    };
    two.world.until_kit_has_the_refresh().await;
    // Past the TTL by the managers' clock; the heartbeat renews from there.
    two.world.advance(5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = two
        .world
        .instance_with(db, short_leases(Duration::from_millis(50)))
        .await;
    let waited = second.manager().access_token(&two.id).await.unwrap();
    let held = holder.await.unwrap().unwrap();

    let stats = two.world.stats();
    assert_eq!(two.world.token_requests(), 1, "exactly one refresh at Kit");
    assert_eq!(stats.refreshes_ok, 1, "{stats:?}");
    assert_eq!(stats.refresh_reuse_attempts, 0, "{stats:?}");
    assert_eq!(invalid_grants(&stats), 0, "{stats:?}");
    assert_eq!(waited.fingerprint(), held.fingerprint());
    let current = two.world.current_access();
    assert_eq!(held.fingerprint().to_string(), current);
    assert_eq!(stored_access(&second, &two.id).await, current);
}

/// The holder dies mid-refresh: its instance runs on a runtime of its own, shut down while
/// Kit holds the answer, as a killed process (its spawned refresh, its heartbeat and its pool
/// all gone; its lease and in-flight mark left in the row). Once the TTL has passed the second
/// manager takes the lease and resends the in-flight token, which Doorkeeper's revoke-on-use
/// accepts: nothing lost, no `invalid_grant`.
async fn a_killed_holder_is_taken_over(db: &Db) {
    let world = World::new(|b| b.rotation(Rotation::RevokeOnUse)).await;
    let installer = world.instance(db).await;
    let id = world.install(&installer, "killed", None).await;
    world.advance(172_800 + 60);
    world.sandbox.reset_stats();
    world
        .sandbox
        .add_fault(Fault::new(
            FaultEndpoint::Token,
            FaultKind::Latency { ms: SLOW_KIT_MS },
        ))
        .unwrap();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let doomed = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .unwrap();
                doomed.block_on(async {
                    let first = world
                        .instance_with(db, short_leases(Duration::from_millis(50)))
                        .await;
                    let manager = first.manager().clone();
                    let id = id.clone();
                    tokio::spawn(async move { manager.access_token(&id).await });
                    world.until_kit_has_the_refresh().await;
                });
                doomed.shutdown_background();
            })
            .join()
            .unwrap();
    });
    world.advance(5);
    let second = world
        .instance_with(db, short_leases(Duration::from_millis(50)))
        .await;
    let token = second.manager().access_token(&id).await.unwrap();

    let stats = world.stats();
    assert_eq!(
        world.token_requests(),
        2,
        "the killed holder's refresh, then the resend: {stats:?}"
    );
    assert_eq!(stats.refreshes_ok, 2, "{stats:?}");
    assert_eq!(stats.refresh_reuse_accepted, 1, "the resend: {stats:?}");
    assert_eq!(invalid_grants(&stats), 0, "{stats:?}");
    let current = world.current_access();
    assert_eq!(token.fingerprint().to_string(), current);
    assert_eq!(stored_access(&second, &id).await, current);
}

/// The holder stops renewing but lives on (its heartbeat is an hour): the second manager takes
/// the lapsed lease and commits first. When the stale holder's answer arrives its fenced
/// commit is refused and the compare-and-swap fallback finds a newer row: the store keeps the
/// second manager's tokens, which are Kit's current ones, and the stale holder hands them out.
async fn a_stale_holder_cannot_commit(db: &Db) {
    let two = setup(
        db,
        Rotation::RevokeOnUse,
        short_leases(Duration::from_secs(3_600)),
    )
    .await;
    let stale = {
        let manager = two.first.manager().clone();
        let id = two.id.clone();
        tokio::spawn(async move { manager.access_token(&id).await })
    };
    two.world.until_kit_has_the_refresh().await;
    two.world.advance(5);
    let second = two
        .world
        .instance_with(db, short_leases(Duration::from_millis(50)))
        .await;
    let taken_over = second.manager().access_token(&two.id).await.unwrap();
    let from_stale = stale.await.unwrap().unwrap();

    let stats = two.world.stats();
    assert_eq!(
        two.world.token_requests(),
        2,
        "the stale holder's and the resend"
    );
    assert_eq!(stats.refresh_reuse_accepted, 1, "{stats:?}");
    assert_eq!(invalid_grants(&stats), 0, "{stats:?}");
    let current = two.world.current_access();
    assert_eq!(taken_over.fingerprint().to_string(), current);
    assert_eq!(from_stale.fingerprint().to_string(), current);
    assert_eq!(stored_access(&second, &two.id).await, current);
}

/// The store's side of fencing: a renewal keeps others out; once the lease lapses and another
/// owner takes it (fence + 1), the old lease can neither renew, mark a token in flight, nor
/// release the new holder's lease.
async fn fencing_refuses_a_lapsed_lease(db: &Db) {
    let world = World::new(|b| b).await;
    let kit = world.instance(db).await;
    let id = world.install(&kit, "fenced", None).await;
    let store = kit.manager().store();
    let ttl = Duration::from_secs(1);
    let t0 = world.clock.now();
    let at = |ms: u64| t0.saturating_add(Duration::from_millis(ms));
    let acquire = |owner: &'static str, now| {
        let id = id.clone();
        async move {
            store
                .acquire_lease(&id, &LeaseOwner(owner.into()), now, ttl)
                .await
                .unwrap()
        }
    };
    let LeaseOutcome::Acquired { lease: old, .. } = acquire("a", t0).await else {
        panic!("the row is free");
    };
    assert!(store.renew_lease(&old, at(500), ttl).await.unwrap());
    let held = acquire("b", at(1_200)).await;
    assert!(
        matches!(&held, LeaseOutcome::Held { owner, until } if owner.0 == "a" && *until == at(1_500)),
        "renewed until 1.5 s: {held:?}"
    );
    let LeaseOutcome::Acquired { lease: new, .. } = acquire("b", at(1_600)).await else {
        panic!("the lapsed lease is taken over");
    };
    assert_eq!(new.fence, old.fence + 1);
    assert!(!store.renew_lease(&old, at(1_700), ttl).await.unwrap());
    let mark = InFlight {
        refresh_token: Sha256Hash::of(b"stale"),
        started_at: at(1_700),
    };
    assert!(matches!(
        store.mark_in_flight(&old, &mark).await,
        Err(StoreError::LeaseLost(_))
    ));
    assert!(!store.release_lease(&old, None, false).await.unwrap());
    let still = acquire("c", at(1_700)).await;
    assert!(
        matches!(&still, LeaseOutcome::Held { owner, until } if owner.0 == "b" && *until == at(2_600)),
        "the new holder's lease is untouched: {still:?}"
    );
}

/// Each case on a SQLite file and on PostgreSQL (ignored with the reason when unreachable).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        fn main() {
            let args = Arguments::from_args();
            let trials = vec![$(sqlite_trial!($name), postgres_trial!($name),)*];
            libtest_mimic::run(&args, trials).exit();
        }
    };
}

on_both_stores!(
    a_slow_holder_keeps_its_lease,
    a_killed_holder_is_taken_over,
    a_stale_holder_cannot_commit,
    fencing_refuses_a_lapsed_lease,
);
