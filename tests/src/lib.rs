//! Fixtures for the workspace-level suites in `tests/tests/`: a sandbox, databases (SQLite
//! file, PostgreSQL), and `KitOAuth` instances with their own pools, as separate processes
//! would have.
//!
//! The suites here cross crates — the manager over the real store and HTTP adapters against the
//! independent sandbox — which is why they live beside, not inside, any one crate. This is
//! test-support code: a fixture that cannot be set up is a failed test, so it unwraps.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod doorkeeper;
pub mod harness;

use std::sync::Arc;
use std::time::Duration;

use kit_oauth::core::{ConnectionId, ManualClock, Timestamp};
use kit_oauth::http::KitEndpoints;
use kit_oauth::store::{KeyRing, SeaOrmStore, StoreOptions};
use kit_oauth::{KitOAuth, ManagerConfig};
use kit_sandbox::{Rotation, SandboxBuilder, SandboxHandle, Stats};
use sea_orm::{ConnectionTrait as _, Database};

pub const CLIENT_ID: &str = "kit-oauth-tests";
pub const CLIENT_SECRET: &str = "sandbox-client-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/kit/oauth/callback";
const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where the connections live.
pub struct Db {
    pub url: String,
    keys: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Db {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("kit.db").display());
        Self {
            url,
            keys: KeyRing::generate().to_env_value().to_string(),
            _dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database, or `None` (after a loud skip line) when PostgreSQL is
    /// unreachable — except under CI (`CI=true` or `CI=1`), where that fails the test.
    pub async fn postgres(test: &str) -> Option<Self> {
        match Self::postgres_or_why().await {
            Ok(db) => Some(db),
            Err(why) => {
                eprintln!("\n!!!!! SKIPPED {test} on PostgreSQL: {why} !!!!!\n");
                None
            }
        }
    }

    /// A fresh PostgreSQL database, or why there is none (for a harness that reports the
    /// suite *ignored* with that reason). Under CI an unreachable PostgreSQL panics.
    pub async fn postgres_or_why() -> Result<Self, String> {
        let admin = std::env::var("KIT_OAUTH_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let db =
            match tokio::time::timeout(Duration::from_secs(10), Database::connect(&admin)).await {
                Ok(Ok(db)) => db,
                Ok(Err(e)) => return Err(unreachable_postgres(&admin, &e.to_string())),
                Err(_) => return Err(unreachable_postgres(&admin, "timed out")),
            };
        let name = format!(
            "kit_oauth_mgr_{}",
            ConnectionId::generate(&mut rand::rngs::OsRng)
                .as_str()
                .to_lowercase()
                .replace(['-', '_'], "x")
        );
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        db.close().await.unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        Ok(Self {
            url: url.to_string(),
            keys: KeyRing::generate().to_env_value().to_string(),
            _dir: None,
            pg: Some((admin, name)),
        })
    }

    pub fn keys(&self) -> KeyRing {
        KeyRing::from_env_value(&self.keys).unwrap()
    }

    pub fn keys_value(&self) -> &str {
        &self.keys
    }

    /// A store with its own pool.
    pub async fn store(&self) -> SeaOrmStore {
        SeaOrmStore::connect_with(&self.url, self.keys(), StoreOptions::default())
            .await
            .unwrap()
    }

    pub async fn drop_database(self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(db) = Database::connect(admin.as_str()).await
        {
            let _ = db
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
            let _ = db.close().await;
        }
    }
}

/// Why PostgreSQL cannot be used; under CI, a failure instead.
fn unreachable_postgres(admin: &str, why: &str) -> String {
    assert!(
        !matches!(std::env::var("CI").as_deref(), Ok("true" | "1")),
        "PostgreSQL is required under CI but {admin} is unreachable: {why}"
    );
    format!(
        "PostgreSQL at {admin} is unreachable ({why}): start it (bash .ci/ensure-postgres) or set \
         KIT_OAUTH_TEST_POSTGRES_URL"
    )
}

/// A sandbox plus a manual clock kept in step with the sandbox's.
pub struct World {
    pub sandbox: SandboxHandle,
    pub clock: ManualClock,
}

impl World {
    pub async fn new(customize: impl FnOnce(SandboxBuilder) -> SandboxBuilder) -> Self {
        let builder = kit_sandbox::Sandbox::builder()
            .client_id(CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .redirect_uri(REDIRECT_URI)
            .auto_approve(true)
            .rotation(Rotation::ReuseDetection)
            .revoke_on_reauthorization(true)
            .rate_limit(1_000_000);
        let sandbox = customize(builder).spawn().await.unwrap();
        let clock = ManualClock::new(Timestamp::from_unix_seconds(sandbox.now()));
        Self { sandbox, clock }
    }

    /// Moves both clocks forward.
    pub fn advance(&self, secs: u64) {
        self.sandbox.advance_clock(secs);
        self.clock
            .set(Timestamp::from_unix_seconds(self.sandbox.now()));
    }

    pub fn endpoints(&self) -> KitEndpoints {
        KitEndpoints::builder()
            .base_url(self.sandbox.base_url())
            .client_id(CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .redirect_uri(REDIRECT_URI)
            .request_timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    }

    pub fn manager_config() -> ManagerConfig {
        ManagerConfig {
            lease_ttl: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(60),
            ..ManagerConfig::default()
        }
    }

    /// A `KitOAuth` with its own pool on `db`, deciding expiry by the shared clock.
    pub async fn instance(&self, db: &Db) -> KitOAuth {
        self.instance_with(db, Self::manager_config()).await
    }

    pub async fn instance_with(&self, db: &Db, config: ManagerConfig) -> KitOAuth {
        self.instance_on(db.store().await, config).await
    }

    /// A `KitOAuth` on `store` (a pool the test opened itself, say through a proxy).
    pub async fn instance_on(&self, store: SeaOrmStore, config: ManagerConfig) -> KitOAuth {
        KitOAuth::builder()
            .endpoints(self.endpoints())
            .store(store)
            .clock(Arc::new(self.clock.clone()))
            .manager_config(config)
            .redirect_allow(
                kit_oauth::core::RedirectAllowlist::new([format!(
                    "{}/apps/",
                    self.sandbox.base_url()
                )])
                .unwrap(),
            )
            .build()
            .await
            .unwrap()
    }

    /// Drives a whole install as a browser would with auto-approve: begin, follow the authorize
    /// URL to the callback, complete. Returns the connection id.
    pub async fn install(
        &self,
        kit: &KitOAuth,
        account: &str,
        tenant: Option<&str>,
    ) -> ConnectionId {
        self.try_install(kit, account, tenant).await.unwrap()
    }

    /// As [`World::install`], returning the install's error instead of failing.
    pub async fn try_install(
        &self,
        kit: &KitOAuth,
        account: &str,
        tenant: Option<&str>,
    ) -> Result<ConnectionId, kit_oauth::InstallError> {
        let redirect = format!("{}/apps/1?success=true", self.sandbox.base_url());
        let started = kit.install().begin(&redirect, tenant, None).await.unwrap();
        let query = self.consent(&started.authorize_url, account).await;
        let binding = started.browser_binding.expose_secret().to_owned();
        kit.install()
            .complete(&query, Some(&binding))
            .await
            .map(|installed| installed.connection_id)
    }

    /// Follows an authorize URL (auto-approve) and returns the callback's query string.
    pub async fn consent(&self, authorize_url: &url::Url, account: &str) -> String {
        let mut url = authorize_url.clone();
        url.query_pairs_mut()
            .append_pair("sandbox_account", account);
        let response = http_client().get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 302, "authorize should redirect");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let callback = url::Url::parse(&location).unwrap();
        assert!(location.starts_with(REDIRECT_URI), "{location}");
        callback.query().unwrap_or_default().to_owned()
    }

    pub fn stats(&self) -> Stats {
        self.sandbox.stats()
    }

    /// Requests the sandbox's token endpoint has received, of every grant type.
    pub fn token_requests(&self) -> u64 {
        self.stats().requests.get("token").copied().unwrap_or(0)
    }

    /// Waits until Kit has a token request (one manager's refresh, its answer held by a
    /// latency fault): that manager now holds the lease with its refresh token in flight.
    pub async fn until_kit_has_the_refresh(&self) {
        for _ in 0..400 {
            if self.token_requests() >= 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no manager called Kit");
    }

    /// The access-token fingerprint of the sandbox's only grant, which must be alive.
    pub fn current_access(&self) -> String {
        let grants = self.sandbox.grants();
        assert_eq!(grants.len(), 1);
        assert!(grants[0].alive, "the grant is alive at Kit");
        grants[0].access_token_sha256.clone()
    }

    /// The sandbox's ids of `account`'s grants that still work (any pair's refresh token would
    /// still refresh, whatever its access token's age).
    pub fn alive_grants(&self, account: &str) -> Vec<u64> {
        self.sandbox
            .grants()
            .iter()
            .filter(|g| g.account_name == account && g.alive)
            .map(|g| g.id)
            .collect()
    }
}

/// The tokens `kit`'s store holds for `id`, opened; an ended grant fails the test.
pub async fn stored_tokens(kit: &KitOAuth, id: &ConnectionId) -> kit_oauth::core::TokenSet {
    use kit_oauth::core::ConnectionStore as _;
    match kit.manager().store().get(id).await.unwrap().unwrap().grant {
        kit_oauth::core::Grant::Active(tokens) => tokens,
        kit_oauth::core::Grant::Ended(reason) => panic!("grant ended: {reason:?}"),
    }
}

/// The access-token fingerprint `kit`'s store holds for `id`; an ended grant fails the test.
pub async fn stored_access(kit: &KitOAuth, id: &ConnectionId) -> String {
    stored_tokens(kit, id)
        .await
        .access()
        .fingerprint()
        .to_string()
}

/// One instance on its own SQLite file, some accounts installed, every token expired (past the
/// code exchange's 48 h), the sandbox's stats reset: where the fault and outage suites start.
pub struct Expired {
    pub world: World,
    pub db: Db,
    pub kit: KitOAuth,
    pub ids: Vec<ConnectionId>,
}

impl Expired {
    pub async fn new(
        customize: impl FnOnce(SandboxBuilder) -> SandboxBuilder,
        accounts: &[&str],
    ) -> Self {
        let world = World::new(customize).await;
        let db = Db::sqlite();
        let kit = world.instance(&db).await;
        let mut ids = Vec::new();
        for account in accounts {
            ids.push(world.install(&kit, account, None).await);
        }
        world.advance(172_800 + 60);
        world.sandbox.reset_stats();
        Self {
            world,
            db,
            kit,
            ids,
        }
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Total `invalid_grant` answers of the sandbox.
pub fn invalid_grants(stats: &Stats) -> u64 {
    stats.invalid_grant_total
}
