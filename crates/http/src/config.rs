//! [`KitEndpoints`]: where Kit (or another RFC 6749 server) lives and how to talk to it,
//! validated once at construction.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use kit_oauth_core::{ClientId, ClientSecret, IdError};
use thiserror::Error;
use url::Url;

/// Kit's API host, the default base of every endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.kit.com";
/// Default time allowed to open a TCP (and TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed for a whole request, from connecting to the last body byte.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Default cap on an OAuth endpoint's response body. Kit's token responses are under 1 KiB.
pub const DEFAULT_MAX_OAUTH_RESPONSE_BYTES: usize = 64 * 1024;

/// How the token endpoint's request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenBody {
    /// `application/json`, as Kit's documentation and SDKs send it (the default).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, the RFC 6749 standard.
    Form,
}

impl TokenBody {
    /// `json` or `form`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Form => "form",
        }
    }
}

impl fmt::Display for TokenBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenBody {
    type Err = ConfigError;

    /// `json` or `form`, case-insensitive (the `KIT_TOKEN_BODY` variable).
    fn from_str(raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "form" => Ok(Self::Form),
            _ => Err(ConfigError::UnknownTokenBody),
        }
    }
}

/// Which path family the default endpoint URLs use (docs/kit-protocol.md: both are served by Kit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathFamily {
    /// `/v4/oauth/authorize`, `/v4/oauth/token`, `/v4/oauth/revoke` (documented; the default).
    #[default]
    V4,
    /// `/oauth/authorize`, `/oauth/token`, `/oauth/revoke` (used by Kit's own code).
    Legacy,
}

impl PathFamily {
    fn prefix(self) -> &'static str {
        match self {
            Self::V4 => "/v4/oauth",
            Self::Legacy => "/oauth",
        }
    }
}

/// A configuration that cannot work. Messages name the setting and never contain the secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// No client id was given.
    #[error("the client id is required")]
    MissingClientId,
    /// The client id is malformed.
    #[error("the client id is invalid: {0}")]
    InvalidClientId(#[from] IdError),
    /// The client secret was given but empty (leave it out for a public client).
    #[error("the client secret is empty; leave it out for a public (PKCE-only) client")]
    EmptyClientSecret,
    /// No redirect URI was given.
    #[error("the redirect URI is required")]
    MissingRedirectUri,
    /// A URL setting does not parse or is unusable.
    #[error("the {setting} {reason}")]
    InvalidUrl {
        /// Which setting (`base URL`, `token URL`, …).
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Plain `http` for a host other than loopback: tokens would cross the network in clear.
    #[error("the {setting} must use https (plain http is allowed only for loopback hosts)")]
    InsecureUrl {
        /// Which setting.
        setting: &'static str,
    },
    /// A zero timeout.
    #[error("the {setting} must be greater than zero")]
    ZeroTimeout {
        /// Which setting.
        setting: &'static str,
    },
    /// A response-size cap too small for any real answer.
    #[error("the response size cap must be at least 1024 bytes")]
    TinyBodyCap,
    /// `KIT_TOKEN_BODY` is neither `json` nor `form`.
    #[error("the token body must be `json` or `form`")]
    UnknownTokenBody,
    /// The HTTP client could not be built (TLS initialisation).
    #[error("the HTTP client could not be built: {0}")]
    HttpClient(String),
}

/// Validated endpoints and client credentials for Kit's OAuth 2.0 server.
///
/// Build with [`KitEndpoints::builder`]; every URL is checked (absolute, `https` or loopback
/// `http`, no credentials, no fragment) before anything is sent.
///
/// ```
/// use kit_oauth_http::{KitEndpoints, TokenBody};
///
/// let endpoints = KitEndpoints::builder()
///     .client_id("my-app")
///     .client_secret("my-secret")
///     .redirect_uri("https://example.com/kit/oauth/callback")
///     .build()?;
/// assert_eq!(endpoints.token_url().as_str(), "https://api.kit.com/v4/oauth/token");
/// assert_eq!(endpoints.token_body(), TokenBody::Json);
/// assert!(endpoints.is_confidential());
/// # Ok::<(), kit_oauth_http::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct KitEndpoints {
    base_url: Url,
    authorize_url: Url,
    token_url: Url,
    revoke_url: Url,
    token_body: TokenBody,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    redirect_uri: Url,
    connect_timeout: Duration,
    request_timeout: Duration,
    max_response_bytes: usize,
}

impl fmt::Debug for KitEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KitEndpoints")
            .field("base_url", &self.base_url.as_str())
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("revoke_url", &self.revoke_url.as_str())
            .field("token_body", &self.token_body)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

impl KitEndpoints {
    /// A builder with Kit's defaults.
    pub fn builder() -> KitEndpointsBuilder {
        KitEndpointsBuilder::default()
    }

    /// The API base (`https://api.kit.com`), also the base of `GET /v4/account`.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }
    /// The authorize endpoint.
    #[must_use]
    pub fn authorize_url(&self) -> &Url {
        &self.authorize_url
    }
    /// The token endpoint.
    #[must_use]
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }
    /// The revoke endpoint.
    #[must_use]
    pub fn revoke_url(&self) -> &Url {
        &self.revoke_url
    }
    /// `GET {base}/v4/account`.
    #[must_use]
    pub fn account_url(&self) -> Url {
        join_path(&self.base_url, "/v4/account")
    }
    /// How token requests are encoded.
    #[must_use]
    pub fn token_body(&self) -> TokenBody {
        self.token_body
    }
    /// The app's client id.
    #[must_use]
    pub fn client_id(&self) -> &ClientId {
        &self.client_id
    }
    /// The client secret, for confidential clients.
    #[must_use]
    pub fn client_secret(&self) -> Option<&ClientSecret> {
        self.client_secret.as_ref()
    }
    /// Whether a client secret is configured.
    #[must_use]
    pub fn is_confidential(&self) -> bool {
        self.client_secret.is_some()
    }
    /// The registered redirect URI.
    #[must_use]
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }
    /// Time allowed to connect.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
    /// Time allowed for a whole request.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
    /// The cap on an OAuth response body.
    #[must_use]
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }
}

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

/// Parses and vets one URL setting.
pub(crate) fn parse_url(setting: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| ConfigError::InvalidUrl {
        setting,
        reason: format!("is not an absolute URL ({e})"),
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => return Err(ConfigError::InsecureUrl { setting }),
        _ => {
            return Err(ConfigError::InvalidUrl {
                setting,
                reason: "must be an http(s) URL".into(),
            });
        }
    }
    if url.host().is_none() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "has no host".into(),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "must not contain user information".into(),
        });
    }
    if url.fragment().is_some() {
        return Err(ConfigError::InvalidUrl {
            setting,
            reason: "must not contain a fragment".into(),
        });
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `base` with `suffix` appended to its path (a base may carry a path prefix).
pub(crate) fn join_path(base: &Url, suffix: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}{suffix}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_query(None);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> KitEndpointsBuilder {
        KitEndpoints::builder()
            .client_id("app")
            .redirect_uri("https://example.com/cb")
    }

    #[test]
    fn defaults_are_kits_documented_urls() -> Result<(), ConfigError> {
        let e = minimal().build()?;
        assert_eq!(
            e.authorize_url().as_str(),
            "https://api.kit.com/v4/oauth/authorize"
        );
        assert_eq!(e.token_url().as_str(), "https://api.kit.com/v4/oauth/token");
        assert_eq!(
            e.revoke_url().as_str(),
            "https://api.kit.com/v4/oauth/revoke"
        );
        assert_eq!(e.account_url().as_str(), "https://api.kit.com/v4/account");
        assert_eq!(e.token_body(), TokenBody::Json);
        assert!(!e.is_confidential());
        assert_eq!(e.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
        Ok(())
    }

    #[test]
    fn base_with_a_path_prefix_and_legacy_family() -> Result<(), ConfigError> {
        let e = minimal()
            .base_url("http://127.0.0.1:9000/kit/")
            .path_family(PathFamily::Legacy)
            .token_url("http://localhost:1/custom/token")
            .build()?;
        assert_eq!(
            e.authorize_url().as_str(),
            "http://127.0.0.1:9000/kit/oauth/authorize"
        );
        assert_eq!(e.token_url().as_str(), "http://localhost:1/custom/token");
        assert_eq!(
            e.account_url().as_str(),
            "http://127.0.0.1:9000/kit/v4/account"
        );
        Ok(())
    }

    #[test]
    fn each_bad_setting_is_named() {
        assert_eq!(
            KitEndpoints::builder()
                .redirect_uri("https://x/cb")
                .build()
                .err(),
            Some(ConfigError::MissingClientId)
        );
        assert_eq!(
            KitEndpoints::builder().client_id("a").build().err(),
            Some(ConfigError::MissingRedirectUri)
        );
        assert!(matches!(
            minimal().client_id("bad id").build(),
            Err(ConfigError::InvalidClientId(_))
        ));
        assert_eq!(
            minimal().client_secret("").build().err(),
            Some(ConfigError::EmptyClientSecret)
        );
        assert_eq!(
            minimal().base_url("http://api.kit.com").build().err(),
            Some(ConfigError::InsecureUrl {
                setting: "base URL"
            })
        );
        assert!(matches!(
            minimal().token_url("not a url").build(),
            Err(ConfigError::InvalidUrl {
                setting: "token URL",
                ..
            })
        ));
        assert!(matches!(
            minimal().revoke_url("ftp://x/revoke").build(),
            Err(ConfigError::InvalidUrl {
                setting: "revoke URL",
                ..
            })
        ));
        assert!(matches!(
            minimal().authorize_url("https://u:p@x/authorize").build(),
            Err(ConfigError::InvalidUrl {
                setting: "authorize URL",
                ..
            })
        ));
        assert!(matches!(
            minimal().redirect_uri("https://x/cb#frag").build(),
            Err(ConfigError::InvalidUrl {
                setting: "redirect URI",
                ..
            })
        ));
        assert_eq!(
            minimal().request_timeout(Duration::ZERO).build().err(),
            Some(ConfigError::ZeroTimeout {
                setting: "request timeout"
            })
        );
        assert_eq!(
            minimal().max_response_bytes(10).build().err(),
            Some(ConfigError::TinyBodyCap)
        );
    }

    #[test]
    fn token_body_parses_and_secret_never_prints() -> Result<(), ConfigError> {
        assert_eq!("JSON".parse::<TokenBody>()?, TokenBody::Json);
        assert_eq!(" form ".parse::<TokenBody>()?, TokenBody::Form);
        assert!("xml".parse::<TokenBody>().is_err());
        let e = minimal().client_secret("sup3r-s3cret-value").build()?;
        assert!(!format!("{e:?}").contains("sup3r-s3cret-value"));
        let b = minimal().client_secret("sup3r-s3cret-value");
        assert!(!format!("{b:?}").contains("sup3r-s3cret-value"));
        Ok(())
    }
}
