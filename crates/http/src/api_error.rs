//! Why an API call failed.

use std::time::Duration;

use thiserror::Error;

use crate::token_source::{ReauthReason, TokenSourceError};
use crate::transport::TransportError;

/// Why an API call failed. Secret-free: safe to log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// Kit refused the access token, and the token source confirmed it: the stored token is
    /// refused too (`GET /v4/account`), so the grant is dead.
    #[error("the connection needs to be re-authorized: {}", reason.message)]
    ReauthRequired {
        /// What Kit said.
        reason: ReauthReason,
    },
    /// Kit still said "expired" after one forced refresh and one retry.
    #[error("the access token was still expired after a forced refresh")]
    TokenExpired,
    /// 429 after the retry budget was spent.
    #[error("rate limited by Kit{}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// The last `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Any other non-success answer, with Kit's `errors` messages.
    #[error("Kit answered HTTP {status}: {}", messages.join("; "))]
    Status {
        /// The HTTP status.
        status: u16,
        /// Kit's error messages (excerpted).
        messages: Vec<String>,
    },
    /// No complete response (after retries, when the request allowed them).
    #[error("request to Kit failed: {0}")]
    Transport(#[from] TransportError),
    /// The token source failed.
    #[error(transparent)]
    TokenSource(#[from] TokenSourceError),
    /// A success answer without the expected shape.
    #[error("unexpected answer from Kit (status {status}): {excerpt}")]
    Protocol {
        /// The HTTP status.
        status: u16,
        /// A secret-free excerpt.
        excerpt: String,
    },
    /// The request itself is unusable (absolute URL, query in the path, unserializable body).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ApiError {
    /// Whether trying again later may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::Transport(_)
            | Self::TokenSource(TokenSourceError::Unavailable { .. }) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classification() {
        assert!(ApiError::RateLimited { retry_after: None }.is_transient());
        assert!(
            ApiError::Status {
                status: 503,
                messages: vec![]
            }
            .is_transient()
        );
        assert!(
            !ApiError::Status {
                status: 404,
                messages: vec![]
            }
            .is_transient()
        );
        assert!(!ApiError::TokenExpired.is_transient());
    }
}
