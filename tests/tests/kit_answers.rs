//! What Kit's answers do to a connection, through the library (the manager, its store and its
//! `KitClient`) against the sandbox: expiry counts from the response's arrival whatever Kit's
//! clock says, and a refused access token is verified before the grant is called dead.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kit_oauth::core::{Clock as _, StateName, Timestamp};
use kit_oauth::http::ApiError;
use kit_oauth_tests::{Db, World};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind};

/// Kit's code exchange grants 48 h.
const LIFETIME: Duration = Duration::from_secs(172_800);
const SKEW: u64 = 3 * 3600;

fn assert_near(actual: Timestamp, expected: Timestamp) {
    let gap = actual.unix_seconds().abs_diff(expected.unix_seconds());
    assert!(
        gap <= 5,
        "expires_at {actual:?} is {gap} s from {expected:?}"
    );
}

#[tokio::test]
async fn expiry_counts_from_arrival_whatever_kits_clock_says() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;

    // Kit's clock 3 h ahead of ours: its created_at would stretch the token's life by 3 h.
    world.sandbox.advance_clock(SKEW);
    let ahead = world.install(&kit, "ahead", None).await;
    let status = kit.manager().status(&ahead).await.unwrap();
    assert_near(
        status.expires_at.unwrap(),
        world.clock.now().saturating_add(LIFETIME),
    );

    // Ours 3 h ahead of Kit's (Kit behind): its created_at would make the token arrive 3 h old.
    world.clock.advance(Duration::from_secs(2 * SKEW));
    let behind = world.install(&kit, "behind", None).await;
    let status = kit.manager().status(&behind).await.unwrap();
    assert_eq!(status.state, StateName::Authorized);
    assert_near(
        status.expires_at.unwrap(),
        world.clock.now().saturating_add(LIFETIME),
    );
    let refreshes = world.stats().refreshes_ok;
    kit.manager().access_token(&behind).await.unwrap();
    assert_eq!(world.stats().refreshes_ok, refreshes, "not due on arrival");
}

fn refused(message: &str) -> Fault {
    Fault::new(
        FaultEndpoint::Account,
        FaultKind::Status {
            status: 401,
            body: Some(serde_json::json!({ "errors": [message] }).to_string()),
            retry_after: None,
        },
    )
}

fn account_calls(world: &World) -> u64 {
    world.stats().requests.get("account").copied().unwrap_or(0)
}

#[tokio::test]
async fn a_refused_token_that_still_works_is_retried_once_not_called_dead() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let id = world.install(&kit, "kept", None).await;
    let tokens_before = world.token_requests();

    for message in [
        "The access token is invalid",
        "The access token was revoked",
        "Your plan has expired; upgrade to use this endpoint",
    ] {
        let before = account_calls(&world);
        world.sandbox.add_fault(refused(message)).unwrap();
        let account = kit.client().account(&id).await.unwrap();
        assert_eq!(account.name, "kept");
        assert_eq!(
            account_calls(&world),
            before + 3,
            "{message}: refused, verified, retried"
        );
    }
    assert_eq!(world.token_requests(), tokens_before, "never refreshed");
    let status = kit.manager().status(&id).await.unwrap();
    assert_eq!(status.state, StateName::Authorized);

    // Revoked at Kit: the check is refused too, and only then is the grant dead.
    let grant = world
        .sandbox
        .grants()
        .into_iter()
        .find(|g| g.alive)
        .unwrap();
    assert!(world.sandbox.revoke_grant(grant.id));
    let before = account_calls(&world);
    let err = kit.client().account(&id).await.unwrap_err();
    assert!(matches!(err, ApiError::ReauthRequired { .. }), "{err:?}");
    assert_eq!(account_calls(&world), before + 2, "the call and the check");
    assert_eq!(world.token_requests(), tokens_before);
    let status = kit.manager().status(&id).await.unwrap();
    assert_eq!(status.state, StateName::Unauthorized);
}
