//! Settling a refresh attempt: what Kit's answer does to the row. New tokens — the
//! `Connection<Authorized>` the flow's `refreshed` made — are committed (compare-and-swap, lease
//! released in the same write); `invalid_grant` ends the grant (the flow's `reauth_required`)
//! only if nobody else rotated it; any other failure keeps the tokens and starts a cooldown.

use std::time::Duration;

use kit_oauth_core::{
    AccessToken, AccountLookup, Connection, ConnectionId, ConnectionRecord, ConnectionStore,
    EndpointError, EventKind, Expired, Lease, RefreshHealth, Renewed, Settled, StoreError,
    TokenEndpoint,
};
use rand::Rng as _;

use crate::early_retry::early_retry_after;
use crate::error::ManagerError;
use crate::manager::Inner;
use crate::refresh::active;

impl<E, S> Inner<E, S>
where
    E: TokenEndpoint + AccountLookup,
    S: ConnectionStore,
{
    /// Stores the refreshed tokens (CAS + lease release in one step), then caches them.
    pub(crate) async fn commit(
        &self,
        lease: &Lease,
        record: ConnectionRecord,
        renewed: Renewed,
    ) -> Result<AccessToken, ManagerError> {
        let now = self.clock.now();
        let mut rng = rand::rngs::OsRng;
        let next_refresh_at = renewed.tokens().next_refresh_at(&mut rng);
        let settled = Settled::Refreshed {
            connection: &renewed,
            next_refresh_at,
            at: now,
        };
        let tokens = renewed.tokens();
        let mut attempt = 0;
        let version = loop {
            let written = match self
                .store
                .commit_refresh(lease, &settled, record.version)
                .await
            {
                // Our lease lapsed and was taken, but Kit has already rotated: these tokens are
                // the only working ones. A plain CAS still refuses to overwrite anything newer;
                // the new holder's refresh then fails `invalid_grant`, its fenced swap is refused
                // (the version moved on), and it starts over and finds ours.
                Err(StoreError::LeaseLost(_)) => self.store.put(&settled, record.version).await,
                other => other,
            };
            match written {
                Ok(version) => break version,
                Err(StoreError::Unavailable(reason))
                    if attempt + 1 < self.config.commit_attempts =>
                {
                    attempt += 1;
                    tracing::warn!(connection = %record.id, attempt, %reason,
                        "database unavailable while committing refreshed tokens; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(StoreError::Conflict { .. } | StoreError::LeaseLost(_)) => {
                    // A reinstall or a revocation replaced the grant meanwhile: it wins.
                    tracing::warn!(connection = %record.id,
                        "connection changed during refresh; discarding the refreshed tokens \
                         and revoking them at Kit");
                    // Nobody will hold the refreshed pair, yet Kit keeps it working: a
                    // revocation that raced this refresh would otherwise leave it alive.
                    self.revoke_orphan(tokens, "a refresh that lost to a change of the connection")
                        .await;
                    return self
                        .read(&record.id)
                        .await
                        .and_then(|current| active(&current).map(|t| t.access().clone()));
                }
                Err(e) => {
                    tracing::error!(connection = %record.id, error = %e,
                        "could not store refreshed tokens");
                    return Err(ManagerError::from_store(e));
                }
            }
        };
        self.cache
            .put(&record.id, tokens, version, Some(next_refresh_at), now);
        self.emit(
            &record,
            EventKind::Refreshed {
                expires_at: tokens.expires_at(),
            },
        )
        .await;
        self.retire_replaced(&record.id, tokens.access()).await;
        Ok(tokens.access().clone())
    }

    /// Uses the new access token once, right after its commit, so that Kit retires the pair
    /// it replaced. Under Doorkeeper's default rotation (revoke-on-use) a replaced refresh
    /// token keeps working until its successor's access token is first used; a connection
    /// refreshed again before anyone used it (an idle connection under the background
    /// refresher) would leave a chain of live pairs at Kit that the broker no longer holds and
    /// so can never revoke (docs/refresh-protocol.md, "Retiring the replaced pair"). After the
    /// commit, not before: until then the replaced refresh token is the only way back if the
    /// answer is lost. The answer does not matter; a failure leaves just that one pair working
    /// until a use of the new token (a revocation makes one, through this same function), and
    /// is logged.
    pub(crate) async fn retire_replaced(&self, id: &ConnectionId, access: &AccessToken) {
        if let Err(error) = self.endpoint.account(access).await {
            tracing::warn!(connection = %id, %error,
                "could not use the new access token once, so Kit may keep the replaced refresh \
                 token working until it is used");
        }
    }

    /// `invalid_grant` is not trusted blindly: the grant is ended by the same fenced
    /// compare-and-swap as a commit, against the version read with the lease. If another worker
    /// rotated the tokens meanwhile (its commit bumped the version: a former holder's late
    /// commit, a reinstall, a revocation), the swap is refused and the caller starts over and
    /// finds their tokens. No separate re-read: the swap is that check, made atomically
    /// (docs/refresh-protocol.md, "invalid_grant").
    pub(crate) async fn on_invalid_grant(
        &self,
        lease: &Lease,
        record: ConnectionRecord,
        expired: Connection<Expired>,
        description: String,
    ) -> Result<Option<AccessToken>, ManagerError> {
        let detail = format!("Kit refused the refresh token (invalid_grant): {description}");
        let now = self.clock.now();
        let ended = expired.reauth_required(detail.clone());
        let health = RefreshHealth {
            consecutive_failures: record.health.consecutive_failures + 1,
            cooldown_until: None,
            early_retry_after: None,
            last_error: Some(detail.clone()),
            last_refresh_at: record.health.last_refresh_at,
        };
        let settled = Settled::Ended {
            connection: &ended,
            health,
            at: now,
        };
        match self
            .store
            .commit_refresh(lease, &settled, record.version)
            .await
        {
            Ok(_) => {
                self.cache.evict(&record.id);
                self.emit(
                    &record,
                    EventKind::ReauthRequired {
                        reason: detail.clone(),
                    },
                )
                .await;
                Err(ManagerError::ReauthRequired {
                    id: record.id,
                    reason: detail,
                })
            }
            // The row moved on under our lease: someone else's tokens won. Our lease is still
            // ours; hand it back so the next attempt (or another instance) need not wait it out.
            Err(StoreError::Conflict { .. }) => {
                self.release(lease, None).await;
                Ok(None)
            }
            Err(StoreError::LeaseLost(_)) => Ok(None),
            Err(e) => Err(ManagerError::from_store(e)),
        }
    }

    /// A failure that does not end the grant: keep the tokens, count it, cool down. `early`:
    /// the attempt cut a cooldown short (see `early_retry`).
    pub(crate) async fn on_failure(
        &self,
        lease: &Lease,
        record: ConnectionRecord,
        error: &EndpointError,
        early: bool,
    ) -> ManagerError {
        let now = self.clock.now();
        let failures = record.health.consecutive_failures.saturating_add(1);
        let base = self.config.cooldown(failures);
        // Jitter the cooldown to [50 %, 100 %] of its length so failing connections spread out.
        let jittered = base.mul_f64(rand::rngs::OsRng.gen_range(0.5..=1.0));
        let retry_after = match error {
            EndpointError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        };
        let cooldown = retry_after.map_or(jittered, |r| r.max(jittered));
        let until = now.saturating_add(cooldown);
        let message = error.to_string();
        let health = RefreshHealth {
            consecutive_failures: failures,
            cooldown_until: Some(until),
            early_retry_after: early_retry_after(error, early, now),
            last_error: Some(message.clone()),
            last_refresh_at: record.health.last_refresh_at,
        };
        self.release(lease, Some(&health)).await;
        if failures == 1 {
            self.emit(
                &record,
                EventKind::RefreshFailed {
                    reason: message.clone(),
                    failures,
                },
            )
            .await;
        }
        tracing::warn!(connection = %record.id, failures, error = %message, "refresh failed");
        match error {
            EndpointError::InvalidClient { description } => {
                ManagerError::InvalidClient(description.clone())
            }
            _ => ManagerError::Unavailable {
                reason: message,
                retry_at: Some(until),
            },
        }
    }

    pub(crate) async fn release(&self, lease: &Lease, health: Option<&RefreshHealth>) {
        if let Err(error) = self.store.release_lease(lease, health, false).await {
            // The lease lapses by itself; nothing is lost.
            tracing::warn!(connection = %lease.connection, %error, "could not release a refresh lease");
        }
    }
}

/// 50 ms, 100 ms, 200 ms, … capped at 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(50u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(2))
}
