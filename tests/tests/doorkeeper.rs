//! The client and the manager against a real Doorkeeper (issue 17.4), in both of its rotation
//! modes: install (authorize → callback → exchange → account lookup), forced refreshes across two
//! instances on one SQLite file, a two-instance storm at expiry that Doorkeeper must see as ONE
//! refresh, and revoke. Doorkeeper counts the grants itself (`GET /__test/stats`), so the counts
//! are the server's, not ours.
//!
//! Runs under libtest-mimic: without Ruby/Doorkeeper the cases are ignored with the reason, and
//! under `CI=true` they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kit_oauth::core::{ConnectionId, ConnectionStore as _, ManualClock, Timestamp};
use kit_oauth::http::KitEndpoints;
use kit_oauth::{KitOAuth, ManagerConfig, ManagerError};
use kit_oauth_tests::doorkeeper::{
    self, ACCOUNT_NAME, CLIENT_ID, CLIENT_SECRET, Case, Peer, PeerRotation, REDIRECT_URI,
};
use kit_oauth_tests::{Db, http_client};
use serde_json::Value;

/// Doorkeeper's access-token lifetime here. The manager's clock starts at the wall clock's now
/// (expiry counts from Doorkeeper's `created_at`) and is moved only forward.
const TTL: u64 = 7_200;
/// The storm's lifetime: short enough to wait out, so that the storm meets a token Doorkeeper
/// itself considers expired.
const STORM_TTL: u64 = 4;

/// A Doorkeeper peer and a manual clock that starts at the wall clock's now.
struct DoorkeeperWorld {
    peer: Peer,
    clock: ManualClock,
}

impl DoorkeeperWorld {
    async fn new(rotation: PeerRotation, ttl: u64) -> Self {
        let peer = Peer::start(rotation, ttl).await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let clock = ManualClock::new(Timestamp::from_unix_seconds(i64::try_from(now).unwrap()));
        Self { peer, clock }
    }

    fn advance(&self, secs: i64) {
        let now = kit_oauth::core::Clock::now(&self.clock);
        self.clock
            .set(Timestamp::from_unix_seconds(now.unix_seconds() + secs));
    }

    fn endpoints(&self) -> KitEndpoints {
        KitEndpoints::builder()
            .base_url(self.peer.base_url())
            .client_id(CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .redirect_uri(REDIRECT_URI)
            .request_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    async fn instance(&self, db: &Db) -> KitOAuth {
        KitOAuth::builder()
            .endpoints(self.endpoints())
            .store(db.store().await)
            .clock(Arc::new(self.clock.clone()))
            .manager_config(ManagerConfig {
                lease_ttl: Duration::from_secs(10),
                wait_timeout: Duration::from_secs(60),
                ..ManagerConfig::default()
            })
            .redirect_allow(
                kit_oauth::core::RedirectAllowlist::new([format!(
                    "{}/apps/",
                    self.peer.base_url()
                )])
                .unwrap(),
            )
            .build()
            .await
            .unwrap()
    }

    /// A whole install, as the browser would drive it: Doorkeeper's creator is signed in and its
    /// consent skipped, so authorize answers the redirect to the callback at once.
    async fn install(&self, kit: &KitOAuth) -> ConnectionId {
        let redirect = format!("{}/apps/1?success=true", self.peer.base_url());
        let started = kit.install().begin(&redirect, None, None).await.unwrap();
        let response = http_client()
            .get(started.authorize_url.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            302,
            "Doorkeeper's authorize redirects"
        );
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        let query = url::Url::parse(&location)
            .unwrap()
            .query()
            .unwrap_or_default()
            .to_owned();
        let binding = started.browser_binding.expose_secret().to_owned();
        let installed = kit
            .install()
            .complete(&query, Some(&binding))
            .await
            .unwrap();
        assert_eq!(installed.account.name, ACCOUNT_NAME);
        installed.connection_id
    }

    /// A refresh straight at Doorkeeper with `refresh_token`: (status, body).
    async fn refresh_raw(&self, refresh_token: &str) -> (u16, Value) {
        let response = http_client()
            .post(self.peer.url("/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until Doorkeeper's wall clock is past `expires_at`, and sets ours just past it.
    async fn wait_past(&self, expires_at: Timestamp) {
        let past = expires_at.unix_seconds() + 1;
        while i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap()
            < past
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.clock.set(Timestamp::from_unix_seconds(past));
    }

    /// `GET /v4/account` straight at Doorkeeper with `token`: (status, body).
    async fn account_raw(&self, token: &str) -> (u16, Value) {
        let response = http_client()
            .get(self.peer.url("/v4/account"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn install_and_account_lookup(rotation: PeerRotation) {
    let world = DoorkeeperWorld::new(rotation, TTL).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let id = world.install(&kit).await;
    assert_eq!(world.peer.grants("authorization_code").await, 1);

    let account = kit.client().account(&id).await.unwrap();
    assert_eq!(account.name, ACCOUNT_NAME);
    let token = kit.manager().access_token(&id).await.unwrap();
    assert_eq!(world.account_raw(token.expose_secret()).await.0, 200);
    assert_eq!(
        world.peer.refreshes().await,
        0,
        "a fresh token is not refreshed"
    );
}

async fn forced_refreshes_across_two_instances(rotation: PeerRotation) {
    let world = DoorkeeperWorld::new(rotation, TTL).await;
    let db = Db::sqlite();
    let a = world.instance(&db).await;
    let b = world.instance(&db).await;
    let id = world.install(&a).await;

    let mut seen = HashSet::new();
    seen.insert(
        a.manager()
            .access_token(&id)
            .await
            .unwrap()
            .expose_secret()
            .to_owned(),
    );
    for round in 0..3 {
        for (name, kit) in [("a", &a), ("b", &b)] {
            let token = kit.manager().force_refresh(&id, None).await.unwrap();
            assert!(
                seen.insert(token.expose_secret().to_owned()),
                "round {round}, instance {name}: the forced refresh renewed the token"
            );
            // Each instance refreshes with the refresh token the other stored: none is spent.
            let account = kit.client().account(&id).await.unwrap();
            assert_eq!(account.name, ACCOUNT_NAME);
        }
    }
    assert_eq!(
        world.peer.refreshes().await,
        6,
        "six forced refreshes, six at Doorkeeper"
    );
    // Both instances serve the last token.
    let last_a = a.manager().force_refresh(&id, None).await.unwrap();
    // Past b's in-memory copy's age limit (`ManagerConfig::cache_max_age`, 15 s).
    world.advance(16);
    let last_b = b.manager().access_token(&id).await.unwrap();
    assert!(last_a == last_b, "b reads what a stored");
    assert_eq!(world.peer.refreshes().await, 7);
    assert_eq!(world.peer.token_errors("invalid_grant").await, 0);
}

async fn two_instance_storm_at_expiry(rotation: PeerRotation) {
    const CALLERS_PER_INSTANCE: usize = 250;
    let world = DoorkeeperWorld::new(rotation, STORM_TTL).await;
    let db = Db::sqlite();
    let a = world.instance(&db).await;
    let b = world.instance(&db).await;
    let id = world.install(&a).await;
    let first = a.manager().access_token(&id).await.unwrap();
    assert!(b.manager().access_token(&id).await.unwrap() == first);

    // Expiry counts from Doorkeeper's `created_at`, i.e. its wall clock: the storm starts when
    // the short-lived token has really expired, with the manager's clock just past it. The new
    // token, issued after that instant, is then not yet due itself.
    let expires_at = a.manager().status(&id).await.unwrap().expires_at.unwrap();
    world.wait_past(expires_at).await;
    let mut callers = Vec::new();
    for _ in 0..CALLERS_PER_INSTANCE {
        for kit in [&a, &b] {
            let manager = kit.manager().clone();
            let id = id.clone();
            callers.push(tokio::spawn(async move { manager.access_token(&id).await }));
        }
    }
    let mut tokens = HashSet::new();
    for caller in callers {
        tokens.insert(caller.await.unwrap().unwrap().expose_secret().to_owned());
    }
    assert_eq!(
        world.peer.refreshes().await,
        1,
        "exactly one refresh at Doorkeeper"
    );
    assert_eq!(
        world.peer.token_errors("invalid_grant").await,
        0,
        "no refresh token was spent twice"
    );
    assert_eq!(
        tokens.len(),
        1,
        "every caller on both instances gets the same token"
    );
    let token = tokens.into_iter().next().unwrap();
    assert_ne!(token, first.expose_secret(), "the token was renewed");
    assert_eq!(world.account_raw(&token).await.0, 200);
    // The old token died with its first successor's use (revoke-on-use) or at once (strict).
    assert_eq!(
        world.account_raw(first.expose_secret()).await,
        (
            401,
            serde_json::json!({"errors": ["The access token was revoked"]})
        )
    );
}

async fn revoke(rotation: PeerRotation) {
    let world = DoorkeeperWorld::new(rotation, TTL).await;
    let db = Db::sqlite();
    let a = world.instance(&db).await;
    let b = world.instance(&db).await;
    let id = world.install(&a).await;
    let token = a.manager().access_token(&id).await.unwrap();
    assert_eq!(world.account_raw(token.expose_secret()).await.0, 200);

    a.manager().revoke(&id).await.unwrap();
    // Revoking the refresh token at Doorkeeper revoked its access token too.
    assert_eq!(
        world.account_raw(token.expose_secret()).await,
        (
            401,
            serde_json::json!({"errors": ["The access token was revoked"]})
        )
    );
    for kit in [&a, &b] {
        let err = kit.manager().access_token(&id).await.unwrap_err();
        assert!(
            matches!(&err, ManagerError::ReauthRequired { reason, .. } if reason.contains("revoked")),
            "{err}"
        );
    }
    assert_eq!(
        world.peer.refreshes().await,
        0,
        "revoking refreshes nothing"
    );
}

/// Doorkeeper revokes only a pair whose access token still works: the refresh token of an
/// expired one survives its revocation (docs/doorkeeper-observed.md). Revoking a connection
/// whose token expired must still end the grant, so the manager renews it first and revokes
/// the pair that came back: afterwards neither refresh token works at Doorkeeper.
async fn revoke_after_expiry(rotation: PeerRotation) {
    let world = DoorkeeperWorld::new(rotation, STORM_TTL).await;
    let db = Db::sqlite();
    let a = world.instance(&db).await;
    let id = world.install(&a).await;
    let stored = db.store().await.get(&id).await.unwrap().unwrap();
    let kit_oauth::core::Grant::Active(tokens) = stored.grant else {
        panic!("a fresh install has tokens");
    };
    let first_refresh = tokens.refresh().expose_secret().to_owned();
    world.wait_past(tokens.expires_at()).await;

    a.manager().revoke(&id).await.unwrap();
    assert_eq!(
        world.peer.refreshes().await,
        1,
        "one renewal, so that the revocation lands on a working pair"
    );
    let (status, body) = world.refresh_raw(&first_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "the install's refresh token is dead after the revocation: {body}"
    );
    assert_eq!(
        world.peer.refreshes().await,
        1,
        "and nothing refreshed since"
    );
    let err = a.manager().access_token(&id).await.unwrap_err();
    assert!(
        matches!(&err, ManagerError::ReauthRequired { reason, .. } if reason.contains("revoked")),
        "{err}"
    );
}

/// A broker API key of the broker test.
const API_KEY: &str = "doorkeeper-broker-api-key-0123456789";

/// Follows a redirect by hand, returning where it points.
fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on a {} answer", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// The `name=value` parts of a response's cookies, as a `Cookie` header.
fn cookies(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The broker (`kit-oauth-server`, started in-process as its binary starts it) against
/// Doorkeeper: a creator's install through the broker's own routes, a token, the API proxy, a
/// forced refresh, and a delete that revokes at Doorkeeper.
async fn broker_install_token_proxy_refresh_delete(rotation: PeerRotation) {
    use kit_oauth::{KitOAuthConfig, vars};
    use kit_oauth_server::app::{self, RunConfig};
    use kit_oauth_server::{ApiKeys, DashboardAccess, RouteLimits, SignInLimits, TrustedProxies};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let callback = format!("{base}/kit/oauth/callback");
    let peer = Peer::start_for(rotation, TTL, &callback).await;
    let dir = tempfile::tempdir().unwrap();
    let values = std::collections::HashMap::from([
        (vars::CLIENT_ID, CLIENT_ID.to_owned()),
        (vars::CLIENT_SECRET, CLIENT_SECRET.to_owned()),
        (vars::REDIRECT_URI, callback.clone()),
        (vars::OAUTH_BASE, peer.base_url().to_owned()),
        (vars::REDIRECT_ALLOW, peer.url("/apps/")),
        (
            vars::DATABASE_URL,
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("broker.db").display()
            ),
        ),
        (
            vars::ENCRYPTION_KEY,
            kit_oauth::store::KeyRing::generate()
                .to_env_value()
                .to_string(),
        ),
    ]);
    let library = KitOAuthConfig::from_lookup(|name| values.get(name).cloned()).unwrap();
    let running = app::start(RunConfig {
        library,
        listener,
        api_keys: ApiKeys::none().with_key(API_KEY),
        dashboard: DashboardAccess::Disabled,
        webhook: None,
        demo: None,
        refresher: kit_oauth::RefresherConfig::default(),
        shutdown_grace: Duration::from_secs(10),
        clock: None,
        sign_in: None,
        install_links: None,
        sign_in_limits: SignInLimits::default(),
        trusted_proxies: TrustedProxies::none(),
        route_limits: RouteLimits::default(),
        kit_rate_budget: None,
        dashboard_reload: None,
    })
    .await
    .unwrap();

    // The creator's browser: Kit's App Store link → the broker → Doorkeeper (signed in,
    // consent skipped) → the broker's callback → back to Kit.
    let browser = http_client();
    let kit_redirect = peer.url("/apps/1?success=true");
    let begun = browser
        .get(format!("{base}/kit/oauth"))
        .query(&[("redirect", kit_redirect.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        begun.status().as_u16(),
        302,
        "the broker sends the creator to Kit"
    );
    let jar = cookies(&begun);
    let authorize = location(&begun);
    assert!(authorize.starts_with(&peer.url("/")), "{authorize}");
    let authorized = browser.get(&authorize).send().await.unwrap();
    assert_eq!(
        authorized.status().as_u16(),
        302,
        "Doorkeeper redirects with the code"
    );
    let back = location(&authorized);
    assert!(back.starts_with(&callback), "{back}");
    let done = browser
        .get(&back)
        .header("cookie", jar)
        .send()
        .await
        .unwrap();
    assert_eq!(
        done.status().as_u16(),
        302,
        "the broker sends the creator back to Kit"
    );
    assert!(location(&done).starts_with(&peer.url("/apps/1")));
    assert_eq!(peer.grants("authorization_code").await, 1);

    let api = http_client();
    let list: Value = api
        .get(format!("{base}/v1/connections"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connections = list["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1, "{list}");
    assert_eq!(connections[0]["account_name"], ACCOUNT_NAME);
    assert_eq!(connections[0]["state"], "authorized");
    let id = connections[0]["id"].as_str().unwrap().to_owned();

    let token = |path: &'static str| {
        let api = api.clone();
        let url = format!("{base}/v1/connections/{id}/{path}");
        async move {
            let body: Value = api
                .post(url)
                .bearer_auth(API_KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let first = token("token").await;
    let proxied = api
        .get(format!("{base}/v1/connections/{id}/kit/account"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status().as_u16(), 200);
    let account: Value = proxied.json().await.unwrap();
    assert_eq!(account["account"]["name"], ACCOUNT_NAME);
    assert_eq!(peer.refreshes().await, 0);

    let second = token("refresh").await;
    assert_ne!(second, first, "the forced refresh renewed the token");
    assert_eq!(peer.refreshes().await, 1, "one refresh at Doorkeeper");
    assert_eq!(
        token("token").await,
        second,
        "the broker serves the new token"
    );

    let deleted = api
        .delete(format!("{base}/v1/connections/{id}"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    let at_kit = api
        .get(peer.url("/v4/account"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(
        at_kit.status().as_u16(),
        401,
        "the delete revoked the grant at Doorkeeper"
    );
    assert_eq!(
        at_kit.json::<Value>().await.unwrap(),
        serde_json::json!({"errors": ["The access token was revoked"]})
    );
    assert_eq!(peer.token_errors("invalid_grant").await, 0);
    running.shutdown().await;
}

fn main() {
    let mut cases = Vec::new();
    for mode in PeerRotation::ALL {
        let m = mode.ident();
        cases.push(Case::new(
            format!("doorkeeper::{m}::install_and_account_lookup"),
            move || install_and_account_lookup(mode),
        ));
        cases.push(Case::new(
            format!("doorkeeper::{m}::forced_refreshes_across_two_instances"),
            move || forced_refreshes_across_two_instances(mode),
        ));
        cases.push(Case::new(
            format!("doorkeeper::{m}::two_instance_storm_at_expiry"),
            move || two_instance_storm_at_expiry(mode),
        ));
        cases.push(Case::new(format!("doorkeeper::{m}::revoke"), move || {
            revoke(mode)
        }));
        cases.push(Case::new(
            format!("doorkeeper::{m}::revoke_after_expiry"),
            move || revoke_after_expiry(mode),
        ));
        cases.push(Case::new(
            format!("doorkeeper::{m}::broker_install_token_proxy_refresh_delete"),
            move || broker_install_token_proxy_refresh_delete(mode),
        ));
    }
    doorkeeper::run(cases)
}
