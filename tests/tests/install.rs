//! Guarantee 7 — Install: forged, replayed, expired and foreign-browser states, a non-Kit
//! `redirect`, a denial and a code Kit rejects each get their own typed error; none of the
//! state attacks reaches Kit's token endpoint, and nothing is stored. A double-submitted
//! callback gets the same answer and redeems the code once; reinstalls never duplicate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kit_oauth::core::{CallbackError, ListQuery, RedirectError};
use kit_oauth::{InstallError, KitOAuth};
use kit_oauth_tests::{Db, World};

async fn stored(kit: &KitOAuth) -> usize {
    kit.manager()
        .list(&ListQuery {
            limit: 100,
            ..ListQuery::default()
        })
        .await
        .unwrap()
        .len()
}

fn redirect(world: &World) -> String {
    format!("{}/apps/1?success=true", world.sandbox.base_url())
}

fn callback_error(result: Result<kit_oauth::Installed, InstallError>) -> CallbackError {
    match result {
        Err(InstallError::Callback(e)) => e,
        other => panic!("expected a callback error, got {other:?}"),
    }
}

#[tokio::test]
async fn state_attacks_never_reach_the_token_endpoint() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;

    // Forged state.
    let started = kit
        .install()
        .begin(&redirect(&world), None, None)
        .await
        .unwrap();
    let binding = started.browser_binding.expose_secret().to_owned();
    let query = world.consent(&started.authorize_url, "victim").await;
    let forged = query.replace("state=", "state=forged");
    assert_eq!(
        callback_error(kit.install().complete(&forged, Some(&binding)).await),
        CallbackError::UnknownState
    );

    // Another browser (its cookie is not the one bound to this state), or none: refused, and
    // the install stays for its own browser (issue 13.2; `stranger.rs` completes it).
    let other_browser = "A".repeat(43);
    assert_eq!(
        callback_error(kit.install().complete(&query, Some(&other_browser)).await),
        CallbackError::ForeignBrowser
    );
    assert_eq!(
        callback_error(kit.install().complete(&query, None).await),
        CallbackError::ForeignBrowser,
        "a stranger does not consume the state"
    );

    // Expired state.
    let started = kit
        .install()
        .begin(&redirect(&world), None, None)
        .await
        .unwrap();
    let binding = started.browser_binding.expose_secret().to_owned();
    let query = world.consent(&started.authorize_url, "slow").await;
    world.advance(601);
    assert_eq!(
        callback_error(kit.install().complete(&query, Some(&binding)).await),
        CallbackError::Expired
    );

    // Denial at Kit.
    let started = kit
        .install()
        .begin(&redirect(&world), None, None)
        .await
        .unwrap();
    let state = started
        .authorize_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let binding = started.browser_binding.expose_secret().to_owned();
    let denied = format!("error=access_denied&error_description=no&state={state}");
    assert!(matches!(
        callback_error(kit.install().complete(&denied, Some(&binding)).await),
        CallbackError::AccessDenied { .. }
    ));

    // Malformed.
    assert!(matches!(
        callback_error(
            kit.install()
                .complete("code=a&code=b&state=s", Some(&binding))
                .await
        ),
        CallbackError::Malformed(_)
    ));

    assert_eq!(
        world.token_requests(),
        0,
        "no token exchange for any of them"
    );
    assert_eq!(stored(&kit).await, 0, "nothing stored");
}

#[tokio::test]
async fn a_redirect_that_is_not_kits_is_refused_before_anything_is_stored() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    for evil in [
        "https://evil.example/apps/1",
        "https://app.kit.com.evil.example/",
        "//evil.example/",
        "",
    ] {
        let err = kit.install().begin(evil, None, None).await.unwrap_err();
        assert!(matches!(err, InstallError::Redirect(_)), "{evil}: {err}");
    }
    let err = kit
        .install()
        .begin("https://evil.example/", None, None)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        InstallError::Redirect(RedirectError::NotAllowed { .. })
    ));
    let err = kit
        .install()
        .begin(&redirect(&world), Some(""), None)
        .await
        .unwrap_err();
    assert!(matches!(err, InstallError::Tenant(_)), "{err}");
}

#[tokio::test]
async fn a_code_kit_rejects_is_an_exchange_error_and_stores_nothing() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let started = kit
        .install()
        .begin(&redirect(&world), None, None)
        .await
        .unwrap();
    let binding = started.browser_binding.expose_secret().to_owned();
    let query = world.consent(&started.authorize_url, "someone").await;
    let state = query.split('&').find(|p| p.starts_with("state=")).unwrap();
    let bogus = format!("code=not-a-real-code&{state}");
    let err = kit
        .install()
        .complete(&bogus, Some(&binding))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            InstallError::Exchange(kit_oauth::core::EndpointError::InvalidGrant { .. })
        ),
        "{err}"
    );
    assert_eq!(world.token_requests(), 1, "exactly one exchange attempt");
    assert_eq!(stored(&kit).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_submitted_callback_gets_one_answer_and_redeems_once() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let started = kit
        .install()
        .begin(&redirect(&world), None, None)
        .await
        .unwrap();
    let binding = started.browser_binding.expose_secret().to_owned();
    let query = world.consent(&started.authorize_url, "double").await;

    let (a, b) = tokio::join!(
        kit.install().complete(&query, Some(&binding)),
        kit.install().complete(&query, Some(&binding)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    // And a third, later submission of the same request.
    assert_eq!(
        kit.install()
            .complete(&query, Some(&binding))
            .await
            .unwrap(),
        a
    );
    let stats = world.stats();
    assert_eq!(stats.codes_redeemed, 1, "{stats:?}");
    assert_eq!(stats.codes_redeemed_twice, 0, "{stats:?}");
    assert_eq!(stored(&kit).await, 1);
    // The same state replayed from another browser is refused.
    assert!(
        kit.install()
            .complete(&query, Some(&"B".repeat(43)))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn reinstalls_keep_the_id_and_tenants_get_their_own_connection() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let first = world.install(&kit, "acme", None).await;
    let again = world.install(&kit, "acme", None).await;
    assert_eq!(first, again, "same account, same tenant: same connection");
    let tenant_a = world.install(&kit, "acme", Some("tenant-a")).await;
    let tenant_b = world.install(&kit, "acme", Some("tenant-b")).await;
    assert_ne!(tenant_a, first);
    assert_ne!(tenant_a, tenant_b);
    assert_eq!(stored(&kit).await, 3);
    // The reinstall's tokens replaced the old ones and work.
    assert_eq!(kit.client().account(&first).await.unwrap().name, "acme");
    let status = kit.manager().status(&tenant_a).await.unwrap();
    assert_eq!(
        status
            .tenant
            .as_ref()
            .map(kit_oauth::core::TenantName::as_str),
        Some("tenant-a")
    );
}

#[tokio::test]
async fn revoke_kills_the_grant_at_kit_then_marks_the_connection() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let id = world.install(&kit, "leaving", None).await;
    let mut events = kit.events().subscribe();
    kit.manager().revoke(&id).await.unwrap();
    assert_eq!(world.stats().grants_alive, 0);
    let err = kit.manager().access_token(&id).await.unwrap_err();
    assert!(matches!(
        err,
        kit_oauth::ManagerError::ReauthRequired { .. }
    ));
    assert_eq!(events.try_recv().unwrap().kind.name(), "revoked");
    kit.manager().remove(&id).await.unwrap();
    assert_eq!(stored(&kit).await, 0);
}

/// The code exchange's answer is lost after Kit issued a token pair (`rotate_then_drop` on the
/// token endpoint): the install fails with a transient exchange error, is not retried (the code
/// is single-use) and stores nothing. The pair Kit issued is an orphan nobody holds (so nobody
/// can use or revoke it). The person's retry adds a second pair to the same grant: under
/// Doorkeeper's default the orphan stays live, even after we revoke the connection; a Kit that
/// revokes earlier pairs on reauthorization ends it at the retry.
#[tokio::test]
async fn a_lost_code_exchange_answer_leaves_an_orphan_pair_and_stores_nothing() {
    for revoke_on_reauthorization in [false, true] {
        let world = World::new(|b| b.revoke_on_reauthorization(revoke_on_reauthorization)).await;
        let db = Db::sqlite();
        let kit = world.instance(&db).await;
        let live_pairs = || {
            let sizes = world.sandbox.sizes();
            sizes.access_tokens - sizes.retired
        };
        world
            .sandbox
            .add_fault(kit_sandbox::Fault::new(
                kit_sandbox::FaultEndpoint::Token,
                kit_sandbox::FaultKind::RotateThenDrop,
            ))
            .unwrap();
        let err = world.try_install(&kit, "lost", None).await.unwrap_err();
        assert!(
            matches!(
                err,
                InstallError::Exchange(kit_oauth::core::EndpointError::Transient { .. })
            ),
            "{err}"
        );
        assert_eq!(stored(&kit).await, 0, "nothing stored");
        let stats = world.stats();
        assert_eq!(
            stats.requests.get("token"),
            Some(&1),
            "not retried: {stats:?}"
        );
        assert_eq!(
            (stats.codes_redeemed, stats.grants_alive),
            (1, 1),
            "{stats:?}"
        );
        assert_eq!(live_pairs(), 1, "the orphan pair");

        // The person tries again: a new code, a second pair of the same grant, one connection.
        let id = world.install(&kit, "lost", None).await;
        assert_eq!(stored(&kit).await, 1);
        assert_eq!(kit.client().account(&id).await.unwrap().name, "lost");
        let stats = world.stats();
        assert_eq!(stats.codes_redeemed, 2, "{stats:?}");
        assert_eq!(
            (stats.grants_created, stats.grants_alive),
            (1, 1),
            "{stats:?}"
        );
        assert_eq!(live_pairs(), if revoke_on_reauthorization { 1 } else { 2 });

        // Revoking the connection revokes the pair it holds (RFC 7009 revokes a token, not the
        // grant): the orphan outlives it, and keeps the grant alive, until the account owner
        // removes the app at Kit. Nothing of ours can reach it: we never had its tokens.
        kit.manager().revoke(&id).await.unwrap();
        let orphan = usize::from(!revoke_on_reauthorization);
        assert_eq!(world.stats().grants_alive, orphan as u64);
        assert_eq!(live_pairs(), orphan);
    }
}
