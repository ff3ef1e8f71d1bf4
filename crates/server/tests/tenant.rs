//! A connection's tenant decides which tenant-scoped API keys see it, so it comes only from
//! the app: a signed install link, or the tenant signed with the user. An unsigned `tenant`
//! (`/kit/oauth?redirect=…&tenant=victim-co`) is refused with a page saying why, and nothing
//! is stored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kit_oauth_server::{ApiKeys, InstallLinks, SignIn};
use reqwest::StatusCode;
use sea_orm::ConnectionTrait as _;
use secrecy::SecretString;
use support::{API_KEY, BrokerApi, Extra};

const VICTIM_KEY: &str = "victim-api-key-0123456789";
const USER_SECRET: &str = "tenant-user-secret-0123456789";

/// Rows of `table` in the broker's SQLite file.
async fn rows(dir: &std::path::Path, table: &str) -> i64 {
    let db = sea_orm::Database::connect(support::sqlite_url(dir))
        .await
        .unwrap();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_tenant_is_refused_and_nothing_is_stored() {
    for no_install_links in [false, true] {
        let broker = support::Broker::start(Extra {
            api_keys: Some(ApiKeys::parse(&format!("{API_KEY},victim-co={VICTIM_KEY}")).unwrap()),
            no_install_links,
            ..Extra::default()
        })
        .await;
        let begin = support::begin_url(&broker.base, &broker.sandbox);
        let forged = InstallLinks::new(SecretString::from("attacker-secret-0123456789"))
            .sign("victim-co", now() + 600);
        for tenant in ["victim-co", forged.as_str()] {
            let answer = support::browser()
                .get(format!("{begin}&tenant={tenant}"))
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
            let page = answer.text().await.unwrap();
            assert!(page.contains("not signed by the app"), "{page}");
            assert!(page.contains("Nothing was saved"), "{page}");
        }
        assert_eq!(rows(broker.dir.path(), "pending_authorizations").await, 0);
        assert_eq!(rows(broker.dir.path(), "connections").await, 0);
        assert_eq!(broker.sandbox.stats().codes_redeemed, 0);
        let listed = BrokerApi::new(&broker.base, VICTIM_KEY).list("").await;
        assert_eq!(BrokerApi::ids(&listed.body).len(), 0, "{listed:?}");
        broker.running.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_link_lands_in_its_tenant() {
    let broker = support::Broker::start(Extra::default()).await;
    let begin = format!(
        "{}&tenant={}",
        support::begin_url(&broker.base, &broker.sandbox),
        support::tenant_link("acme")
    );
    let id = support::install_from(&broker.base, &broker.sandbox, &begin, "Ann").await;
    let shown = BrokerApi::new(&broker.base, API_KEY).show(&id).await;
    assert_eq!(shown.body["tenant"], "acme", "{shown:?}");
    assert_eq!(rows(broker.dir.path(), "connections").await, 1);
    broker.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signed_user_carries_the_tenant_and_the_old_format_still_works() {
    let hook = SignIn::new(SecretString::from(USER_SECRET));
    let broker = support::Broker::start(Extra {
        sign_in: Some(hook.clone()),
        ..Extra::default()
    })
    .await;
    let begin = support::begin_url(&broker.base, &broker.sandbox);
    let api = BrokerApi::new(&broker.base, API_KEY);

    // v1: a user without a tenant, as before.
    let v1 = hook.sign("user-1", now() + 300);
    let id = support::install_from(
        &broker.base,
        &broker.sandbox,
        &format!("{begin}&user={v1}"),
        "Ann",
    )
    .await;
    assert!(api.show(&id).await.body["tenant"].is_null());

    // v2: the tenant signed with the user.
    let v2 = hook.sign_with_tenant("user-2", "globex", now() + 300);
    let id = support::install_from(
        &broker.base,
        &broker.sandbox,
        &format!("{begin}&user={v2}"),
        "Ben",
    )
    .await;
    assert_eq!(api.show(&id).await.body["tenant"], "globex");

    // A signed user for globex cannot be sent to acme by a link, nor by a bare name.
    for tenant in [support::tenant_link("acme"), "acme".to_owned()] {
        let answer = support::browser()
            .get(format!("{begin}&user={v2}&tenant={tenant}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!(rows(broker.dir.path(), "connections").await, 2);
    broker.running.shutdown().await;
}
