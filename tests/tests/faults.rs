//! Guarantee 3 — Faults: with each sandbox fault the old tokens are kept, retries back off with
//! jitter, the grant stays alive, and once the fault clears the next call succeeds; no fault
//! makes the manager send a spent refresh token except inside the server's grace window. A
//! response lost after rotation recovers with `--reuse-grace`; without it the connection ends
//! `ReauthRequired` with an event and a clear `last_error`, and no retry loop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kit_oauth::core::{
    Clock as _, ConnectionId, ConnectionStore as _, ConnectionStoreExt as _, InFlight,
    LeaseOutcome, LeaseOwner, StateName, TokenEndpoint as _,
};
use kit_oauth::{KitOAuth, ManagerError};
use kit_oauth_tests::{Db, Expired, World, invalid_grants};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, SandboxBuilder};

struct Setup {
    world: World,
    _db: Db,
    kit: KitOAuth,
    id: ConnectionId,
}

/// An installed connection whose token has expired, stats reset.
async fn expired_connection(customize: impl FnOnce(SandboxBuilder) -> SandboxBuilder) -> Setup {
    let Expired {
        world,
        db,
        kit,
        mut ids,
    } = Expired::new(customize, &["faulty"]).await;
    Setup {
        world,
        _db: db,
        kit,
        id: ids.remove(0),
    }
}

async fn stored_refresh_fingerprint(setup: &Setup) -> String {
    use kit_oauth::core::{ConnectionStore as _, Grant};
    let record = setup
        .kit
        .manager()
        .store()
        .get(&setup.id)
        .await
        .unwrap()
        .unwrap();
    match record.grant {
        Grant::Active(tokens) => tokens.refresh().fingerprint().to_string(),
        Grant::Ended(reason) => panic!("grant ended: {reason:?}"),
    }
}

/// Moves both clocks past the connection's cooldown.
async fn wait_out_cooldown(setup: &Setup) {
    let status = setup.kit.manager().status(&setup.id).await.unwrap();
    let until = status.cooldown_until.expect("a cooldown was set");
    let now = setup.world.clock.now();
    let secs = until.duration_since(now).as_secs() + 1;
    setup.world.advance(secs);
}

/// One fault of `kind` on the token endpoint; the refresh fails transiently, nothing is lost,
/// hammering during the cooldown costs no upstream call, and the next call after it succeeds.
async fn transient_fault_is_survived(kind: FaultKind) {
    let setup = expired_connection(|b| b).await;
    let mut events = setup.kit.events().subscribe();
    let before = stored_refresh_fingerprint(&setup).await;
    setup
        .world
        .sandbox
        .add_fault(Fault::new(FaultEndpoint::Token, kind.clone()).times(2))
        .unwrap();

    let first = setup
        .kit
        .manager()
        .access_token(&setup.id)
        .await
        .unwrap_err();
    assert!(
        matches!(
            first,
            ManagerError::Unavailable {
                retry_at: Some(_),
                ..
            }
        ),
        "{first}"
    );
    let status = setup.kit.manager().status(&setup.id).await.unwrap();
    assert_eq!(status.ended, None, "the grant is alive");
    assert_eq!(status.consecutive_failures, 1);
    assert!(status.last_error.is_some());
    let first_cooldown = status
        .cooldown_until
        .unwrap()
        .duration_since(setup.world.clock.now());
    assert_eq!(
        stored_refresh_fingerprint(&setup).await,
        before,
        "old tokens kept"
    );

    // Hammering during the cooldown costs nothing upstream.
    let calls = setup.world.token_requests();
    for _ in 0..100 {
        assert!(setup.kit.manager().access_token(&setup.id).await.is_err());
    }
    assert_eq!(
        setup.world.token_requests(),
        calls,
        "no upstream call while cooling down"
    );

    // The second failure backs off for longer (exponential, jittered).
    wait_out_cooldown(&setup).await;
    assert!(setup.kit.manager().access_token(&setup.id).await.is_err());
    let status = setup.kit.manager().status(&setup.id).await.unwrap();
    assert_eq!(status.consecutive_failures, 2);
    let second_cooldown = status
        .cooldown_until
        .unwrap()
        .duration_since(setup.world.clock.now());
    assert!(
        second_cooldown >= first_cooldown,
        "{second_cooldown:?} < {first_cooldown:?}"
    );

    // The fault has cleared: the next call succeeds.
    wait_out_cooldown(&setup).await;
    let token = setup.kit.manager().access_token(&setup.id).await.unwrap();
    let stats = setup.world.stats();
    assert_eq!(stats.refreshes_ok, 1, "{stats:?}");
    assert_eq!(
        stats.refresh_reuse_attempts, 0,
        "a spent token was never sent: {stats:?}"
    );
    assert_eq!(invalid_grants(&stats), 0);
    let status = setup.kit.manager().status(&setup.id).await.unwrap();
    assert_eq!(status.state, StateName::Authorized);
    assert_eq!(status.consecutive_failures, 0);
    assert_eq!(status.last_error, None);
    assert_eq!(
        setup.kit.client().account(&setup.id).await.unwrap().name,
        "faulty"
    );
    drop(token);

    // Events fired on transitions only: one failure (the first of the streak), one refresh.
    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        kinds.push(event.kind.name());
    }
    assert_eq!(kinds, ["refresh_failed", "refreshed"]);
}

#[tokio::test]
async fn server_errors_500() {
    transient_fault_is_survived(FaultKind::Status {
        status: 500,
        body: None,
        retry_after: None,
    })
    .await;
}

#[tokio::test]
async fn rate_limited_429_with_retry_after() {
    let setup = expired_connection(|b| b).await;
    setup
        .world
        .sandbox
        .add_fault(Fault::new(
            FaultEndpoint::Token,
            FaultKind::Status {
                status: 429,
                body: None,
                retry_after: Some(120),
            },
        ))
        .unwrap();
    assert!(setup.kit.manager().access_token(&setup.id).await.is_err());
    let status = setup.kit.manager().status(&setup.id).await.unwrap();
    let cooldown = status
        .cooldown_until
        .unwrap()
        .duration_since(setup.world.clock.now());
    assert!(
        cooldown.as_secs() >= 120,
        "Retry-After honoured: {cooldown:?}"
    );
    wait_out_cooldown(&setup).await;
    setup.kit.manager().access_token(&setup.id).await.unwrap();
    assert_eq!(setup.world.stats().refreshes_ok, 1);
    assert_eq!(setup.world.stats().refresh_reuse_attempts, 0);
}

#[tokio::test]
async fn rate_limited_429_without_body() {
    transient_fault_is_survived(FaultKind::Status {
        status: 429,
        body: None,
        retry_after: None,
    })
    .await;
}

#[tokio::test]
async fn dropped_connection() {
    transient_fault_is_survived(FaultKind::Drop).await;
}

#[tokio::test]
async fn malformed_json() {
    transient_fault_is_survived(FaultKind::MalformedJson).await;
}

/// After a lost answer: exactly one spent token was accepted inside the grace window, none
/// outside it, and the stored token works at Kit.
async fn assert_recovered_within_grace(setup: &Setup) {
    let stats = setup.world.stats();
    assert_eq!(stats.refresh_grace_hits, 1, "{stats:?}");
    assert_eq!(
        stats.refresh_reuse_attempts, 1,
        "no reuse outside the window: {stats:?}"
    );
    assert_eq!(invalid_grants(&stats), 0);
    let status = setup.kit.manager().status(&setup.id).await.unwrap();
    assert_eq!(status.state, StateName::Authorized);
    assert_eq!(
        setup.kit.client().account(&setup.id).await.unwrap().name,
        "faulty"
    );
}

/// The sandbox processes a slow request before holding its answer: a client timing out has
/// lost a rotated pair, exactly like "rotate, then drop". Recovery needs the grace window.
#[tokio::test]
async fn latency_past_the_timeout_recovers_within_grace() {
    let setup = expired_connection(|b| b.reuse_grace(300)).await;
    setup
        .world
        .sandbox
        .add_fault(Fault::new(
            FaultEndpoint::Token,
            FaultKind::Latency { ms: 3_000 },
        ))
        .unwrap();
    let err = setup
        .kit
        .manager()
        .access_token(&setup.id)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    wait_out_cooldown(&setup).await;
    setup.kit.manager().access_token(&setup.id).await.unwrap();
    assert_recovered_within_grace(&setup).await;
}

#[tokio::test]
async fn rotate_then_drop_recovers_within_grace() {
    let setup = expired_connection(|b| b.reuse_grace(300)).await;
    setup
        .world
        .sandbox
        .add_fault(Fault::new(FaultEndpoint::Token, FaultKind::RotateThenDrop))
        .unwrap();
    assert!(setup.kit.manager().access_token(&setup.id).await.is_err());
    wait_out_cooldown(&setup).await;
    setup.kit.manager().access_token(&setup.id).await.unwrap();
    assert_eq!(setup.world.stats().refreshes_ok, 1);
    assert_recovered_within_grace(&setup).await;
}

#[tokio::test]
async fn rotate_then_drop_without_grace_ends_in_reauth_required() {
    let setup = expired_connection(|b| b).await;
    let mut events = setup.kit.events().subscribe();
    setup
        .world
        .sandbox
        .add_fault(Fault::new(FaultEndpoint::Token, FaultKind::RotateThenDrop))
        .unwrap();
    assert!(setup.kit.manager().access_token(&setup.id).await.is_err());
    wait_out_cooldown(&setup).await;
    let err = setup
        .kit
        .manager()
        .access_token(&setup.id)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::ReauthRequired { .. }), "{err}");
    let status = setup.kit.manager().status(&setup.id).await.unwrap();
    assert_eq!(status.state, StateName::Unauthorized);
    let last_error = status.last_error.as_deref().unwrap();
    assert!(last_error.contains("invalid_grant"), "{status:?}");
    assert!(
        last_error.contains("never answered"),
        "the reason names the lost answer: {last_error}"
    );

    // No retry loop: a dead grant costs no further upstream call, however hard it is asked.
    let calls = setup.world.token_requests();
    for _ in 0..100 {
        let err = setup
            .kit
            .manager()
            .access_token(&setup.id)
            .await
            .unwrap_err();
        assert!(matches!(err, ManagerError::ReauthRequired { .. }));
    }
    setup.world.advance(3_600);
    assert!(setup.kit.manager().access_token(&setup.id).await.is_err());
    assert_eq!(setup.world.token_requests(), calls);

    let kinds: Vec<&str> = std::iter::from_fn(|| events.try_recv().ok())
        .map(|e| e.kind.name())
        .collect();
    assert_eq!(kinds, ["refresh_failed", "reauth_required"]);
}

/// A token inside its refresh margin but not expired is still good: a failed refresh must not
/// turn it into an error for the caller. The failure is recorded and retried after the cooldown.
#[tokio::test]
async fn a_due_but_valid_token_is_served_through_a_failed_refresh() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let id = world.install(&kit, "due", None).await;
    let installed = kit.manager().access_token(&id).await.unwrap();
    // A 48 h token's margin is 15 min: five minutes before expiry it is due, and valid.
    world.advance(172_800 - 300);
    world.sandbox.reset_stats();
    world
        .sandbox
        .add_fault(Fault::new(
            FaultEndpoint::Token,
            FaultKind::Status {
                status: 503,
                body: None,
                retry_after: None,
            },
        ))
        .unwrap();

    let served = kit.manager().access_token(&id).await.unwrap();
    assert!(served == installed, "the still-valid token is served");
    assert_eq!(world.token_requests(), 1, "one refresh was tried");
    let status = kit.manager().status(&id).await.unwrap();
    assert_eq!(status.consecutive_failures, 1);
    assert_eq!(status.ended, None, "the grant is alive");
    assert_eq!(status.state, StateName::Expired, "due for refresh");
    assert!(status.cooldown_until.is_some());

    // During the cooldown the valid token keeps being served without calling Kit.
    for _ in 0..20 {
        assert!(kit.manager().access_token(&id).await.unwrap() == installed);
    }
    assert_eq!(world.token_requests(), 1);

    let until = status.cooldown_until.unwrap();
    world.advance(until.duration_since(world.clock.now()).as_secs() + 1);
    let renewed = kit.manager().access_token(&id).await.unwrap();
    assert!(renewed != installed, "refreshed once the cooldown passed");
    let stats = world.stats();
    assert_eq!(stats.refreshes_ok, 1, "{stats:?}");
    assert_eq!(invalid_grants(&stats), 0);
    assert_eq!(stats.refresh_reuse_attempts, 0);
}

/// An instance killed between sending a refresh and storing the answer: it took the lease,
/// marked the refresh in flight, and Kit rotated the token. Returns the access token Kit issued.
async fn killed_mid_refresh(setup: &Setup) -> String {
    let store = setup.kit.manager().store();
    let now = setup.world.clock.now();
    let lease = match store
        .acquire_lease(
            &setup.id,
            &LeaseOwner("killed-instance".into()),
            now,
            Duration::from_secs(10),
        )
        .await
        .unwrap()
    {
        LeaseOutcome::Acquired { lease, .. } => lease,
        held @ LeaseOutcome::Held { .. } => panic!("{held:?}"),
    };
    let refresh = {
        use kit_oauth::core::Grant;
        match store.get(&setup.id).await.unwrap().unwrap().grant {
            Grant::Active(tokens) => tokens.refresh().clone(),
            Grant::Ended(reason) => panic!("{reason:?}"),
        }
    };
    let in_flight = InFlight {
        refresh_token: refresh.fingerprint(),
        started_at: now,
    };
    store.mark_in_flight(&lease, &in_flight).await.unwrap();
    // The dead instance's own adapter sends it; Kit rotates.
    let answer = setup
        .kit
        .manager()
        .endpoint()
        .refresh(&refresh)
        .await
        .unwrap();
    // The answer dies with the instance. Its lease lapses.
    setup.world.advance(11);
    answer.access_token.expose_secret().to_owned()
}

/// The survivor resends the in-flight refresh token; inside Kit's grace window it gets the
/// same new pair, so nothing is lost and no reuse is counted outside the window.
#[tokio::test]
async fn a_refresh_killed_mid_flight_recovers_within_grace() {
    let setup = expired_connection(|b| b.reuse_grace(300)).await;
    let issued = killed_mid_refresh(&setup).await;
    let token = setup.kit.manager().access_token(&setup.id).await.unwrap();
    assert_eq!(token.expose_secret(), issued, "the pair Kit issued is kept");
    assert_recovered_within_grace(&setup).await;
}

/// Without a grace window the rotated pair is gone for good: the grant ends once, with a reason
/// that says what happened, and nothing retries.
#[tokio::test]
async fn a_refresh_killed_mid_flight_without_grace_names_the_cause() {
    let setup = expired_connection(|b| b).await;
    killed_mid_refresh(&setup).await;
    let err = setup
        .kit
        .manager()
        .access_token(&setup.id)
        .await
        .unwrap_err();
    assert!(matches!(err, ManagerError::ReauthRequired { .. }), "{err}");
    assert!(err.to_string().contains("never answered"), "{err}");
    let calls = setup.world.token_requests();
    assert!(setup.kit.manager().access_token(&setup.id).await.is_err());
    assert_eq!(setup.world.token_requests(), calls);
    assert_eq!(setup.world.stats().refresh_reuse_attempts, 1);
}
