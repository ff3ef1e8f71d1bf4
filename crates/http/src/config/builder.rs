//! [`KitEndpointsBuilder`]: collects the settings, then validates them all at once.

use std::fmt;
use std::time::Duration;

use kit_oauth_core::{ClientId, ClientSecret};

use super::urls::{join_path, parse_url};
use super::{
    ConfigError, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_OAUTH_RESPONSE_BYTES,
    DEFAULT_REQUEST_TIMEOUT, KitEndpoints, PathFamily, TokenBody,
};

/// Builds a [`KitEndpoints`]; nothing is checked until [`KitEndpointsBuilder::build`].
#[derive(Clone, Default)]
#[must_use]
pub struct KitEndpointsBuilder {
    base_url: Option<String>,
    authorize_url: Option<String>,
    token_url: Option<String>,
    revoke_url: Option<String>,
    path_family: PathFamily,
    token_body: TokenBody,
    client_id: Option<String>,
    client_secret: Option<ClientSecret>,
    redirect_uri: Option<String>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    max_response_bytes: Option<usize>,
}

impl fmt::Debug for KitEndpointsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KitEndpointsBuilder")
            .field("base_url", &self.base_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish_non_exhaustive()
    }
}

impl KitEndpointsBuilder {
    /// The base of the default endpoints and of API calls (`KIT_OAUTH_BASE`).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }
    /// Overrides the authorize URL (`KIT_AUTHORIZE_URL`).
    pub fn authorize_url(mut self, url: impl Into<String>) -> Self {
        self.authorize_url = Some(url.into());
        self
    }
    /// Overrides the token URL (`KIT_TOKEN_URL`).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }
    /// Overrides the revoke URL (`KIT_REVOKE_URL`).
    pub fn revoke_url(mut self, url: impl Into<String>) -> Self {
        self.revoke_url = Some(url.into());
        self
    }
    /// Which path family the endpoints not overridden use (default `/v4/oauth/*`).
    pub fn path_family(mut self, family: PathFamily) -> Self {
        self.path_family = family;
        self
    }
    /// JSON (default) or form-encoded token requests (`KIT_TOKEN_BODY`).
    pub fn token_body(mut self, body: TokenBody) -> Self {
        self.token_body = body;
        self
    }
    /// The app's client id (`KIT_CLIENT_ID`), required.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }
    /// The client secret (`KIT_CLIENT_SECRET`); leave out for a public client.
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(ClientSecret::new(secret));
        self
    }
    /// The registered redirect URI (`KIT_REDIRECT_URI`), required.
    pub fn redirect_uri(mut self, url: impl Into<String>) -> Self {
        self.redirect_uri = Some(url.into());
        self
    }
    /// Time allowed to connect (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }
    /// Time allowed for a whole request (default 20 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }
    /// Cap on OAuth response bodies (default 64 KiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// Validates everything.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first setting that is missing or unusable.
    pub fn build(self) -> Result<KitEndpoints, ConfigError> {
        let client_id = match self.client_id.as_deref().map(str::trim) {
            None | Some("") => return Err(ConfigError::MissingClientId),
            Some(id) => ClientId::parse(id)?,
        };
        if let Some(secret) = &self.client_secret
            && secret.expose_secret().is_empty()
        {
            return Err(ConfigError::EmptyClientSecret);
        }
        let base_url = parse_url(
            "base URL",
            self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        if base_url.query().is_some() {
            return Err(ConfigError::InvalidUrl {
                setting: "base URL",
                reason: "must not have a query".into(),
            });
        }
        let prefix = self.path_family.prefix();
        let endpoint = |setting: &'static str, given: Option<&str>, suffix: &str| match given {
            Some(raw) => parse_url(setting, raw),
            None => Ok(join_path(&base_url, &format!("{prefix}{suffix}"))),
        };
        let authorize_url = endpoint("authorize URL", self.authorize_url.as_deref(), "/authorize")?;
        let token_url = endpoint("token URL", self.token_url.as_deref(), "/token")?;
        let revoke_url = endpoint("revoke URL", self.revoke_url.as_deref(), "/revoke")?;
        let redirect_uri = match self.redirect_uri.as_deref() {
            None | Some("") => return Err(ConfigError::MissingRedirectUri),
            Some(raw) => parse_url("redirect URI", raw)?,
        };
        let connect_timeout = positive(
            "connect timeout",
            self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        )?;
        let request_timeout = positive(
            "request timeout",
            self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
        )?;
        let max_response_bytes = self
            .max_response_bytes
            .unwrap_or(DEFAULT_MAX_OAUTH_RESPONSE_BYTES);
        if max_response_bytes < 1024 {
            return Err(ConfigError::TinyBodyCap);
        }
        Ok(KitEndpoints {
            base_url,
            authorize_url,
            token_url,
            revoke_url,
            token_body: self.token_body,
            client_id,
            client_secret: self.client_secret,
            redirect_uri,
            connect_timeout,
            request_timeout,
            max_response_bytes,
        })
    }
}

fn positive(setting: &'static str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(ConfigError::ZeroTimeout { setting })
    } else {
        Ok(d)
    }
}
