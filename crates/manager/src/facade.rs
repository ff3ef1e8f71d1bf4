//! `KitOAuth`: the concrete facade over the HTTP and storage adapters, built from code or from
//! the environment.

use std::sync::Arc;

use kit_oauth_core::{Clock, EventSink, RedirectAllowlist, SystemClock};
use kit_oauth_http::kit_api::RateBudget;
use kit_oauth_http::{KitClient, KitEndpoints, KitOAuthClient};
use kit_oauth_store::{KeyRing, SeaOrmStore, StoreOptions};
use secrecy::ExposeSecret as _;
use thiserror::Error;

use crate::config::ManagerConfig;
use crate::events::{BroadcastEvents, FanOut, TracingEvents};
use crate::install::InstallFlow;
use crate::manager::TokenManager;
use crate::refresher::{Refresher, RefresherConfig};
use crate::settings::{ConfigError, KitOAuthConfig, vars};

/// The token endpoint adapter the facade uses.
pub type Endpoint = KitOAuthClient;
/// The storage adapter the facade uses.
pub type Store = SeaOrmStore;
/// The facade's token manager.
pub type Manager = TokenManager<Endpoint, Store>;
/// The facade's install flow.
pub type Install = InstallFlow<Endpoint, Store>;
/// The facade's Kit API client, taking its tokens from the manager.
pub type Client = KitClient<Manager>;

/// Why the facade could not be built. `Display` is one line for an operator.
#[derive(Debug, Error)]
pub enum BuildError {
    /// Missing or malformed configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] kit_oauth_core::StoreError),
}

/// Everything an app needs, sharing one cache, one pool and one HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct KitOAuth {
    manager: Manager,
    install: Install,
    client: Client,
    events: BroadcastEvents,
    endpoints: KitEndpoints,
}

impl std::fmt::Debug for KitOAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KitOAuth")
            .field("manager", &self.manager)
            .finish_non_exhaustive()
    }
}

impl KitOAuth {
    /// Starts building: from a [`KitOAuthConfig`], the environment, or explicit parts.
    #[must_use]
    pub fn builder() -> KitOAuthBuilder {
        KitOAuthBuilder::default()
    }

    /// Always-fresh access tokens.
    #[must_use]
    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// The install flow (`begin` / `complete`).
    #[must_use]
    pub fn install(&self) -> &Install {
        &self.install
    }

    /// A client for Kit's API v4 that refreshes through the manager.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Connection events (authorized, refreshed, failures, revocations).
    #[must_use]
    pub fn events(&self) -> &BroadcastEvents {
        &self.events
    }

    /// The validated endpoints.
    #[must_use]
    pub fn endpoints(&self) -> &KitEndpoints {
        &self.endpoints
    }

    /// The background refresher for this instance (call `spawn()` on it).
    #[must_use]
    pub fn refresher(&self, config: RefresherConfig) -> Refresher<Endpoint, Store> {
        Refresher::new(self.manager.clone(), config)
    }
}

/// Builds a [`KitOAuth`].
#[derive(Default)]
pub struct KitOAuthBuilder {
    config: Option<KitOAuthConfig>,
    endpoints: Option<KitEndpoints>,
    store: Option<SeaOrmStore>,
    keys: Option<KeyRing>,
    store_options: StoreOptions,
    clock: Option<Arc<dyn Clock>>,
    manager_config: ManagerConfig,
    sinks: FanOut,
    redirect_allow: Option<RedirectAllowlist>,
    scope: Option<String>,
    rate_budget: Option<RateBudget>,
}

impl KitOAuthBuilder {
    /// Takes every setting from a parsed configuration.
    #[must_use]
    pub fn config(mut self, config: KitOAuthConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Reads the configuration from the process environment.
    ///
    /// # Errors
    /// The first missing or malformed variable.
    pub fn from_env(self) -> Result<Self, ConfigError> {
        Ok(self.config(KitOAuthConfig::from_env()?))
    }

    /// Uses these endpoints instead of the configuration's.
    #[must_use]
    pub fn endpoints(mut self, endpoints: KitEndpoints) -> Self {
        self.endpoints = Some(endpoints);
        self
    }

    /// Uses this store instead of opening the configuration's database.
    #[must_use]
    pub fn store(mut self, store: SeaOrmStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses this key ring instead of the configuration's `KIT_OAUTH_ENCRYPTION_KEY`.
    #[must_use]
    pub fn key_ring(mut self, keys: KeyRing) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Pool and migration options for the database the builder opens.
    #[must_use]
    pub fn store_options(mut self, options: StoreOptions) -> Self {
        self.store_options = options;
        self
    }

    /// The clock expiry is decided by (tests keep it in step with the sandbox's).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Timings of the refresh protocol.
    #[must_use]
    pub fn manager_config(mut self, config: ManagerConfig) -> Self {
        self.manager_config = config;
        self
    }

    /// Sends events to `sink` too (the broadcast channel and `tracing` always get them).
    #[must_use]
    pub fn event_sink(mut self, sink: impl EventSink + 'static) -> Self {
        self.sinks = self.sinks.with(sink);
        self
    }

    /// Where a `redirect` back to Kit may point (default: the configuration's, or Kit's).
    #[must_use]
    pub fn redirect_allow(mut self, allow: RedirectAllowlist) -> Self {
        self.redirect_allow = Some(allow);
        self
    }

    /// Sends `scope` on the authorize request (Kit's only scope is `public`).
    #[must_use]
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The per-connection Kit API budget of this process (default [`RateBudget::kit`], Kit's
    /// 600 per 60 s): a share of it when several instances call for the same connections, or
    /// a small window in tests.
    #[must_use]
    pub fn rate_budget(mut self, budget: RateBudget) -> Self {
        self.rate_budget = Some(budget);
        self
    }

    /// Opens the database (running migrations) and assembles the facade.
    ///
    /// # Errors
    /// [`BuildError::Config`] naming the missing or malformed setting, or
    /// [`BuildError::Store`] when the database cannot be opened.
    pub async fn build(self) -> Result<KitOAuth, BuildError> {
        let endpoints = match (self.endpoints, &self.config) {
            (Some(endpoints), _) => endpoints,
            (None, Some(config)) => endpoints_from(config)?,
            (None, None) => {
                return Err(ConfigError::new(vars::CLIENT_ID, "no configuration was given").into());
            }
        };
        let store = match self.store {
            Some(store) => store,
            None => {
                let keys = match (self.keys, &self.config) {
                    (Some(keys), _) => keys,
                    (None, Some(config)) => key_ring_from(config)?,
                    (None, None) => {
                        return Err(ConfigError::new(vars::ENCRYPTION_KEY, "is required").into());
                    }
                };
                let url = self
                    .config
                    .as_ref()
                    .map_or(crate::settings::DEFAULT_DATABASE_URL, |c| {
                        c.database_url.as_str()
                    });
                SeaOrmStore::connect_with(url, keys, self.store_options).await?
            }
        };
        let redirect_allow = self
            .redirect_allow
            .or_else(|| self.config.as_ref().map(|c| c.redirect_allow.clone()))
            .unwrap_or_default();
        let endpoint = KitOAuthClient::new(endpoints.clone())
            .map_err(|e| ConfigError::new(vars::OAUTH_BASE, e.to_string()))?;
        let events = BroadcastEvents::default();
        let sink = self.sinks.with(events.clone()).with(TracingEvents);
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let manager =
            TokenManager::new(endpoint, store, clock, Arc::new(sink), self.manager_config);
        let install = InstallFlow::new(manager.clone(), redirect_allow, self.scope);
        // Kit's rate limit as a budget every task of this process shares (the broker's proxy
        // takes the same one: `KitClient::rate_budget`).
        let client = KitClient::with_http_client(
            &endpoints,
            manager.endpoint().http_client().clone(),
            manager.clone(),
        )
        .with_rate_budget(self.rate_budget.unwrap_or_else(RateBudget::kit));
        Ok(KitOAuth {
            manager,
            install,
            client,
            events,
            endpoints,
        })
    }
}

/// The HTTP adapter's endpoints from the configuration.
///
/// # Errors
/// The setting at fault, named by its variable.
pub fn endpoints_from(config: &KitOAuthConfig) -> Result<KitEndpoints, ConfigError> {
    let mut builder = KitEndpoints::builder()
        .base_url(config.base.as_str())
        .authorize_url(config.authorize_url.as_str())
        .token_url(config.token_url.as_str())
        .revoke_url(config.revoke_url.as_str())
        .token_body(config.token_body)
        .client_id(config.client_id.as_str())
        .redirect_uri(config.redirect_uri.as_str());
    if let Some(secret) = &config.client_secret {
        builder = builder.client_secret(secret.expose_secret());
    }
    builder.build().map_err(|e| {
        use kit_oauth_http::ConfigError as E;
        let variable = match &e {
            E::MissingClientId | E::InvalidClientId(_) => vars::CLIENT_ID,
            E::EmptyClientSecret => vars::CLIENT_SECRET,
            E::MissingRedirectUri => vars::REDIRECT_URI,
            E::InvalidUrl { setting, .. } | E::InsecureUrl { setting } => url_variable(setting),
            E::UnknownTokenBody => vars::TOKEN_BODY,
            _ => vars::OAUTH_BASE,
        };
        ConfigError::new(variable, e.to_string())
    })
}

fn url_variable(setting: &str) -> &'static str {
    match setting {
        s if s.contains("authorize") => vars::AUTHORIZE_URL,
        s if s.contains("token") => vars::TOKEN_URL,
        s if s.contains("revoke") => vars::REVOKE_URL,
        s if s.contains("redirect") => vars::REDIRECT_URI,
        _ => vars::OAUTH_BASE,
    }
}

/// The key ring from the configuration.
///
/// # Errors
/// `KIT_OAUTH_ENCRYPTION_KEY` missing or malformed.
pub fn key_ring_from(config: &KitOAuthConfig) -> Result<KeyRing, ConfigError> {
    let setting = config.encryption_key.as_ref().ok_or_else(|| {
        ConfigError::new(
            vars::ENCRYPTION_KEY,
            "is required (a base64 32-byte key, or id:key,id:key for rotation)",
        )
    })?;
    KeyRing::from_env_value(setting.0.expose_secret())
        .map_err(|e| ConfigError::new(vars::ENCRYPTION_KEY, strip_variable(&e.to_string())))
}

/// The store's messages already start with the variable name; ours add it again.
fn strip_variable(message: &str) -> String {
    message
        .strip_prefix(vars::ENCRYPTION_KEY)
        .map_or(message, |rest| rest.trim_start_matches([':', ' ']))
        .to_owned()
}
