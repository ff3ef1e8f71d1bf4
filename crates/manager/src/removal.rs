//! Revocation and removal: the flow's `revoke` at Kit's word, and a removal that never leaves
//! an unrevocable grant behind without saying so (issue 13.9).

use kit_oauth_core::{
    AccountLookup, Connection, ConnectionId, ConnectionStore, EventKind, Removed, RevocableToken,
    Settled, StoreError, StoredConnection, TokenEndpoint, Unauthorized,
};

use crate::error::ManagerError;
use crate::manager::TokenManager;

/// How close to its expiry an access token is treated as expired before a revocation: Kit's
/// clock may run ahead of ours by this much.
const EXPIRY_SKEW: std::time::Duration = std::time::Duration::from_secs(60);

/// What [`TokenManager::remove_forced`] did at Kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Kit revoked the grant, then the connection was deleted.
    Revoked,
    /// Kit refused or could not be reached: the connection was deleted anyway and an
    /// [`EventKind::RemovedWithoutRevoke`] event records that the grant may still live at Kit.
    KitNotTold {
        /// Why Kit did not revoke, without secrets.
        reason: String,
    },
}

impl<E, S> TokenManager<E, S>
where
    E: TokenEndpoint + AccountLookup + 'static,
    S: ConnectionStore + 'static,
{
    /// Revokes the grant at Kit, then stores what the flow's `revoke` made of the connection:
    /// `Unauthorized` (revoked).
    ///
    /// # Errors
    /// [`ManagerError::KitKeptGrant`] when Kit refused the revocation or could not be reached
    /// (nothing is changed then), [`ManagerError::NotFound`].
    pub async fn revoke(&self, id: &ConnectionId) -> Result<(), ManagerError> {
        self.revoked(id).await.map(drop)
    }

    /// As [`Self::revoke`], giving back the ended connection the flow made (or found: a grant
    /// that had already ended has nothing to revoke).
    async fn revoked(&self, id: &ConnectionId) -> Result<Connection<Unauthorized>, ManagerError> {
        let mut renewed = false;
        loop {
            let (record, connection) = self.load(id).await?;
            let connection = match connection {
                StoredConnection::Active(connection) => connection,
                StoredConnection::Ended(ended) => {
                    self.inner.cache.evict(id);
                    return Ok(ended);
                }
            };
            // Doorkeeper revokes only a pair whose access token still works: revoking the
            // refresh token of an expired one answers 200 and the refresh token keeps working
            // (docs/doorkeeper-observed.md, "revoke the RT of an expired AT"). So a pair at or
            // near expiry is renewed first, under the lease like any refresh, and the loop
            // revokes the pair that came back (whatever its age: one renewal is enough, and a
            // lifetime shorter than the skew must not renew for ever); a grant Kit already
            // ended is found ended.
            let tokens = connection.tokens();
            let skew = EXPIRY_SKEW.min(tokens.lifetime() / 2);
            if !renewed && tokens.expires_at().saturating_sub(skew) <= self.inner.clock.now() {
                renewed = true;
                match self.renew_to_revoke(id, connection.tokens().access()).await {
                    Ok(_) | Err(ManagerError::ReauthRequired { .. }) => continue,
                    Err(error) => {
                        return Err(ManagerError::KitKeptGrant {
                            id: id.clone(),
                            reason: format!(
                                "its expired access token could not be renewed to revoke the \
                                 grant: {error}"
                            ),
                            transient: error.is_transient(),
                        });
                    }
                }
            }
            // Under Doorkeeper's default rotation (revoke-on-use) the pair this one replaced
            // keeps working until this access token is first used, and revoking this pair does
            // not end it: one use retires it (docs/doorkeeper-observed.md, the chain rows). Its
            // answer does not matter. Each commit already made that use (`retire_replaced`);
            // this one covers a commit whose use failed or whose process stopped before it.
            // Older pairs were retired by their own successors' commits
            // (docs/refresh-protocol.md, "Retiring the replaced pair").
            self.inner
                .retire_replaced(id, connection.tokens().access())
                .await;
            self.inner
                .endpoint
                .revoke(RevocableToken::Refresh(connection.tokens().refresh()))
                .await
                .map_err(|error| ManagerError::KitKeptGrant {
                    id: id.clone(),
                    reason: error.to_string(),
                    transient: error.is_transient(),
                })?;
            let ended = connection.revoke();
            let settled = Settled::Ended {
                connection: &ended,
                health: record.health.clone(),
                at: self.inner.clock.now(),
            };
            match self.inner.store.put(&settled, record.version).await {
                Ok(_) => {
                    self.inner.cache.evict(id);
                    self.inner.emit(&record, EventKind::Revoked).await;
                    return Ok(ended);
                }
                // A refresh or reinstall landed meanwhile: revoke what is there now.
                Err(kit_oauth_core::StoreError::Conflict { .. }) => {}
                Err(e) => return Err(ManagerError::from_store(e)),
            }
        }
    }

    /// Revokes the grant at Kit (nothing to revoke when it already ended) and deletes the
    /// connection. When Kit does not confirm the revocation, the row is kept: deleting it would
    /// leave a live grant at Kit that nothing can revoke any more.
    ///
    /// # Errors
    /// [`ManagerError::KitKeptGrant`] when Kit refused the revocation or could not be reached
    /// (the connection is kept; [`Self::remove_forced`] removes it anyway),
    /// [`ManagerError::NotFound`], or a storage error.
    pub async fn remove(&self, id: &ConnectionId) -> Result<(), ManagerError> {
        loop {
            let ended = self.revoked(id).await?;
            if self.delete_ended(id, ended).await? {
                return Ok(());
            }
        }
    }

    /// Deletes the ended connection; `false` when a reinstall landed since the revocation (its
    /// grant must be revoked in turn). A row already gone is done.
    async fn delete_ended(
        &self,
        id: &ConnectionId,
        ended: Connection<Unauthorized>,
    ) -> Result<bool, ManagerError> {
        if self.delete(ended_removal(ended)?).await? {
            return Ok(true);
        }
        let still_there = self
            .inner
            .store
            .get(id)
            .await
            .map_err(ManagerError::from_store)?
            .is_some();
        Ok(!still_there)
    }

    /// Removes the connection even when Kit will not revoke its grant (a client secret that
    /// was rotated, Kit down for good): revokes at Kit when Kit accepts, otherwise deletes the
    /// row anyway and records an [`EventKind::RemovedWithoutRevoke`] event saying Kit was not
    /// told — the grant then lives at Kit until the creator uninstalls the app there.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`], or a storage error.
    pub async fn remove_forced(&self, id: &ConnectionId) -> Result<Removal, ManagerError> {
        match self.revoked(id).await {
            Ok(ended) => {
                if self.delete_ended(id, ended).await? {
                    Ok(Removal::Revoked)
                } else {
                    // Reinstalled meanwhile: that grant is revoked (or forced) in turn.
                    Box::pin(self.remove_forced(id)).await
                }
            }
            Err(ManagerError::KitKeptGrant { reason, .. }) => {
                let (record, connection) = self.load(id).await?;
                let removed = match connection {
                    StoredConnection::Active(live) => live.remove_unrevoked(),
                    // It ended meanwhile (Kit refused it, or another caller revoked it).
                    StoredConnection::Ended(ended) => ended_removal(ended)?,
                };
                let left_at_kit = removed.grant_left_at_kit();
                self.delete(removed).await?;
                if left_at_kit {
                    self.inner
                        .emit(
                            &record,
                            EventKind::RemovedWithoutRevoke {
                                reason: reason.clone(),
                            },
                        )
                        .await;
                    tracing::warn!(connection = %id, %reason,
                        "connection removed without Kit revoking its grant");
                }
                Ok(Removal::KitNotTold { reason })
            }
            Err(other) => Err(other),
        }
    }

    /// Deletes the row the flow removed; whether it did (see [`ConnectionStore::delete`]).
    async fn delete(&self, removed: Removed) -> Result<bool, ManagerError> {
        let deleted = self
            .inner
            .store
            .delete(&removed)
            .await
            .map_err(ManagerError::from_store)?;
        self.inner.cache.evict(removed.id());
        Ok(deleted)
    }
}

/// The flow's removal of a connection read back from the store (which always has an id).
fn ended_removal(ended: Connection<Unauthorized>) -> Result<Removed, ManagerError> {
    ended.remove().map_err(|_| {
        ManagerError::from_store(StoreError::Backend(
            "a connection read back from the store has an id".into(),
        ))
    })
}
