//! Issue 13.9 — a connection can always be removed. When Kit refuses the revocation (a 4xx such
//! as `unauthorized_client` after a client-secret rotation) or fails (5xx), `remove` says Kit
//! kept the grant and keeps the row; `remove_forced` deletes it anyway and records, once, that
//! Kit was not told. Counted at the sandbox (revoke requests) and in the audit trail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kit_oauth::core::{ConnectionId, ListQuery};
use kit_oauth::store::SeaOrmStore;
use kit_oauth::{KitOAuth, ManagerError, Removal};
use kit_oauth_tests::{Db, World, stored_tokens};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind};

fn refuse_revokes(world: &World, status: u16, body: &str) {
    world
        .sandbox
        .add_fault(Fault::new(
            FaultEndpoint::Revoke,
            FaultKind::Status {
                status,
                body: Some(body.to_owned()),
                retry_after: None,
            },
        ))
        .unwrap();
}

fn revokes(world: &World) -> u64 {
    world.stats().requests.get("revoke").copied().unwrap_or(0)
}

async fn event_kinds(store: &SeaOrmStore, id: &ConnectionId) -> Vec<String> {
    store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|(kind, _, _)| kind)
        .collect()
}

async fn connections(kit: &KitOAuth) -> usize {
    kit.manager()
        .list(&ListQuery::default())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_refused_revoke_keeps_the_row_and_a_forced_removal_records_it() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let store = db.store().await;
    let id = world.install(&kit, "person", None).await;
    let manager = kit.manager();

    // Kit refuses (the client secret was rotated): the grant lives on at Kit, so the row stays.
    refuse_revokes(
        &world,
        401,
        r#"{"error":"unauthorized_client","error_description":"not authorized"}"#,
    );
    let refused = manager.remove(&id).await.unwrap_err();
    assert!(
        matches!(&refused, ManagerError::KitKeptGrant { id: kept, transient: false, .. } if *kept == id),
        "{refused:?}"
    );
    assert!(!refused.is_transient());
    // Kit fails: the same, and worth retrying.
    refuse_revokes(&world, 503, "");
    let failed = manager.remove(&id).await.unwrap_err();
    assert!(
        matches!(
            failed,
            ManagerError::KitKeptGrant {
                transient: true,
                ..
            }
        ),
        "{failed:?}"
    );
    assert_eq!(revokes(&world), 2);
    assert_eq!(connections(&kit).await, 1, "the row is kept");
    assert!(manager.access_token(&id).await.is_ok(), "and still works");

    // Forced: Kit refuses once more, the row goes anyway, and the trail says Kit was not told.
    refuse_revokes(
        &world,
        401,
        r#"{"error":"unauthorized_client","error_description":"not authorized"}"#,
    );
    let removal = manager.remove_forced(&id).await.unwrap();
    assert!(
        matches!(&removal, Removal::KitNotTold { reason } if !reason.is_empty()),
        "{removal:?}"
    );
    assert_eq!(revokes(&world), 3);
    assert_eq!(connections(&kit).await, 0);
    assert!(matches!(
        manager.status(&id).await,
        Err(ManagerError::NotFound(_))
    ));
    let kinds = event_kinds(&store, &id).await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "removed_without_revoke")
            .count(),
        1,
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "revoked"), "{kinds:?}");
    assert!(matches!(
        manager.remove_forced(&id).await,
        Err(ManagerError::NotFound(_))
    ));
}

#[tokio::test]
async fn a_forced_removal_still_revokes_when_kit_accepts() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let store = db.store().await;
    let id = world.install(&kit, "person", None).await;

    assert_eq!(
        kit.manager().remove_forced(&id).await.unwrap(),
        Removal::Revoked
    );
    assert_eq!(revokes(&world), 1);
    assert_eq!(connections(&kit).await, 0);
    let kinds = event_kinds(&store, &id).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "revoked").count(),
        1,
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "removed_without_revoke"));
}

/// Under Doorkeeper's default rotation (revoke-on-use), a refresh leaves the replaced pair
/// working until the new access token is first used, and revoking the new pair does not end
/// it. A revocation right after a refresh nobody used therefore uses the access token once
/// first: afterwards no pair of the grant works. And a connection whose access token expired
/// (Doorkeeper ignores the revocation of such a pair) is renewed once, then revoked the same
/// way: exactly one refresh, nothing alive. The sandbox runs as Doorkeeper does here
/// (`revoke_expired` off, the test world's default).
#[tokio::test]
async fn a_revocation_leaves_no_pair_working_under_revoke_on_use() {
    let world = World::new(|b| b.rotation(kit_sandbox::Rotation::RevokeOnUse)).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let manager = kit.manager();

    let refreshed = world.install(&kit, "refreshed", None).await;
    manager.force_refresh(&refreshed, None).await.unwrap();
    assert!(!world.alive_grants("refreshed").is_empty());
    manager.revoke(&refreshed).await.unwrap();
    assert!(
        world.alive_grants("refreshed").is_empty(),
        "the pair the refresh replaced was retired by the use, the new one revoked: {:?}",
        world.sandbox.grants()
    );

    let expired = world.install(&kit, "expired", None).await;
    world.advance(172_800 + 60);
    let before = world.stats().refreshes_ok;
    manager.revoke(&expired).await.unwrap();
    assert_eq!(
        world.stats().refreshes_ok,
        before + 1,
        "one renewal of the expired pair"
    );
    assert!(
        world.alive_grants("expired").is_empty(),
        "the expired pair was renewed, its successor used and revoked: {:?}",
        world.sandbox.grants()
    );
    assert_eq!(world.stats().invalid_grant_total, 0);
}

/// Under revoke-on-use every refresh retires the pair it replaced by using the new access
/// token once, so a connection the refresher renews again and again while nobody uses it leaves
/// no chain of working pairs behind, and a revocation ends the grant whole: every refresh token
/// the store ever held is refused at Kit afterwards. Without the retire, the first two were
/// still accepted (their successors' access tokens were never used), the case the property
/// suite found (install, force, force, revoke).
#[tokio::test]
async fn refreshes_nobody_used_leave_no_chain_alive_at_kit() {
    let world = World::new(|b| b.rotation(kit_sandbox::Rotation::RevokeOnUse)).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let manager = kit.manager();

    let id = world.install(&kit, "idle", None).await;
    let mut held = vec![
        stored_tokens(&kit, &id)
            .await
            .refresh()
            .expose_secret()
            .to_owned(),
    ];
    for _ in 0..3 {
        manager.force_refresh(&id, None).await.unwrap();
        held.push(
            stored_tokens(&kit, &id)
                .await
                .refresh()
                .expose_secret()
                .to_owned(),
        );
    }
    manager.revoke(&id).await.unwrap();
    assert_eq!(world.stats().refreshes_ok, 3);
    assert_eq!(world.stats().invalid_grant_total, 0);
    for (n, refresh_token) in held.iter().enumerate() {
        let status = refresh_at_kit(&world, refresh_token).await;
        assert_eq!(
            status, 400,
            "refresh token {n} of the chain still refreshes at Kit after the revocation"
        );
    }
    assert!(world.alive_grants("idle").is_empty());
}

/// A revocation that lands while Kit is answering a refresh: Kit rotated (the answer is slow
/// in coming), the revocation revokes the pair the row held and ends the row, and the refresh's
/// commit then loses. Under revoke-on-use the pair that refresh got keeps working at Kit until
/// revoked, and no row holds it: the manager revokes it when it discards it. Without that, the
/// revocation reported the grant ended while a pair of it still refreshed.
#[tokio::test]
async fn a_revocation_racing_a_refresh_leaves_no_pair_alive() {
    let world = World::new(|b| b.rotation(kit_sandbox::Rotation::RevokeOnUse)).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let id = world.install(&kit, "racing", None).await;

    world
        .sandbox
        .add_fault(Fault::new(
            FaultEndpoint::Token,
            FaultKind::Latency { ms: 800 },
        ))
        .unwrap();
    let rotated = world.stats().refreshes_ok + 1;
    let refresh = tokio::spawn({
        let manager = kit.manager().clone();
        let id = id.clone();
        async move { manager.force_refresh(&id, None).await }
    });
    // Kit processes the refresh at once and holds the answer: the revocation goes in between.
    while world.stats().refreshes_ok < rotated {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    kit.manager().revoke(&id).await.unwrap();
    let lost = refresh.await.unwrap();
    assert!(
        lost.is_err(),
        "the refresh lost to the revocation: {lost:?}"
    );
    assert!(
        world.alive_grants("racing").is_empty(),
        "the pair the losing refresh got was revoked too: {:?}",
        world.sandbox.grants()
    );
    assert_eq!(world.stats().refreshes_ok, rotated);
}

/// The status Kit answers a refresh with `refresh_token`, sent straight to its token endpoint.
async fn refresh_at_kit(world: &World, refresh_token: &str) -> u16 {
    kit_oauth_tests::http_client()
        .post(format!("{}/oauth/token", world.sandbox.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", kit_oauth_tests::CLIENT_ID),
            ("client_secret", kit_oauth_tests::CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
