//! What the model answers: OAuth errors, token responses and API refusals.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::config::SandboxConfig;

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
    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
        }
    }
    pub(crate) fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: description.into(),
        }
    }
    pub(crate) fn invalid_grant(description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: description.to_owned(),
        }
    }
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
