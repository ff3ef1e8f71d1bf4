//! Issue 13.2 — a stranger cannot cancel a person's install. A request to the callback URL from
//! another browser (another binding cookie, or none), with a code or with a forged error, is
//! refused with its explanation and leaves the pending install in place; the person's own
//! browser then completes it, and Kit's code is redeemed exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kit_oauth::core::{CallbackError, ListQuery};
use kit_oauth::store::SeaOrmStore;
use kit_oauth::{InstallError, KitOAuth};
use kit_oauth_tests::{Db, World};
use sea_orm::{ConnectionTrait as _, Statement};

async fn pending_rows(store: &SeaOrmStore) -> i64 {
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            store.backend(),
            "SELECT COUNT(*) FROM pending_authorizations".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn connections(kit: &KitOAuth) -> usize {
    kit.manager()
        .list(&ListQuery::default())
        .await
        .unwrap()
        .len()
}

fn refused(result: Result<kit_oauth::Installed, InstallError>) -> CallbackError {
    match result {
        Err(InstallError::Callback(e)) => e,
        other => panic!("expected a callback error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stranger_s_callback_leaves_the_install_to_its_browser() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let store = db.store().await;
    let redirect = format!("{}/apps/1?success=true", world.sandbox.base_url());

    let started = kit.install().begin(&redirect, None, None).await.unwrap();
    let binding = started.browser_binding.expose_secret().to_owned();
    let query = world.consent(&started.authorize_url, "person").await;
    let state = started
        .authorize_url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(pending_rows(&store).await, 1);

    // The stranger replays the callback URL from another browser, then without a cookie, then
    // forges Kit's denial: each is told it is not their install, and nothing is consumed.
    let stranger = "S".repeat(43);
    assert_eq!(
        refused(kit.install().complete(&query, Some(&stranger)).await),
        CallbackError::ForeignBrowser
    );
    assert_eq!(
        refused(kit.install().complete(&query, None).await),
        CallbackError::ForeignBrowser
    );
    let denial = format!("error=access_denied&state={state}");
    assert!(matches!(
        refused(kit.install().complete(&denial, Some(&stranger)).await),
        CallbackError::AccessDenied { .. }
    ));
    assert_eq!(
        pending_rows(&store).await,
        1,
        "the install is still pending"
    );
    assert_eq!(world.stats().codes_redeemed, 0, "no code reached Kit");
    assert_eq!(connections(&kit).await, 0);

    // The person's browser completes it.
    let installed = kit
        .install()
        .complete(&query, Some(&binding))
        .await
        .unwrap();
    assert_eq!(pending_rows(&store).await, 0);
    assert_eq!(connections(&kit).await, 1);
    assert_eq!(world.stats().codes_redeemed, 1);
    assert!(
        kit.manager()
            .access_token(&installed.connection_id)
            .await
            .is_ok()
    );

    // And the state is now spent, for everyone: the code is never redeemed again.
    assert_eq!(
        refused(kit.install().complete(&query, Some(&stranger)).await),
        CallbackError::UnknownState
    );
    let other_instance = world.instance(&db).await;
    assert_eq!(
        refused(
            other_instance
                .install()
                .complete(&query, Some(&binding))
                .await
        ),
        CallbackError::UnknownState
    );
    let stats = world.stats();
    assert_eq!(stats.codes_redeemed, 1);
    assert_eq!(stats.codes_redeemed_twice, 0);
}
