//! What makes a configuration unusable.

use kit_oauth_core::IdError;
use thiserror::Error;

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
