//! The facade's errors. All are `Clone` (one refresh's outcome is shared by every caller that
//! waited on it) and none carries a secret.

use kit_oauth_core::{
    CallbackError, ConnectionId, EndpointError, IdError, LookupError, RedirectError, StoreError,
    Timestamp, TokenError,
};
use thiserror::Error;

/// Why a fresh access token could not be produced.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ManagerError {
    /// No such connection.
    #[error("connection {0} not found")]
    NotFound(ConnectionId),
    /// Kit no longer accepts the grant: the creator must reinstall the app.
    #[error("connection {id} needs to be reinstalled: {reason}")]
    ReauthRequired {
        /// The connection.
        id: ConnectionId,
        /// What Kit said (or why the grant ended), without secrets.
        reason: String,
    },
    /// A temporary failure (Kit or the database unavailable, a refresh cooling down after
    /// failures, another instance's refresh taking too long). The tokens are kept; try again.
    #[error("temporarily unavailable: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
        /// Not before this instant, when known.
        retry_at: Option<Timestamp>,
    },
    /// Kit did not revoke the grant (it refused, e.g. `unauthorized_client` after a client
    /// secret rotation, or could not be reached): the grant still lives at Kit, and the
    /// connection was kept so it can still be revoked. `TokenManager::remove_forced` removes it
    /// anyway.
    #[error(
        "Kit kept the grant of connection {id} (the revocation failed: {reason}); the connection was kept"
    )]
    KitKeptGrant {
        /// The connection.
        id: ConnectionId,
        /// What Kit answered, without secrets.
        reason: String,
        /// Whether Kit was unreachable or failing (trying later may work), rather than refusing.
        transient: bool,
    },
    /// Kit refused the app's client credentials: a configuration error, not the creator's.
    #[error("Kit refused the client credentials: {0}")]
    InvalidClient(String),
    /// Storage failed in a way retrying will not fix (corrupt row, wrong encryption key).
    #[error("storage error: {0}")]
    Store(StoreError),
}

impl ManagerError {
    pub(crate) fn from_store(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => Self::Unavailable {
                reason: format!("database unavailable: {reason}"),
                retry_at: None,
            },
            StoreError::NotFound(id) => Self::NotFound(id),
            other => Self::Store(other),
        }
    }

    /// Whether the same call may succeed later without anyone's intervention.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::KitKeptGrant {
                    transient: true,
                    ..
                }
        )
    }
}

/// Why an install could not start or complete. Each case is distinct so the server can answer
/// with the right status and page.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstallError {
    /// The `redirect` from Kit is missing or not Kit's (an open redirect).
    #[error(transparent)]
    Redirect(#[from] RedirectError),
    /// The tenant name is invalid.
    #[error("invalid tenant name: {0}")]
    Tenant(#[from] IdError),
    /// The callback was malformed, forged, replayed, expired, from another browser, or denied.
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The code exchange failed at Kit.
    #[error("the code exchange failed: {0}")]
    Exchange(EndpointError),
    /// The account lookup after the exchange failed.
    #[error("reading the Kit account failed: {0}")]
    Account(#[from] LookupError),
    /// Kit's token response was unusable.
    #[error("Kit's token response was unusable: {0}")]
    Token(#[from] TokenError),
    /// Storage failed.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}
