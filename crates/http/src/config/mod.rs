//! [`KitEndpoints`]: where Kit (or another RFC 6749 server) lives and how to talk to it,
//! validated once at construction.
//!
//! One purpose per file: the validated value and its defaults here, the builder that checks
//! every setting in `builder.rs`, the URL rules in `urls.rs`, the request-shape choices in
//! `wire.rs`, and the error naming a bad setting in `error.rs`.

use std::fmt;
use std::time::Duration;

use kit_oauth_core::{ClientId, ClientSecret};
use url::Url;

mod builder;
mod error;
mod urls;
mod wire;

pub use builder::KitEndpointsBuilder;
pub use error::ConfigError;
pub(crate) use urls::join_path;
pub use wire::{PathFamily, TokenBody};

/// Kit's API host, the default base of every endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.kit.com";
/// Default time allowed to open a TCP (and TLS) connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time allowed for a whole request, from connecting to the last body byte.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Default cap on an OAuth endpoint's response body. Kit's token responses are under 1 KiB.
pub const DEFAULT_MAX_OAUTH_RESPONSE_BYTES: usize = 64 * 1024;

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

#[cfg(test)]
mod tests;
