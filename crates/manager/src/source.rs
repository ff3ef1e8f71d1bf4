//! The manager as the HTTP adapter's `TokenSource`, so `KitClient` refreshes through the same
//! single-flight and lease as everything else, and a refused token is verified before a grant
//! is called dead.

use kit_oauth_core::{
    AccessToken, AccountLookup, ConnectionId, ConnectionStore, Grant, LookupError, TokenEndpoint,
};
use kit_oauth_http::{ReauthReason, TokenSource, TokenSourceError};

use crate::error::ManagerError;
use crate::manager::TokenManager;

impl<E, S> TokenManager<E, S>
where
    E: TokenEndpoint + AccountLookup + 'static,
    S: ConnectionStore + 'static,
{
    fn source_error(&self, error: ManagerError) -> TokenSourceError {
        match error {
            ManagerError::ReauthRequired { reason, .. } => {
                TokenSourceError::ReauthRequired { reason }
            }
            ManagerError::NotFound(id) => TokenSourceError::ReauthRequired {
                reason: format!("connection {id} does not exist"),
            },
            ManagerError::Unavailable { reason, retry_at } => {
                let now = self.inner.clock.now();
                TokenSourceError::Unavailable {
                    reason,
                    retry_after: retry_at.map(|at| at.duration_since(now)),
                }
            }
            other => TokenSourceError::Unavailable {
                reason: other.to_string(),
                retry_after: None,
            },
        }
    }

    /// Kit answered 401 for `refused` with something other than its expiry message (revoked,
    /// invalid, or text nobody recognises). That is proof of a dead grant only if the token
    /// stored now is refused too: a token another instance has just rotated away is refused by
    /// strict servers as well, and Kit may answer oddly for a moment. So the stored token is
    /// checked with `GET /v4/account` before anything is marked.
    ///
    /// `Ok(true)`: the grant is dead (and now recorded so). `Ok(false)`: the stored token works
    /// or has moved on; retry once with [`TokenManager::access_token`]. The broker's proxy
    /// reaches this through `BrokerOps::report_rejected`, the library through `KitClient`.
    ///
    /// # Errors
    /// [`ManagerError::Unavailable`] when Kit could not be asked (nothing is marked), a
    /// storage error, or the refresh's error when the check found the stored token expired.
    pub async fn verify_refused(
        &self,
        id: &ConnectionId,
        refused: &AccessToken,
        reason: &str,
    ) -> Result<bool, ManagerError> {
        self.inner.cache.evict_if(id, refused);
        let record = self.inner.read(id).await?;
        let Grant::Active(tokens) = &record.grant else {
            return Ok(true);
        };
        if tokens.access() != refused {
            return Ok(false);
        }
        match self.inner.endpoint.account(tokens.access()).await {
            Ok(_) => {
                tracing::info!(connection = %id, %reason,
                    "Kit refused the access token, but accepts it for the account lookup; retrying");
                Ok(false)
            }
            Err(LookupError::Unauthorized { message }) => {
                let detail = format!("Kit refused the access token: {message}");
                self.report_rejected(id, tokens.access(), &detail).await
            }
            Err(LookupError::TokenExpired) => {
                self.force_refresh(id, Some(tokens.access())).await?;
                Ok(false)
            }
            Err(error) => {
                tracing::warn!(connection = %id, %error, %reason,
                    "could not verify a refused token; leaving the connection as it is");
                Err(ManagerError::Unavailable {
                    reason: format!("could not verify the access token Kit refused: {error}"),
                    retry_at: None,
                })
            }
        }
    }
}

impl<E, S> TokenSource for TokenManager<E, S>
where
    E: TokenEndpoint + AccountLookup + 'static,
    S: ConnectionStore + 'static,
{
    async fn access_token(
        &self,
        connection: &ConnectionId,
    ) -> Result<AccessToken, TokenSourceError> {
        TokenManager::access_token(self, connection)
            .await
            .map_err(|e| self.source_error(e))
    }

    async fn force_refresh(
        &self,
        connection: &ConnectionId,
        stale: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        TokenManager::force_refresh(self, connection, Some(stale))
            .await
            .map_err(|e| self.source_error(e))
    }

    async fn token_refused(
        &self,
        connection: &ConnectionId,
        refused: &AccessToken,
        reason: &ReauthReason,
    ) -> Result<AccessToken, TokenSourceError> {
        match self
            .verify_refused(connection, refused, &reason.message)
            .await
        {
            Ok(false) => TokenManager::access_token(self, connection)
                .await
                .map_err(|e| self.source_error(e)),
            Ok(true) => Err(TokenSourceError::ReauthRequired {
                reason: reason.message.clone(),
            }),
            Err(error) => Err(self.source_error(error)),
        }
    }
}
