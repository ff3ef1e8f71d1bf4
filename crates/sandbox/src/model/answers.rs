//! What the model answers: OAuth errors, token responses and API refusals.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::config::SandboxConfig;

/// Doorkeeper's sentences (its `config/locales/en.yml`), which Kit's server answers with. The
/// `invalid_grant` one is the same for every cause; the cause is kept in the stats instead.
pub(crate) mod sentences {
    pub(crate) const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";
    pub(crate) const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.";
    pub(crate) const UNSUPPORTED_GRANT_TYPE: &str =
        "The authorization grant type is not supported by the authorization server.";
    pub(crate) const UNAUTHORIZED_REVOKE: &str = "You are not authorized to revoke this token";
    pub(crate) const INVALID_SCOPE: &str = "The requested scope is invalid, unknown, or malformed.";
    pub(crate) const INVALID_REDIRECT_URI: &str =
        "The requested redirect uri is malformed or doesn't match client redirect URI.";
    pub(crate) const INVALID_CODE_CHALLENGE_METHOD: &str =
        "The code challenge method must be plain or S256.";
    pub(crate) const UNSUPPORTED_RESPONSE_TYPE: &str =
        "The authorization server does not support this response type.";
    pub(crate) const ACCESS_DENIED: &str =
        "The resource owner or authorization server denied the request.";

    /// Doorkeeper's `invalid_request` for an absent parameter.
    pub(crate) fn missing(param: &str) -> String {
        format!("Missing required parameter: {param}.")
    }
}

/// An OAuth error answer of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: String,
}

impl OAuthError {
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }
    /// A parameter the request needs is absent.
    pub(crate) fn missing(param: &str) -> Self {
        Self::invalid_request(sentences::missing(param))
    }
    pub(crate) fn invalid_client() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: sentences::INVALID_CLIENT.to_owned(),
        }
    }
    pub(crate) fn unsupported_grant_type() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: sentences::UNSUPPORTED_GRANT_TYPE.to_owned(),
        }
    }
    pub(crate) fn invalid_grant() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: sentences::INVALID_GRANT.to_owned(),
        }
    }
    pub(crate) fn invalid_scope() -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_scope",
            description: sentences::INVALID_SCOPE.to_owned(),
        }
    }
}

/// Who sent a token or revoke request, as client authentication found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Authenticated as this client.
    Client(String),
    /// No client credentials at all.
    Anonymous,
    /// Credentials that do not authenticate (unknown client, wrong secret, garbled Basic).
    BadCredentials,
}

/// What the revoke endpoint did with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RevokeOutcome {
    /// The token's pair was live and is now revoked.
    Revoked,
    /// Unknown, already dead, or an expired access token's pair: nothing changed (still 200).
    Ignored,
    /// The pair belongs to another client: 403.
    Forbidden,
}

/// The JSON body of a successful token response, fields in Kit's documented order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    pub(crate) refresh_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<&'static str>,
    pub(crate) created_at: i64,
}

/// Why an API call's bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiRefusal {
    Invalid,
    Expired,
    Revoked,
    RateLimited,
}

pub(crate) fn token_response(
    cfg: &SandboxConfig,
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    created_at: i64,
) -> TokenResponse {
    TokenResponse {
        access_token,
        token_type: if cfg.lowercase_token_type {
            "bearer"
        } else {
            "Bearer"
        },
        expires_in,
        refresh_token,
        scope: if cfg.omit_scope { None } else { Some("public") },
        created_at,
    }
}
