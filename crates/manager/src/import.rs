//! Import: adopting a grant an app obtained with its own hand-written OAuth, so its creators are
//! served without reconnecting (issue 15.1).
//!
//! The account is identified with the access token (`GET /v4/account`, no refresh) when it
//! works, else with exactly one refresh — which rotates, so the new pair is what is stored. A
//! refresh token this broker already sent to Kit (its hash is in the store's spent list) is
//! refused before any call: with reuse detection at Kit, sending it once would kill the live
//! grant that succeeded it.
//!
//! When the (tenant, account) is already connected:
//! - identified without a refresh, the stored tokens are kept and nothing is written: the
//!   broker's pair is the one its refresh protocol owns, and taking a copy the app may still
//!   use would let two refreshers rotate one chain;
//! - identified by a refresh, the fresh pair replaces the stored one: it is the only copy of a
//!   live grant anywhere (the app's token is now spent), and dropping it would strand that grant
//!   at Kit — and if the app handed over the broker's own current token, it repairs the row;
//! - an ended connection (reauth required, revoked) takes the imported pair either way.
//!
//! One refresh-token chain is never held by two connections: two holders are two refreshers,
//! and the second refresh resends a spent token (with reuse detection, Kit then revokes the
//! grant). So once the account is known, its live connections in every tenant are read and
//! their refresh tokens compared (in constant time) with the imported one. A holder in the
//! import's own tenant is the existing row above. A holder in another tenant refuses the
//! import ([`ImportError::HeldElsewhere`]) with nothing stored — unless identifying the
//! account already spent the token: then the new pair is the holder's successor, and it is
//! stored in the holder's row, the only place its chain may continue
//! ([`ImportError::SuccessorToHolder`]).

use kit_oauth_core::{
    AccessToken, AccountLookup, Connection, ConnectionId, ConnectionStore, EndpointError,
    EventKind, Grant, Installed, KitAccount, LookupError, RefreshToken, StoreError, TenantName,
    Timestamp, TokenEndpoint, TokenError, TokenSet, Unauthorized,
};

use crate::facade::Manager;

/// One grant to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    /// The app's current refresh token.
    pub refresh_token: RefreshToken,
    /// The app's current access token, when it has one: tried first, so no refresh is spent.
    pub access_token: Option<AccessToken>,
    /// When that access token expires. Without it, the token only identifies the account and
    /// the connection is stored as due, so its first use refreshes it (a lifetime is never
    /// guessed).
    pub expires_at: Option<Timestamp>,
    /// The tenant to import into (`None` for a single-tenant app).
    pub tenant: Option<TenantName>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// A new connection was stored.
    Created,
    /// The (tenant, account) was already connected with a live grant; nothing was written.
    AlreadyPresent,
    /// The (tenant, account) was connected; its tokens were replaced by the imported grant
    /// (it had ended, or identifying the account spent a refresh).
    Replaced,
    /// Dry run: the access token identified the account; nothing was written.
    Checked,
    /// Dry run: there was no working access token, so a real import would spend one refresh;
    /// nothing was sent (a dry run never spends a token).
    NeedsRefresh,
}

/// The result of [`Manager::import`].
#[derive(Debug, Clone)]
pub struct Imported {
    /// What happened.
    pub outcome: ImportOutcome,
    /// The connection (the existing one when the account was already connected); `None` only
    /// for a dry run that did not get as far as identifying the account, or found it new.
    pub connection_id: Option<ConnectionId>,
    /// The Kit account, when identified.
    pub account: Option<KitAccount>,
    /// Whether a refresh was spent to identify the account (0 or 1 calls).
    pub refreshed: bool,
}

/// Why an import stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The refresh token was already sent to Kit by this broker; it was not sent again.
    #[error(
        "this refresh token was already spent (by connection {connection}); it was not sent to Kit"
    )]
    Spent {
        /// The connection (or import attempt) that spent it.
        connection: ConnectionId,
    },
    /// A live connection in another tenant holds this refresh token; nothing was stored, and
    /// Kit was asked only to identify the account.
    #[error(
        "this refresh token is held by connection {connection} in another tenant; one grant \
         must not be refreshed by two connections, so nothing was stored"
    )]
    HeldElsewhere {
        /// The connection that holds it.
        connection: ConnectionId,
    },
    /// A live connection in another tenant held this refresh token, and identifying the account
    /// spent it: the new pair, that chain's successor, was stored in the holder's row (it
    /// would otherwise be left holding a spent token) and no connection was made here.
    #[error(
        "this refresh token was held by connection {connection} in another tenant; identifying \
         the account spent it, so the new tokens were stored in that connection, not here"
    )]
    SuccessorToHolder {
        /// The connection that held it, now holding the new pair.
        connection: ConnectionId,
    },
    /// Kit refused the tokens (`invalid_grant`, or the access token and a refresh both refused).
    #[error("Kit refused the tokens: {reason}")]
    Refused {
        /// Kit's reason, without secrets.
        reason: String,
    },
    /// Kit refused the app's client credentials.
    #[error("Kit refused the app's client credentials: {0}")]
    InvalidClient(String),
    /// Kit could not be reached or answered 5xx/429; the refresh token was not sent (or Kit
    /// did not answer it), retry later.
    #[error("Kit is temporarily unavailable: {0}")]
    Unavailable(String),
    /// The refresh rotated the tokens but the account lookup with the new access token failed:
    /// the new pair was revoked rather than left as a grant nobody holds.
    #[error(
        "the tokens were refreshed but the account could not be read ({0}); the new grant was revoked"
    )]
    AccountAfterRefresh(String),
    /// Kit's token answer was unusable.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Manager {
    /// Adopts a grant made outside this library; see the module documentation.
    ///
    /// # Errors
    /// [`ImportError`]: nothing is stored on any error but
    /// [`ImportError::SuccessorToHolder`].
    pub async fn import(
        &self,
        request: ImportRequest,
        dry_run: bool,
    ) -> Result<Imported, ImportError> {
        let inner = &self.inner;
        let spent = request.refresh_token.fingerprint();
        if let Some(connection) = inner.store.spent_by(&spent).await? {
            return Err(ImportError::Spent { connection });
        }
        let now = inner.clock.now();
        let identified = match &request.access_token {
            Some(access) => match inner.endpoint.account(access).await {
                Ok(account) => Some(account),
                Err(LookupError::TokenExpired | LookupError::Unauthorized { .. }) => None,
                Err(LookupError::Transient { reason, .. }) => {
                    return Err(ImportError::Unavailable(reason));
                }
                Err(error @ LookupError::Protocol { .. }) => {
                    return Err(ImportError::Refused {
                        reason: error.to_string(),
                    });
                }
            },
            None => None,
        };
        let candidate = ConnectionId::generate(&mut rand::rngs::OsRng);
        let imported = request.refresh_token.clone();
        let (account, tokens, refreshed) = match (identified, request.access_token) {
            (Some(account), Some(access)) => {
                // A known expiry in the past, or none at all, makes the token due: the first
                // use refreshes it.
                let expires_at = request.expires_at.unwrap_or(now).max(now);
                let tokens =
                    TokenSet::from_parts(access, request.refresh_token, None, now, expires_at);
                (account, tokens, false)
            }
            _ if dry_run => {
                return Ok(Imported {
                    outcome: ImportOutcome::NeedsRefresh,
                    connection_id: None,
                    account: None,
                    refreshed: false,
                });
            }
            _ => {
                let (account, tokens) = self
                    .identify_by_refresh(&request.refresh_token, &candidate)
                    .await?;
                (account, tokens, true)
            }
        };
        let holder = inner
            .store
            .active_by_account(&account.id)
            .await?
            .into_iter()
            .find(|r| matches!(&r.grant, Grant::Active(held) if *held.refresh() == imported));
        let mut tenant = request.tenant;
        let mut moved = false;
        if let Some(holder) = holder.filter(|h| h.tenant != tenant) {
            if !refreshed {
                return Err(ImportError::HeldElsewhere {
                    connection: holder.id,
                });
            }
            tenant = holder.tenant;
            moved = true;
        }
        let existing = inner
            .store
            .find_by_account(tenant.as_ref(), &account.id)
            .await?;
        let live = existing
            .as_ref()
            .is_some_and(|r| matches!(r.grant, Grant::Active(_)));
        if dry_run || (live && !refreshed) {
            let outcome = match (&existing, dry_run) {
                (Some(_), false) => ImportOutcome::AlreadyPresent,
                _ => ImportOutcome::Checked,
            };
            return Ok(Imported {
                outcome,
                connection_id: existing.map(|r| r.id),
                account: Some(account),
                refreshed,
            });
        }
        let id = existing.as_ref().map_or(candidate, |r| r.id.clone());
        let connection = Connection::<Unauthorized>::new(tenant).import(id, account, tokens);
        let next = connection.tokens().next_refresh_at(&mut rand::rngs::OsRng);
        let now = inner.clock.now();
        let stored = inner
            .store
            .upsert_installed(&Installed::new(&connection, next, now))
            .await?;
        inner.cache.put(
            &stored.id,
            connection.tokens(),
            stored.version,
            stored.next_refresh_at,
            now,
        );
        if refreshed && existing.is_some() {
            inner.store.attribute_spent(&spent, &stored.id).await?;
        }
        inner.emit(&stored, EventKind::Authorized).await;
        if moved {
            tracing::warn!(connection = %stored.id,
                "an import spent a refresh token another tenant's connection held; its \
                 successor was stored there");
            return Err(ImportError::SuccessorToHolder {
                connection: stored.id,
            });
        }
        tracing::info!(connection = %stored.id, refreshed, "grant imported");
        Ok(Imported {
            outcome: if existing.is_some() {
                ImportOutcome::Replaced
            } else {
                ImportOutcome::Created
            },
            connection_id: Some(stored.id),
            account: Some(stored.account),
            refreshed,
        })
    }

    /// Spends the refresh token once (recorded as spent first, whatever Kit answers) and reads
    /// the account with the new access token.
    async fn identify_by_refresh(
        &self,
        refresh_token: &RefreshToken,
        candidate: &ConnectionId,
    ) -> Result<(KitAccount, TokenSet), ImportError> {
        let inner = &self.inner;
        let now = inner.clock.now();
        let fingerprint = refresh_token.fingerprint();
        if !inner
            .store
            .record_spent(candidate, &fingerprint, now)
            .await?
        {
            // Another import (or a refresh) claimed this token since the check: it is spent.
            let connection = inner
                .store
                .spent_by(&fingerprint)
                .await?
                .unwrap_or_else(|| candidate.clone());
            return Err(ImportError::Spent { connection });
        }
        let response =
            inner
                .endpoint
                .refresh(refresh_token)
                .await
                .map_err(|error| match error {
                    EndpointError::InvalidGrant { description } => ImportError::Refused {
                        reason: format!("invalid_grant: {description}"),
                    },
                    EndpointError::InvalidClient { description } => {
                        ImportError::InvalidClient(description)
                    }
                    EndpointError::Transient { reason, .. } => ImportError::Unavailable(reason),
                    error @ EndpointError::Protocol { .. } => ImportError::Refused {
                        reason: error.to_string(),
                    },
                })?;
        let tokens = TokenSet::from_response(response, inner.clock.now(), None)?;
        match inner.endpoint.account(tokens.access()).await {
            Ok(account) => Ok((account, tokens)),
            Err(error) => {
                inner.revoke_orphan(&tokens, "a failed import").await;
                Err(ImportError::AccountAfterRefresh(error.to_string()))
            }
        }
    }
}
