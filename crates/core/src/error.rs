//! Errors, one enum per concern. None of them carries a secret: messages are safe to log.

use std::time::Duration;

use thiserror::Error;

use crate::ids::ConnectionId;

/// A malformed identifier.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    /// The value was empty.
    #[error("{what} must not be empty")]
    Empty {
        /// Which identifier.
        what: &'static str,
    },
    /// The value was longer than allowed.
    #[error("{what} must be at most {max} bytes")]
    TooLong {
        /// Which identifier.
        what: &'static str,
        /// The limit in bytes.
        max: usize,
    },
    /// The value contained a character that is not allowed.
    #[error("{what} contains a character that is not allowed")]
    InvalidCharacter {
        /// Which identifier.
        what: &'static str,
    },
}

/// A malformed secret-derived value.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SecretError {
    /// A PKCE verifier outside RFC 7636's length or alphabet.
    #[error("PKCE verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~")]
    InvalidVerifier,
    /// A hash that is not 64 hex digits.
    #[error("hash must be 64 hexadecimal digits")]
    InvalidHash,
}

/// Why a Kit `redirect` (or an allowlist entry) was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RedirectError {
    /// No `redirect` was given.
    #[error("the redirect back to Kit is missing")]
    Missing,
    /// Longer than any real Kit URL.
    #[error("the redirect back to Kit is longer than {max} bytes")]
    TooLong {
        /// The limit in bytes.
        max: usize,
    },
    /// Not an absolute URL, or one with characters browsers reinterpret.
    #[error("the redirect back to Kit is not a well-formed absolute URL")]
    Malformed,
    /// Carries `user:password@`, the classic host-confusion trick.
    #[error("the redirect back to Kit must not contain user information")]
    UserInfo,
    /// Does not start with any allowed prefix: an open redirect.
    #[error("the redirect back to Kit must start with one of the allowed prefixes ({allowed})")]
    NotAllowed {
        /// The allowed prefixes, comma-separated.
        allowed: String,
    },
    /// An allowlist entry itself is unusable.
    #[error("allowed redirect prefix {prefix:?} is invalid: {reason}")]
    InvalidPrefix {
        /// The offending entry.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why an OAuth callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CallbackError {
    /// The query string could not be parsed, or had duplicated or missing parameters.
    #[error("malformed callback: {0}")]
    Malformed(&'static str),
    /// The `state` did not match the pending authorization (forged, or from another install).
    #[error("the install state does not match")]
    StateMismatch,
    /// No pending authorization exists for this `state` (forged, replayed, or already used).
    #[error("the install state is unknown or was already used")]
    UnknownState,
    /// The pending authorization is older than its deadline.
    #[error("the install took too long; start again")]
    Expired,
    /// The browser completing the install is not the one that started it.
    #[error("this install was started in another browser")]
    ForeignBrowser,
    /// The person refused consent at Kit.
    #[error("access was denied at Kit{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    AccessDenied {
        /// Kit's `error_description`, if any.
        description: Option<String>,
    },
    /// Kit redirected with another OAuth error.
    #[error("Kit returned the error {error:?}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Provider {
        /// The OAuth `error` code.
        error: String,
        /// Kit's `error_description`, if any.
        description: Option<String>,
    },
}

/// The classification every adapter maps a token-endpoint failure into.
///
/// This is the distinction docs/design.md's failure modes turn on: only [`EndpointError::InvalidGrant`]
/// and [`EndpointError::InvalidClient`] say anything about the credentials; everything else is
/// the network or the server having a bad moment and must never cost a connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    /// Timeouts, connect errors, 5xx, 429, dropped connections: keep the old tokens and retry
    /// with backoff (honouring `retry_after` when the server gave one).
    #[error("temporary failure at the token endpoint: {reason}")]
    Transient {
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// What happened, without secrets.
        reason: String,
    },
    /// The grant or refresh token is spent, revoked or unknown (RFC 6749 `invalid_grant`).
    #[error("the grant is invalid: {description}")]
    InvalidGrant {
        /// The server's `error_description` (or a summary).
        description: String,
    },
    /// The client credentials were refused (RFC 6749 `invalid_client`): a configuration error.
    #[error("the client credentials were refused: {description}")]
    InvalidClient {
        /// The server's `error_description` (or a summary).
        description: String,
    },
    /// The server answered something that is not OAuth 2.0.
    #[error("unexpected answer from the token endpoint (status {status:?}): {excerpt}")]
    Protocol {
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// A truncated, secret-free excerpt of the body or the parse error.
        excerpt: String,
    },
}

/// The issue tracker's name for the classification: refresh failures are endpoint failures.
pub type RefreshError = EndpointError;

impl EndpointError {
    /// Whether retrying later may succeed with the same credentials.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// Why the account behind an access token could not be read (`GET /v4/account`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LookupError {
    /// Kit said the token expired: refresh and try again.
    #[error("the access token expired")]
    TokenExpired,
    /// Kit said the token is invalid or revoked, or the account lost access: reinstall needed.
    #[error("Kit refused the access token: {message}")]
    Unauthorized {
        /// Kit's message.
        message: String,
    },
    /// A temporary failure (network, 5xx, 429).
    #[error("temporary failure reading the account: {reason}")]
    Transient {
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// What happened.
        reason: String,
    },
    /// An answer that does not have the documented shape.
    #[error("unexpected answer reading the account (status {status:?}): {excerpt}")]
    Protocol {
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// A truncated, secret-free excerpt.
        excerpt: String,
    },
}

/// A token response that cannot become a [`crate::TokenSet`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// The response had no refresh token and there was no previous one to keep.
    #[error("the token response has no refresh token")]
    MissingRefreshToken,
    /// The response had no `expires_in`; a lifetime is never guessed.
    #[error("the token response has no expires_in")]
    MissingExpiry,
    /// `expires_in` of zero, or an expiry already in the past.
    #[error("the token response has a lifetime of {expires_in} s, which is unusable")]
    UnusableLifetime {
        /// The lifetime the server sent.
        expires_in: u64,
    },
    /// An empty access or refresh token.
    #[error("the token response has an empty token")]
    EmptyToken,
}

/// A storage failure, as every `ConnectionStore` adapter reports it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// Compare-and-swap lost: someone wrote a newer version first. Re-read, never overwrite.
    #[error("connection {id} changed concurrently (expected version {expected})")]
    Conflict {
        /// The connection.
        id: ConnectionId,
        /// The version the writer expected.
        expected: u64,
    },
    /// Another connection already exists for this (tenant, account).
    #[error("a connection for this tenant and Kit account already exists")]
    Duplicate,
    /// The connection does not exist.
    #[error("connection {0} not found")]
    NotFound(ConnectionId),
    /// The refresh lease is no longer ours (it expired and another owner took it, or its
    /// fencing counter moved on): the write was refused.
    #[error("the refresh lease on connection {0} was lost")]
    LeaseLost(ConnectionId),
    /// A row is encrypted with a key that is not in the key ring.
    #[error("no encryption key with id {key_id:?} is configured")]
    UnknownKey {
        /// The key id recorded on the row.
        key_id: String,
    },
    /// A ciphertext failed authentication: tampered, moved between rows, or the wrong key.
    #[error("stored secret failed its integrity check (key id {key_id:?})")]
    Integrity {
        /// The key id recorded on the row.
        key_id: String,
    },
    /// A row that cannot be decoded into a connection.
    #[error("corrupt stored row: {0}")]
    Corrupt(String),
    /// The database is unreachable or failed; retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Any other backend failure.
    #[error("database error: {0}")]
    Backend(String),
}
