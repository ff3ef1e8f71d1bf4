//! A connection's tenant decides which tenant-scoped API keys see it, so it comes only from
//! the app: a signed install link, the tenant signed with the user, or an embedding app's
//! `SignIn::tenant_from`, believed only beside the user its session vouches for. An unsigned
//! `tenant` (`/kit/oauth?redirect=…&tenant=victim-co`) is refused with a page saying why, and
//! nothing is stored.
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

/// An embedding app's browser: its session (and the tenant its session names) travel as headers
/// on every request, as a cookie of the app's own domain would.
fn app_browser(session: Option<&str>, tenant: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(session) = session {
        headers.insert("x-app-session", session.parse().unwrap());
    }
    headers.insert("x-app-tenant", tenant.parse().unwrap());
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_apps_tenant_is_used_only_with_its_signed_in_user() {
    const INITECH_KEY: &str = "initech-api-key-0123456789";
    let seen: std::sync::Arc<std::sync::Mutex<Vec<kit_oauth_server::InstalledBy>>> =
        std::sync::Arc::default();
    let recorder = std::sync::Arc::clone(&seen);
    // The app knows one session; the tenant header stands for what that session says.
    let hook = SignIn::new(SecretString::from(USER_SECRET))
        .user_from(|headers| {
            (headers.get("x-app-session")?.to_str().ok()? == "session-of-user-9")
                .then(|| "user-9".to_owned())
        })
        .tenant_from(|headers| Some(headers.get("x-app-tenant")?.to_str().ok()?.to_owned()))
        .on_installed(move |by| recorder.lock().unwrap().push(by.clone()));
    let broker = support::Broker::start(Extra {
        sign_in: Some(hook.clone()),
        api_keys: Some(ApiKeys::parse(&format!("{API_KEY},initech={INITECH_KEY}")).unwrap()),
        ..Extra::default()
    })
    .await;
    let begin = support::begin_url(&broker.base, &broker.sandbox);
    let api = BrokerApi::new(&broker.base, API_KEY);
    let initech = BrokerApi::new(&broker.base, INITECH_KEY);

    // Signed in through the app's session: the connection lands in the tenant the app named.
    let browser = app_browser(Some("session-of-user-9"), "initech");
    let callback = support::until_callback(&browser, &broker.sandbox, &begin, "Ann").await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::FOUND);
    let ann = support::connection_id(&broker.base, "Ann").await;
    assert_eq!(api.show(&ann).await.body["tenant"], "initech");
    assert_eq!(
        BrokerApi::ids(&initech.list("").await.body),
        std::slice::from_ref(&ann)
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].user, "user-9");
        assert_eq!(seen[0].connection_id.to_string(), ann);
        assert_eq!(
            seen[0]
                .tenant
                .as_ref()
                .map(kit_oauth::core::TenantName::as_str),
            Some("initech")
        );
    }

    // No session: the tenant the request names is nobody's word. Without a `user` parameter
    // the install is refused (401); with a forged one, 403. Nothing is stored or sent to Kit.
    let redeemed = broker.sandbox.stats().codes_redeemed;
    let forged = SignIn::new(SecretString::from("not-the-apps-secret-0123")).sign_with_tenant(
        "user-9",
        "initech",
        now() + 300,
    );
    for (session, url, status) in [
        (None, begin.clone(), StatusCode::UNAUTHORIZED),
        (
            Some("someone-elses-session"),
            begin.clone(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            None,
            format!("{begin}&user={forged}"),
            StatusCode::FORBIDDEN,
        ),
    ] {
        let answer = app_browser(session, "initech")
            .get(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), status, "{session:?} {url}");
        assert!(answer.headers().get("location").is_none());
    }
    assert_eq!(rows(broker.dir.path(), "pending_authorizations").await, 0);
    assert_eq!(rows(broker.dir.path(), "connections").await, 1);
    assert_eq!(broker.sandbox.stats().codes_redeemed, redeemed);

    // A user signed by the app without a tenant (`v1`), with no session: the header's tenant
    // does not ride along; the connection has no tenant and initech's key does not see it.
    let v1 = hook.sign("user-10", now() + 300);
    let browser = app_browser(None, "initech");
    let callback = support::until_callback(
        &browser,
        &broker.sandbox,
        &format!("{begin}&user={v1}"),
        "Ben",
    )
    .await;
    assert_eq!(
        browser.get(&callback).send().await.unwrap().status(),
        StatusCode::FOUND
    );
    let ben = support::connection_id(&broker.base, "Ben").await;
    assert!(api.show(&ben).await.body["tenant"].is_null());
    assert_eq!(BrokerApi::ids(&initech.list("").await.body), [ann]);
    assert_eq!(rows(broker.dir.path(), "connections").await, 2);
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(seen.lock().unwrap()[1].tenant, None);
    broker.running.shutdown().await;
}
