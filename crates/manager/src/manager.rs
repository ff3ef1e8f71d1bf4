//! `TokenManager`: always-fresh access tokens for every connection.

use std::sync::Arc;

use kit_oauth_core::{
    AccessToken, AccountLookup, Clock, ConnectionId, ConnectionRecord, ConnectionStore,
    ConnectionStoreExt as _, Event, EventId, EventKind, EventSink, Grant, KitAccount, LeaseOwner,
    ListQuery, RefreshHealth, RevocableToken, Settled, StateName, StoredConnection, TenantName,
    Timestamp, TokenEndpoint, TokenSet, UnauthorizedReason,
};

use crate::cache::{Lookup, TokenCache};
use crate::config::ManagerConfig;
use crate::early_retry::KitAnswers;
use crate::error::ManagerError;
use crate::refresh::Want;
use crate::single_flight::SingleFlight;

/// Shared state behind every clone of a [`TokenManager`].
pub(crate) struct Inner<E, S> {
    pub(crate) endpoint: E,
    pub(crate) store: S,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) config: ManagerConfig,
    pub(crate) owner: LeaseOwner,
    pub(crate) cache: TokenCache,
    pub(crate) flights: SingleFlight<ConnectionId, AccessToken>,
    pub(crate) kit_answers: KitAnswers,
}

/// Hands out access tokens that are always fresh, with exactly one refresh per connection at a
/// time across tasks (single-flight) and processes (a fenced lease in the database).
///
/// Cheap to clone; every clone shares the cache, the flights and the adapters.
pub struct TokenManager<E, S> {
    pub(crate) inner: Arc<Inner<E, S>>,
}

impl<E, S> Clone for TokenManager<E, S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E, S> std::fmt::Debug for TokenManager<E, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

/// What the dashboard, the CLI and the broker API show about a connection. No secrets.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConnectionStatus {
    /// The connection id.
    pub id: ConnectionId,
    /// Its tenant.
    pub tenant: Option<TenantName>,
    /// The Kit account.
    pub account: KitAccount,
    /// `authorized`, `expired` (inside the refresh margin or past expiry) or `unauthorized`.
    pub state: StateName,
    /// Why the grant ended, when it has.
    pub ended: Option<UnauthorizedReason>,
    /// When the access token expires.
    pub expires_at: Option<Timestamp>,
    /// When the refresher will renew it.
    pub next_refresh_at: Option<Timestamp>,
    /// The last successful refresh.
    pub last_refresh_at: Option<Timestamp>,
    /// The last failure, without secrets.
    pub last_error: Option<String>,
    /// Consecutive failed refreshes.
    pub consecutive_failures: u32,
    /// No refresh before this instant.
    pub cooldown_until: Option<Timestamp>,
    /// When the connection was first installed.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// An access token with its expiry, as [`TokenManager::access_token_for`] hands it out.
/// `Debug` never prints the token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The bearer token.
    pub access_token: AccessToken,
    /// When it expires (it is renewed well before); `None` only when the expiry could not be
    /// read back after a slow-path hand-out (the row changed or the read failed meanwhile).
    pub expires_at: Option<Timestamp>,
}

impl ConnectionStatus {
    pub(crate) fn of(record: &ConnectionRecord, now: Timestamp) -> Self {
        let (state, ended, expires_at) = match &record.grant {
            Grant::Active(tokens) if tokens.is_due(now) => {
                (StateName::Expired, None, Some(tokens.expires_at()))
            }
            Grant::Active(tokens) => (StateName::Authorized, None, Some(tokens.expires_at())),
            Grant::Ended(reason) => (StateName::Unauthorized, Some(reason.clone()), None),
        };
        Self {
            id: record.id.clone(),
            tenant: record.tenant.clone(),
            account: record.account.clone(),
            state,
            ended,
            expires_at,
            next_refresh_at: record.next_refresh_at,
            last_refresh_at: record.health.last_refresh_at,
            last_error: record.health.last_error.clone(),
            consecutive_failures: record.health.consecutive_failures,
            cooldown_until: record.health.cooldown_until,
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }
}

impl<E, S> TokenManager<E, S>
where
    E: TokenEndpoint + AccountLookup + 'static,
    S: ConnectionStore + 'static,
{
    /// Assembles a manager from its parts. Most apps use `KitOAuth::builder()` instead.
    pub fn new(
        endpoint: E,
        store: S,
        clock: Arc<dyn Clock>,
        events: Arc<dyn EventSink>,
        config: ManagerConfig,
    ) -> Self {
        let mut rng = rand::rngs::OsRng;
        let owner = LeaseOwner(format!(
            "{}-{}",
            std::process::id(),
            ConnectionId::generate(&mut rng)
        ));
        let cache = TokenCache::new(config.cache_max_age, config.cache_capacity);
        Self {
            inner: Arc::new(Inner {
                endpoint,
                store,
                clock,
                events,
                config,
                owner,
                cache,
                flights: SingleFlight::default(),
                kit_answers: KitAnswers::new(),
            }),
        }
    }

    /// A fresh access token for `id`.
    ///
    /// From memory when the cached token is outside its refresh margin (no I/O, no lock held
    /// across an await); otherwise refreshed exactly once, whoever else asks at the same time.
    ///
    /// # Errors
    /// [`ManagerError::ReauthRequired`] when the grant is dead, [`ManagerError::Unavailable`]
    /// for transient failures (the tokens are kept), [`ManagerError::NotFound`].
    pub async fn access_token(&self, id: &ConnectionId) -> Result<AccessToken, ManagerError> {
        if let Some(token) = self.inner.cache.get(id, self.inner.clock.now()) {
            return Ok(token);
        }
        self.obtain(id, Want::Token).await
    }

    /// [`Self::access_token`] and its expiry, for a caller that may see the connection only when
    /// `visible(tenant)` holds (a broker's tenant-scoped key).
    ///
    /// Visibility is decided before anything else: a connection the caller may not see is
    /// [`ManagerError::NotFound`], never refreshed, and says nothing about its grant. On the hot
    /// path (the cached token is fresh and its tenant known) there is no I/O at all; otherwise
    /// one read of the row, and a refresh only when the token is due.
    ///
    /// # Errors
    /// As [`Self::access_token`]; [`ManagerError::NotFound`] when the connection is not
    /// visible.
    pub async fn access_token_for<F>(
        &self,
        id: &ConnectionId,
        visible: F,
    ) -> Result<IssuedToken, ManagerError>
    where
        F: Fn(Option<&TenantName>) -> bool,
    {
        let cache = &self.inner.cache;
        let now = self.inner.clock.now();
        match cache.lookup(id, now, &visible) {
            Lookup::Fresh(access_token, expires_at) => {
                return Ok(IssuedToken {
                    access_token,
                    expires_at: Some(expires_at),
                });
            }
            Lookup::Hidden => return Err(ManagerError::NotFound(id.clone())),
            Lookup::Due => {}
            Lookup::Miss => {
                let record = self.read(id).await?;
                if !visible(record.tenant.as_ref()) {
                    return Err(ManagerError::NotFound(id.clone()));
                }
                let tokens = match &record.grant {
                    Grant::Active(tokens) => tokens,
                    Grant::Ended(reason) => return Err(ended(id, reason)),
                };
                // Cache the row with its tenant: a due token's refresh below replaces the token
                // on this entry and keeps the tenant.
                cache.put(id, tokens, record.version, record.next_refresh_at, now);
                cache.learn_tenant(id, record.tenant.as_ref());
                // What the refresh protocol's first step does for a token outside its margin,
                // without reading the row a second time.
                if !tokens.is_due(now) {
                    return Ok(IssuedToken {
                        access_token: tokens.access().clone(),
                        expires_at: Some(tokens.expires_at()),
                    });
                }
            }
        }
        let access_token = self.obtain(id, Want::Token).await?;
        let expires_at = match cache.expiry_of(id, &access_token) {
            Some(at) => Some(at),
            // Handed out without being cached (cooling down, or another instance holds the
            // lease): read its expiry from the row.
            None => match self.read(id).await.map(|record| record.grant) {
                Ok(Grant::Active(tokens)) if tokens.access() == &access_token => {
                    Some(tokens.expires_at())
                }
                _ => None,
            },
        };
        Ok(IssuedToken {
            access_token,
            expires_at,
        })
    }

    /// Refreshes now, even if the token looks fresh — unless it already changed since
    /// `stale` (the token Kit just refused), in which case the newer token is returned.
    ///
    /// # Errors
    /// As [`Self::access_token`].
    pub async fn force_refresh(
        &self,
        id: &ConnectionId,
        stale: Option<&AccessToken>,
    ) -> Result<AccessToken, ManagerError> {
        let stale = match stale {
            Some(token) => token.clone(),
            None => match self.read(id).await?.grant {
                Grant::Active(tokens) => tokens.access().clone(),
                Grant::Ended(reason) => return Err(ended(id, &reason)),
            },
        };
        self.inner.cache.evict_if(id, &stale);
        let outcome = self.obtain(id, Want::Replace(stale.fingerprint())).await?;
        Ok(outcome)
    }

    /// Renews `expired` so that its grant can be revoked: as [`Self::force_refresh`], but one
    /// attempt is made even while the refresh cools down after failures.
    pub(crate) async fn renew_to_revoke(
        &self,
        id: &ConnectionId,
        expired: &AccessToken,
    ) -> Result<AccessToken, ManagerError> {
        self.inner.cache.evict_if(id, expired);
        self.obtain(id, Want::Revoke(expired.fingerprint())).await
    }

    /// Renews the token if the background schedule says so (`next_refresh_at` has passed).
    ///
    /// # Errors
    /// As [`Self::access_token`].
    pub async fn refresh_if_scheduled(&self, id: &ConnectionId) -> Result<(), ManagerError> {
        self.obtain(id, Want::Scheduled).await.map(drop)
    }

    /// Runs the refresh protocol once per connection at a time in this process.
    async fn obtain(&self, id: &ConnectionId, want: Want) -> Result<AccessToken, ManagerError> {
        loop {
            let inner = Arc::clone(&self.inner);
            let key = id.clone();
            let result = self
                .inner
                .flights
                .run(id, move || async move { inner.obtain(&key, want).await })
                .await;
            // A flight started for another purpose may have returned the very token we were
            // asked to replace: run our own.
            match (&result, want) {
                (Ok(token), Want::Replace(stale) | Want::Revoke(stale))
                    if token.fingerprint() == stale => {}
                _ => return result,
            }
        }
    }

    /// The connection's state, expiry and refresh health.
    ///
    /// # Errors
    /// [`ManagerError::NotFound`], or a storage error.
    pub async fn status(&self, id: &ConnectionId) -> Result<ConnectionStatus, ManagerError> {
        let record = self.read(id).await?;
        Ok(ConnectionStatus::of(&record, self.inner.clock.now()))
    }

    /// A page of connections.
    ///
    /// # Errors
    /// A storage error.
    pub async fn list(&self, query: &ListQuery) -> Result<Vec<ConnectionStatus>, ManagerError> {
        let now = self.inner.clock.now();
        let records = self
            .inner
            .store
            .list(query)
            .await
            .map_err(ManagerError::from_store)?;
        Ok(records
            .iter()
            .map(|r| ConnectionStatus::of(r, now))
            .collect())
    }

    /// Kit refused `rejected` as invalid or revoked (a 401 on an API call). The grant is dead
    /// unless the stored token has moved on (another task refreshed it): then nothing changes
    /// and `Ok(false)` says "retry with the new token".
    ///
    /// # Errors
    /// A storage error.
    pub async fn report_rejected(
        &self,
        id: &ConnectionId,
        rejected: &AccessToken,
        reason: &str,
    ) -> Result<bool, ManagerError> {
        self.inner.cache.evict_if(id, rejected);
        loop {
            let (record, connection) = self.load(id).await?;
            let StoredConnection::Active(connection) = connection else {
                return Ok(true);
            };
            if connection.tokens().access() != rejected {
                return Ok(false);
            }
            let ended = connection.reauth_required(reason.to_owned());
            let health = RefreshHealth {
                last_error: Some(reason.to_owned()),
                ..record.health.clone()
            };
            let settled = Settled::Ended {
                connection: &ended,
                health,
                at: self.inner.clock.now(),
            };
            match self.inner.store.put(&settled, record.version).await {
                Ok(_) => {
                    self.inner.cache.evict(id);
                    self.inner
                        .emit(
                            &record,
                            EventKind::ReauthRequired {
                                reason: reason.to_owned(),
                            },
                        )
                        .await;
                    return Ok(true);
                }
                Err(kit_oauth_core::StoreError::Conflict { .. }) => {}
                Err(e) => return Err(ManagerError::from_store(e)),
            }
        }
    }

    /// The store behind this manager (for the server's readiness check and the CLI).
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The endpoint behind this manager.
    pub fn endpoint(&self) -> &E {
        &self.inner.endpoint
    }

    /// The clock this manager decides expiry by.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// This instance's lease owner name.
    #[must_use]
    pub fn owner(&self) -> &LeaseOwner {
        &self.inner.owner
    }

    pub(crate) async fn read(&self, id: &ConnectionId) -> Result<ConnectionRecord, ManagerError> {
        self.inner
            .store
            .get(id)
            .await
            .map_err(ManagerError::from_store)?
            .ok_or_else(|| ManagerError::NotFound(id.clone()))
    }

    /// The row and its typed form (the store's sealed constructor made it).
    pub(crate) async fn load(
        &self,
        id: &ConnectionId,
    ) -> Result<(ConnectionRecord, StoredConnection), ManagerError> {
        self.inner
            .store
            .load(id)
            .await
            .map_err(ManagerError::from_store)?
            .ok_or_else(|| ManagerError::NotFound(id.clone()))
    }
}

pub(crate) fn ended(id: &ConnectionId, reason: &UnauthorizedReason) -> ManagerError {
    let reason = match reason {
        UnauthorizedReason::Revoked => "the connection was revoked".to_owned(),
        UnauthorizedReason::ReauthRequired { detail } => detail.clone(),
        other => format!("{other:?}"),
    };
    ManagerError::ReauthRequired {
        id: id.clone(),
        reason,
    }
}

impl<E, S> Inner<E, S>
where
    S: ConnectionStore,
{
    /// Emits an event about `record`'s connection to the sink and the audit trail.
    pub(crate) async fn emit(&self, record: &ConnectionRecord, kind: EventKind) {
        let mut rng = rand::rngs::OsRng;
        let event = Event {
            id: EventId::generate(&mut rng),
            at: self.clock.now(),
            connection: record.id.clone(),
            tenant: record.tenant.clone(),
            account: Some(record.account.id.clone()),
            kind,
        };
        self.events.emit(&event);
        if let Err(error) = self.store.append_event(&event).await {
            tracing::warn!(connection = %record.id, %error, "could not append to the audit trail");
        }
    }
}

impl<E, S> Inner<E, S>
where
    E: TokenEndpoint,
{
    /// Revokes a pair Kit issued that no connection will hold (an install or import that
    /// failed after the code exchange or refresh, a refresh whose commit lost to a revocation,
    /// a reinstall or another holder): Kit keeps such a pair working until it is revoked, and
    /// nothing could revoke it later. Pair-level only, so another holder's pair is untouched.
    /// A failure is logged (`what` says whose pair it was); nothing else can be done with it.
    pub(crate) async fn revoke_orphan(&self, tokens: &TokenSet, what: &'static str) {
        if let Err(error) = self
            .endpoint
            .revoke(RevocableToken::Refresh(tokens.refresh()))
            .await
        {
            tracing::warn!(%error, what,
                "could not revoke a pair no connection holds; it may keep working at Kit");
        }
    }
}
