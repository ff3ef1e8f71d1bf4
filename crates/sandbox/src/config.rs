//! The sandbox's configuration: one registered client and the server's knobs.

use std::net::SocketAddr;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::SandboxError;

/// Everything a sandbox is started with. Built by [`crate::SandboxBuilder`] or the binary's flags.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The registered app's `client_id`.
    pub client_id: String,
    /// The app's secret; `None` makes it a public client that must use PKCE (S256).
    pub client_secret: Option<String>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// `expires_in` of access tokens from the code exchange, in seconds.
    pub access_ttl: u64,
    /// `expires_in` of access tokens from a refresh, in seconds.
    pub refresh_access_ttl: u64,
    /// Lifetime of an authorization code, in seconds.
    pub code_ttl: u64,
    /// Skip the consent page: authorize redirects straight back with a code.
    pub auto_approve: bool,
    /// What a refresh does to the refresh token it spends, and what a reuse of it does.
    pub rotation: Rotation,
    /// A replayed authorization code also revokes the tokens issued from it (RFC 6749 §4.1.2
    /// "SHOULD"). Off by default: Doorkeeper, and so Kit, keeps them.
    pub revoke_on_code_replay: bool,
    /// A new code exchange for an (account, client, tenant_name) that already has a grant
    /// revokes the grant's earlier pairs, so one install holds one pair. Off by default:
    /// Doorkeeper keeps them.
    pub revoke_on_reauthorization: bool,
    /// The revoke endpoint also revokes a pair whose access token has expired (RFC 7009).
    /// Off by default: Doorkeeper ignores such a revoke, and the refresh token goes on working.
    pub revoke_expired: bool,
    /// The just-spent refresh token is accepted once more within this many seconds and returns
    /// the same new pair, in every rotation mode. 0 disables the grace window.
    pub reuse_grace: u64,
    /// API requests allowed per access token per rolling [`SandboxConfig::rate_window`].
    pub rate_limit: u32,
    /// The rolling window of `rate_limit`, in seconds: Kit's is 60. A smaller one lets a test
    /// count a budget's behaviour over many windows without waiting minutes.
    pub rate_window: u64,
    /// Records (subscribers, tags, fields, broadcasts, webhooks, purchases and the links
    /// between them) one Kit account may hold; creating one more answers 422 and logs it, so
    /// a runaway client cannot grow the sandbox's memory without bound.
    pub max_records_per_account: usize,
    /// Answer `"token_type":"bearer"` instead of `"Bearer"`.
    pub lowercase_token_type: bool,
    /// Leave `scope` out of token responses.
    pub omit_scope: bool,
    /// The app's Authorization URL, for the App Store simulation (`/apps/{id}/install`).
    pub app_authorization_url: Option<String>,
    /// The app's name, shown on the consent page.
    pub app_name: String,
    /// Account used when the consent is auto-approved or no account name is typed.
    pub default_account: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

/// How refresh tokens rotate. Kit's OAuth server is Doorkeeper; its two behaviours are the first
/// two modes, and the third is a harsher model no Doorkeeper implements, kept because it is the
/// one that proves a client never presents a spent token (`docs/kit-protocol.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rotation {
    /// Doorkeeper's default (its tokens table has `previous_refresh_token`): after a refresh the
    /// previous refresh token and access token keep working until the new access token is
    /// first presented to the API; a refresh with the previous token before then issues another
    /// pair. A reuse never ends the grant. Realistic; the demo runs in it.
    #[default]
    RevokeOnUse,
    /// Doorkeeper without `previous_refresh_token`: a refresh revokes the previous pair at once,
    /// so the old access token answers 401 "was revoked" and the old refresh token
    /// `invalid_grant`.
    Strict,
    /// `Strict`, and presenting a spent refresh token also revokes the whole grant (every token
    /// of it). The harshest model: test exactly-once refresh guarantees against it.
    ReuseDetection,
}

impl Rotation {
    /// The flag value (`revoke-on-use`, `strict`, `reuse-detection`).
    pub fn as_str(self) -> &'static str {
        match self {
            Rotation::RevokeOnUse => "revoke-on-use",
            Rotation::Strict => "strict",
            Rotation::ReuseDetection => "reuse-detection",
        }
    }

    /// Whether a refresh revokes the pair it replaces at once.
    pub(crate) fn revokes_at_once(self) -> bool {
        !matches!(self, Rotation::RevokeOnUse)
    }
}

impl fmt::Display for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown `--rotation` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rotation mode {0:?}: expected revoke-on-use, strict or reuse-detection")]
pub struct UnknownRotation(String);

impl FromStr for Rotation {
    type Err = UnknownRotation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "revoke-on-use" => Ok(Rotation::RevokeOnUse),
            "strict" => Ok(Rotation::Strict),
            "reuse-detection" => Ok(Rotation::ReuseDetection),
            other => Err(UnknownRotation(other.chars().take(64).collect())),
        }
    }
}

/// Default `client_id`.
pub const DEFAULT_CLIENT_ID: &str = "kit-sandbox-client";
/// Default redirect URI: the kit-oauth server's callback on its default address.
pub const DEFAULT_REDIRECT_URI: &str = "http://127.0.0.1:8080/kit/oauth/callback";
/// Default account name for auto-approval.
pub const DEFAULT_ACCOUNT: &str = "Sandbox Creator";

/// Default of [`SandboxConfig::max_records_per_account`]: far above what a test or demo
/// creates, far below what would exhaust the machine.
pub const DEFAULT_MAX_RECORDS: usize = 250_000;

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: None,
            redirect_uris: vec![DEFAULT_REDIRECT_URI.to_owned()],
            access_ttl: 172_800,
            refresh_access_ttl: 7_200,
            code_ttl: 600,
            auto_approve: false,
            rotation: Rotation::default(),
            revoke_on_code_replay: false,
            revoke_on_reauthorization: false,
            revoke_expired: false,
            reuse_grace: 0,
            rate_limit: 600,
            rate_window: 60,
            max_records_per_account: DEFAULT_MAX_RECORDS,
            lowercase_token_type: false,
            omit_scope: false,
            app_authorization_url: None,
            app_name: "Sandbox App".to_owned(),
            default_account: DEFAULT_ACCOUNT.to_owned(),
            max_body_bytes: 16 * 1024,
        }
    }
}

impl SandboxConfig {
    /// Checks the configuration; every error names the offending setting.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |field: &'static str, reason: String| SandboxError::Config { field, reason };
        if self.client_id.trim().is_empty() {
            return Err(bad("client_id", "must not be empty".into()));
        }
        if self.client_secret.as_deref().is_some_and(str::is_empty) {
            return Err(bad(
                "client_secret",
                "must not be empty (leave it unset for a public client)".into(),
            ));
        }
        if self.redirect_uris.is_empty() {
            return Err(bad("redirect_uri", "at least one is required".into()));
        }
        for uri in &self.redirect_uris {
            check_absolute_url(uri).map_err(|reason| bad("redirect_uri", reason))?;
        }
        if let Some(url) = &self.app_authorization_url {
            check_absolute_url(url).map_err(|reason| bad("app_authorization_url", reason))?;
        }
        if self.access_ttl == 0 {
            return Err(bad("access_ttl", "must be at least 1 second".into()));
        }
        if self.refresh_access_ttl == 0 {
            return Err(bad(
                "refresh_access_ttl",
                "must be at least 1 second".into(),
            ));
        }
        if self.code_ttl == 0 {
            return Err(bad("code_ttl", "must be at least 1 second".into()));
        }
        if self.rate_limit == 0 {
            return Err(bad("rate_limit", "must be at least 1".into()));
        }
        if self.rate_window == 0 {
            return Err(bad("rate_window", "must be at least 1 second".into()));
        }
        if self.max_records_per_account == 0 {
            return Err(bad("max_records_per_account", "must be at least 1".into()));
        }
        if self.default_account.trim().is_empty() {
            return Err(bad("default_account", "must not be empty".into()));
        }
        if self.max_body_bytes < 256 {
            return Err(bad("max_body_bytes", "must be at least 256".into()));
        }
        Ok(())
    }

    /// The configuration without the client secret, as `GET /_sandbox/config` shows it.
    pub fn public_view(&self) -> PublicConfig {
        PublicConfig {
            client_id: self.client_id.clone(),
            confidential: self.client_secret.is_some(),
            redirect_uris: self.redirect_uris.clone(),
            access_ttl: self.access_ttl,
            refresh_access_ttl: self.refresh_access_ttl,
            code_ttl: self.code_ttl,
            auto_approve: self.auto_approve,
            rotation: self.rotation,
            revoke_on_code_replay: self.revoke_on_code_replay,
            revoke_on_reauthorization: self.revoke_on_reauthorization,
            revoke_expired: self.revoke_expired,
            reuse_grace: self.reuse_grace,
            rate_limit: self.rate_limit,
            rate_window: self.rate_window,
            max_records_per_account: self.max_records_per_account,
            lowercase_token_type: self.lowercase_token_type,
            omit_scope: self.omit_scope,
            app_authorization_url: self.app_authorization_url.clone(),
            app_name: self.app_name.clone(),
            default_account: self.default_account.clone(),
        }
    }
}

/// The configuration as the control API shows it (no secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PublicConfig {
    /// The registered `client_id`.
    pub client_id: String,
    /// Whether a client secret is configured.
    pub confidential: bool,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// See [`SandboxConfig::access_ttl`].
    pub access_ttl: u64,
    /// See [`SandboxConfig::refresh_access_ttl`].
    pub refresh_access_ttl: u64,
    /// See [`SandboxConfig::code_ttl`].
    pub code_ttl: u64,
    /// See [`SandboxConfig::auto_approve`].
    pub auto_approve: bool,
    /// See [`SandboxConfig::rotation`].
    pub rotation: Rotation,
    /// See [`SandboxConfig::revoke_on_code_replay`].
    pub revoke_on_code_replay: bool,
    /// See [`SandboxConfig::revoke_on_reauthorization`].
    pub revoke_on_reauthorization: bool,
    /// See [`SandboxConfig::revoke_expired`].
    pub revoke_expired: bool,
    /// See [`SandboxConfig::reuse_grace`].
    pub reuse_grace: u64,
    /// See [`SandboxConfig::rate_limit`].
    pub rate_limit: u32,
    /// See [`SandboxConfig::rate_window`].
    pub rate_window: u64,
    /// See [`SandboxConfig::max_records_per_account`].
    pub max_records_per_account: usize,
    /// See [`SandboxConfig::lowercase_token_type`].
    pub lowercase_token_type: bool,
    /// See [`SandboxConfig::omit_scope`].
    pub omit_scope: bool,
    /// See [`SandboxConfig::app_authorization_url`].
    pub app_authorization_url: Option<String>,
    /// See [`SandboxConfig::app_name`].
    pub app_name: String,
    /// See [`SandboxConfig::default_account`].
    pub default_account: String,
}

fn check_absolute_url(s: &str) -> Result<(), String> {
    match url::Url::parse(s) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {
            if u.fragment().is_some() {
                Err(format!("{s:?} must not contain a fragment"))
            } else {
                Ok(())
            }
        }
        Ok(_) => Err(format!("{s:?} must be an http or https URL")),
        Err(e) => Err(format!("{s:?} is not an absolute URL: {e}")),
    }
}
