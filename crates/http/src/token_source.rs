//! Where [`crate::KitClient`] gets access tokens, and what it tells the source about them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kit_oauth_core::{AccessToken, ConnectionId};
use thiserror::Error;

/// Why a connection needs the creator to install the app again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReauthReason {
    /// What Kit said (`The access token is invalid`, `… was revoked`, or another message).
    pub message: String,
}

/// Where [`crate::KitClient`] gets access tokens. The manager implements it; tests use a simple one.
pub trait TokenSource: Send + Sync {
    /// A currently valid access token for `connection`.
    fn access_token(
        &self,
        connection: &ConnectionId,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send;

    /// Kit said `stale` expired: refresh now (unless someone already replaced `stale`) and
    /// return the new access token.
    fn force_refresh(
        &self,
        connection: &ConnectionId,
        stale: &AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send;

    /// Kit answered 401 for `refused` with something other than "expired" (revoked, invalid,
    /// or a message nobody recognises). That alone is no proof of a dead grant: check the
    /// stored token against Kit (`GET /v4/account`) and return the token to retry with once
    /// when it works or has moved on; [`TokenSourceError::ReauthRequired`] only when Kit
    /// refuses the stored token too (and then record the grant as dead).
    fn token_refused(
        &self,
        connection: &ConnectionId,
        refused: &AccessToken,
        reason: &ReauthReason,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send;
}

impl<T: TokenSource> TokenSource for Arc<T> {
    fn access_token(
        &self,
        connection: &ConnectionId,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send {
        (**self).access_token(connection)
    }
    fn force_refresh(
        &self,
        connection: &ConnectionId,
        stale: &AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send {
        (**self).force_refresh(connection, stale)
    }
    fn token_refused(
        &self,
        connection: &ConnectionId,
        refused: &AccessToken,
        reason: &ReauthReason,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send {
        (**self).token_refused(connection, refused, reason)
    }
}

/// Why a [`TokenSource`] has no token to give.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenSourceError {
    /// The connection needs a reinstall.
    #[error("the connection needs to be re-authorized: {reason}")]
    ReauthRequired {
        /// Why.
        reason: String,
    },
    /// A temporary failure (refresh failed transiently, storage unavailable, …).
    #[error("no token available right now: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
        /// When to try again, if known.
        retry_after: Option<Duration>,
    },
}
