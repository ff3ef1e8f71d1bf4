//! The manager as the HTTP adapter's `TokenSource`, so `KitClient` refreshes through the same
//! single-flight and lease as everything else.

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

    /// Kit said an access token of this connection is invalid or revoked. That is proof of a
    /// dead grant only if the token stored now is refused too: a token another instance has
    /// just rotated away is refused by strict servers as well, and must not cost the
    /// connection. So the stored token is checked against Kit once before anything is marked.
    async fn confirm_rejection(&self, id: &ConnectionId, reason: &ReauthReason) {
        self.inner.cache.evict(id);
        let Ok(Some(record)) = self.inner.store.get(id).await else {
            return;
        };
        let Grant::Active(tokens) = &record.grant else {
            return;
        };
        match self.inner.endpoint.account(tokens.access()).await {
            Ok(_) => {
                tracing::info!(connection = %id, "a stale access token was refused; the stored one works");
            }
            Err(LookupError::Unauthorized { message }) => {
                let detail = format!("Kit refused the access token: {message}");
                if let Err(error) = self.report_rejected(id, tokens.access(), &detail).await {
                    tracing::warn!(connection = %id, %error, "could not record a dead grant");
                }
            }
            Err(LookupError::TokenExpired) => {
                let _ = self.force_refresh(id, Some(tokens.access())).await;
            }
            Err(error) => {
                tracing::warn!(connection = %id, %error, reason = %reason.message,
                    "could not confirm a refused token; leaving the connection as it is");
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

    async fn reauth_required(&self, connection: &ConnectionId, reason: &ReauthReason) {
        self.confirm_rejection(connection, reason).await;
    }
}
