//! # kit-sandbox — a faithful local Kit
//!
//! An independent, in-memory implementation of Kit's OAuth 2.0 server and the part of API v4 an
//! app touches first (`GET /v4/account`), with fault injection, a sandbox clock, counters, and an
//! App Store simulation. It depends on no other crate of this workspace, so a bug shared with the
//! client cannot hide.
//!
//! Refresh tokens rotate in one of three modes ([`Rotation`]): Doorkeeper's two (Kit's server is
//! Doorkeeper; `RevokeOnUse` is the default) and `ReuseDetection`, the harshest, for tests of
//! exactly-once refresh. Errors carry Doorkeeper's own sentences.
//!
//! Serves both path families, `/v4/oauth/{authorize,token,revoke}` and
//! `/oauth/{authorize,token,revoke}`, plus a control API under `/_sandbox/` (see the crate
//! README for every JSON shape).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kit_sandbox::{Fault, FaultEndpoint, FaultKind, Rotation, Sandbox};
//!
//! let sandbox = Sandbox::builder()
//!     .client_id("my-app")
//!     .client_secret("s3cret")
//!     .redirect_uri("http://127.0.0.1:8080/kit/oauth/callback")
//!     .auto_approve(true)
//!     .rotation(Rotation::ReuseDetection)
//!     .spawn()
//!     .await?;
//! // Point the app at these URLs.
//! let authorize = format!("{}/v4/oauth/authorize", sandbox.base_url());
//! let token_url = format!("{}/v4/oauth/token", sandbox.base_url());
//! assert!(authorize.starts_with("http://127.0.0.1:"));
//! assert!(token_url.ends_with("/v4/oauth/token"));
//!
//! // The next token response is lost after the server rotated the tokens.
//! sandbox.add_fault(Fault::new(FaultEndpoint::Token, FaultKind::RotateThenDrop))?;
//! // Expiry without sleeping.
//! sandbox.advance_clock(7_200);
//! assert_eq!(sandbox.stats().refreshes_ok, 0);
//! sandbox.shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod config;
mod error;
mod faults;
mod html;
mod kit_api;
mod model;
mod params;
mod routes;
mod server;
mod stats;

pub use config::{
    DEFAULT_ACCOUNT, DEFAULT_CLIENT_ID, DEFAULT_MAX_RECORDS, DEFAULT_REDIRECT_URI, PublicConfig,
    Rotation, SandboxConfig, UnknownRotation,
};
pub use error::SandboxError;
pub use faults::{ActiveFault, Fault, FaultEndpoint, FaultKind};
pub use model::{GrantInfo, ModelSizes};
pub use stats::Stats;

use server::Shared;

/// Entry point: `Sandbox::builder()...spawn().await`.
#[derive(Debug)]
pub struct Sandbox;

impl Sandbox {
    /// A builder with the defaults of the `kit-sandbox` binary, except that it binds
    /// `127.0.0.1:0` (a free port).
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            config: SandboxConfig::default(),
            redirect_uris_set: false,
        }
    }
}

/// Configures and starts a sandbox. Every setter matches a flag of the `kit-sandbox` binary.
#[derive(Debug, Clone)]
#[must_use]
pub struct SandboxBuilder {
    config: SandboxConfig,
    redirect_uris_set: bool,
}

impl SandboxBuilder {
    /// A builder starting from a complete configuration.
    pub fn from_config(config: SandboxConfig) -> Self {
        Self {
            config,
            redirect_uris_set: true,
        }
    }

    /// Listen address (`--bind`); port 0 picks a free port.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config.bind = addr;
        self
    }
    /// The registered `client_id` (`--client-id`).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.config.client_id = id.into();
        self
    }
    /// The client secret (`--client-secret`): makes the app a confidential client.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.client_secret = Some(secret.into());
        self
    }
    /// No client secret: a public client, PKCE (S256) required. The default.
    pub fn public_client(mut self) -> Self {
        self.config.client_secret = None;
        self
    }
    /// Adds a registered redirect URI (`--redirect-uri`, repeatable). The first call replaces
    /// the default one.
    pub fn redirect_uri(mut self, uri: impl Into<String>) -> Self {
        if !self.redirect_uris_set {
            self.config.redirect_uris.clear();
            self.redirect_uris_set = true;
        }
        self.config.redirect_uris.push(uri.into());
        self
    }
    /// Access-token lifetime of the code exchange in seconds (`--access-ttl`, default 172800).
    pub fn access_ttl(mut self, secs: u64) -> Self {
        self.config.access_ttl = secs;
        self
    }
    /// Access-token lifetime of a refresh in seconds (`--refresh-access-ttl`, default 7200).
    pub fn refresh_access_ttl(mut self, secs: u64) -> Self {
        self.config.refresh_access_ttl = secs;
        self
    }
    /// Authorization-code lifetime in seconds (`--code-ttl`, default 600).
    pub fn code_ttl(mut self, secs: u64) -> Self {
        self.config.code_ttl = secs;
        self
    }
    /// Skip the consent page (`--auto-approve`).
    pub fn auto_approve(mut self, on: bool) -> Self {
        self.config.auto_approve = on;
        self
    }
    /// The refresh-token rotation mode (`--rotation`, default [`Rotation::RevokeOnUse`]).
    /// Exactly-once refresh guarantees are tested against [`Rotation::ReuseDetection`].
    pub fn rotation(mut self, mode: Rotation) -> Self {
        self.config.rotation = mode;
        self
    }
    /// A replayed code also revokes the tokens issued from it (`--revoke-on-code-replay`): the
    /// RFC's "SHOULD", stricter than Doorkeeper and Kit, for tests that need it.
    pub fn revoke_on_code_replay(mut self, on: bool) -> Self {
        self.config.revoke_on_code_replay = on;
        self
    }
    /// A new authorization of the same account and tenant revokes the grant's earlier pairs
    /// (`--revoke-on-reauthorization`): stricter than Doorkeeper, for suites that check the
    /// store against the sandbox's live grants.
    pub fn revoke_on_reauthorization(mut self, on: bool) -> Self {
        self.config.revoke_on_reauthorization = on;
        self
    }
    /// The revoke endpoint also revokes a pair whose access token has expired
    /// (`--revoke-expired`): RFC 7009's reading, stricter than Doorkeeper, for suites that
    /// revoke long-expired connections and check the grant ended.
    pub fn revoke_expired(mut self, on: bool) -> Self {
        self.config.revoke_expired = on;
        self
    }
    /// Grace window in seconds for the just-spent refresh token (`--reuse-grace`); 0 = off.
    pub fn reuse_grace(mut self, secs: u64) -> Self {
        self.config.reuse_grace = secs;
        self
    }
    /// API calls per access token per rolling window (`--rate-limit`, default 600).
    pub fn rate_limit(mut self, n: u32) -> Self {
        self.config.rate_limit = n;
        self
    }
    /// The rate limit's rolling window in seconds (`--rate-window`, default Kit's 60).
    pub fn rate_window(mut self, secs: u64) -> Self {
        self.config.rate_window = secs;
        self
    }
    /// Records one Kit account may hold (`--max-records`, default
    /// [`DEFAULT_MAX_RECORDS`]).
    pub fn max_records_per_account(mut self, n: usize) -> Self {
        self.config.max_records_per_account = n;
        self
    }
    /// Answer `token_type: "bearer"` (`--lowercase-token-type`).
    pub fn lowercase_token_type(mut self, on: bool) -> Self {
        self.config.lowercase_token_type = on;
        self
    }
    /// Leave `scope` out of token responses (`--omit-scope`).
    pub fn omit_scope(mut self, on: bool) -> Self {
        self.config.omit_scope = on;
        self
    }
    /// The app's Authorization URL for the App Store simulation (`--app-authorization-url`).
    pub fn app_authorization_url(mut self, url: impl Into<String>) -> Self {
        self.config.app_authorization_url = Some(url.into());
        self
    }
    /// The app name shown on the consent page (`--app-name`).
    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.config.app_name = name.into();
        self
    }
    /// The account used by auto-approval and prefilled on the consent page (`--default-account`).
    pub fn default_account(mut self, name: impl Into<String>) -> Self {
        self.config.default_account = name.into();
        self
    }
    /// Largest request body accepted (`--max-body-bytes`, default 16384).
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.config.max_body_bytes = n;
        self
    }

    /// The configuration built so far.
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Validates the configuration, binds the listener and starts serving on the current Tokio
    /// runtime.
    pub async fn spawn(self) -> Result<SandboxHandle, SandboxError> {
        let config = self.config;
        config.validate()?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| SandboxError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.bind,
            source,
        })?;
        let base_url = format!("http://{addr}");
        let shared = Arc::new(Shared::new(config, base_url.clone()));
        let router = routes::router(shared.clone());
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(server::serve(listener, router, shutdown_rx));
        Ok(SandboxHandle {
            addr,
            base_url,
            shared,
            shutdown_tx,
            task: Some(task),
        })
    }
}

/// A running sandbox. Dropping it stops the server (in the background); [`shutdown`] stops it
/// and waits for open requests to finish.
///
/// [`shutdown`]: SandboxHandle::shutdown
#[derive(Debug)]
pub struct SandboxHandle {
    addr: SocketAddr,
    base_url: String,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The configuration the sandbox runs with.
    pub fn config(&self) -> &SandboxConfig {
        &self.shared.config
    }
    /// `base_url` + `path`, e.g. `handle.url("/v4/oauth/token")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
    /// The counters (`GET /_sandbox/stats`).
    pub fn stats(&self) -> Stats {
        current_stats(&self.shared)
    }
    /// Zeroes the counters (`POST /_sandbox/stats/reset`).
    pub fn reset_stats(&self) {
        reset_stats(&self.shared);
    }
    /// Installs a fault (`POST /_sandbox/faults`). Invalid faults are refused.
    pub fn add_fault(&self, fault: Fault) -> Result<Vec<ActiveFault>, String> {
        fault.validate()?;
        Ok(add_faults(&self.shared, vec![fault]))
    }
    /// The installed faults (`GET /_sandbox/faults`).
    pub fn faults(&self) -> Vec<ActiveFault> {
        self.shared.faults().list()
    }
    /// Removes every fault (`DELETE /_sandbox/faults`).
    pub fn clear_faults(&self) {
        clear_faults(&self.shared);
    }
    /// Moves the sandbox clock forward (`POST /_sandbox/clock`).
    pub fn advance_clock(&self, secs: u64) {
        self.shared.advance_clock(secs);
    }
    /// The sandbox clock, Unix seconds.
    pub fn now(&self) -> i64 {
        self.shared.now_ms().div_euclid(1000)
    }
    /// Grants alive and recently revoked (`GET /_sandbox/grants`).
    pub fn grants(&self) -> Vec<GrantInfo> {
        self.shared.model().grants_info()
    }
    /// Revokes a grant as if the account lost access (`POST /_sandbox/grants/{id}/revoke`).
    /// Returns whether it was alive.
    pub fn revoke_grant(&self, id: u64) -> bool {
        let now = self.shared.now_ms();
        self.shared.model().revoke_grant(id, now)
    }
    /// Sizes of the internal tables (`GET /_sandbox/sizes`).
    pub fn sizes(&self) -> ModelSizes {
        self.shared.model().sizes()
    }
    /// The stable Kit account id of an account name.
    pub fn account_id(name: &str) -> u64 {
        model::Account::named(name).id
    }

    /// Stops accepting connections, lets open requests finish (at most 5 s) and returns.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
    }
}

pub(crate) fn current_stats(s: &Shared) -> Stats {
    let m = s.model();
    let mut st = m.stats.clone();
    st.grants_alive = m.grants_alive();
    st
}

pub(crate) fn reset_stats(s: &Shared) {
    s.model().stats = Stats::default();
}

pub(crate) fn add_faults(s: &Shared, faults: Vec<Fault>) -> Vec<ActiveFault> {
    let mut q = s.faults();
    for f in faults {
        q.push(f);
    }
    s.faults_armed.store(!q.is_empty(), Ordering::Relaxed);
    q.list()
}

pub(crate) fn clear_faults(s: &Shared) {
    let mut q = s.faults();
    q.clear();
    s.faults_armed.store(false, Ordering::Relaxed);
}
