//! The install and refresh flow as types.
//!
//! A [`Connection<S>`] moves between states by consuming itself, so a transition the protocol
//! forbids does not compile: there is no access token on a `Pending` connection, no refresh of
//! an `Unauthorized` one, and a callback can be applied to a pending install only once.
//!
//! ```text
//! Unauthorized --begin(install)--> Pending --callback(code) + authorize(tokens)--> Authorized
//! Pending --callback: denied / forged / past PENDING_TTL--> Unauthorized
//! Authorized --observe: clock in the refresh margin, schedule passed, or Kit refused it--> Expired
//! Expired --refreshed(tokens)--> Authorized
//! Expired --reauth_required (invalid_grant confirmed)--> Unauthorized (needs reinstall)
//! Authorized / Expired --revoke / reauth_required / removed--> Unauthorized
//! ```
//!
//! Every row the store writes is made from one of these values (see [`crate::store::Grant`]),
//! and every value read back from storage is rebuilt by the store through
//! [`crate::store::Restore`], the sealed constructor only the store port is handed. No state is
//! `Clone` or `Deserialize`, so the only way to a second `Expired` or `Pending` is a second read
//! of the store, which the store's lease and single consumption arbitrate across processes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::callback::Callback;
use crate::clock::{Clock, Timestamp};
use crate::error::CallbackError;
use crate::error::TokenError;
use crate::ids::{ConnectionId, KitAccountId, TenantName};
use crate::redirect::KitRedirect;
use crate::secret::{
    AccessToken, AuthorizationCode, CsrfState, PkceVerifier, RefreshToken, Sha256Hash,
};
use crate::token::{TokenResponse, TokenSet};

/// How long an install may take from `begin` to the callback.
pub const PENDING_TTL: Duration = Duration::from_secs(10 * 60);

/// The Kit account behind a grant, from `GET /v4/account`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KitAccount {
    /// `account.id`: what a connection is keyed by (with the tenant name).
    pub id: KitAccountId,
    /// `account.name`.
    pub name: String,
    /// `account.primary_email_address`.
    pub primary_email: Option<String>,
}

/// One grant, in the state `S`.
///
/// Neither `Clone` nor `Deserialize`: a value is made by a transition or by the store's sealed
/// constructor, and a transition consumes it, so a pending install cannot be completed twice
/// and a due grant cannot be refreshed twice.
#[derive(Debug, PartialEq, Eq)]
pub struct Connection<S> {
    state: S,
}

/// Why a connection has no usable grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnauthorizedReason {
    /// Never installed.
    NotInstalled,
    /// The person refused consent.
    Denied,
    /// The install was not completed within [`PENDING_TTL`].
    InstallExpired,
    /// The callback was refused (forged state, provider error, failed exchange).
    InstallFailed {
        /// What went wrong, without secrets.
        detail: String,
    },
    /// Kit no longer accepts the grant (`invalid_grant` confirmed, or a 401 invalid/revoked).
    ReauthRequired {
        /// What Kit said, without secrets.
        detail: String,
    },
    /// The app revoked the grant (uninstall).
    Revoked,
}

/// No usable grant: a fresh install, or a connection that needs reinstalling.
#[derive(Debug, PartialEq, Eq)]
pub struct Unauthorized {
    id: Option<ConnectionId>,
    tenant: Option<TenantName>,
    account: Option<KitAccount>,
    reason: UnauthorizedReason,
}

/// An install in progress: waiting for Kit's callback.
///
/// Not `Clone`: a pending install takes one callback. Read back from storage only by consuming
/// the stored row ([`crate::store::ConsumedPending::into_pending`]).
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    reinstall_of: Option<ConnectionId>,
    tenant: Option<TenantName>,
    state: CsrfState,
    verifier: PkceVerifier,
    kit_redirect: KitRedirect,
    started_at: Timestamp,
    deadline: Timestamp,
}

/// What a connection with a grant holds, whether its token is fresh or due.
#[derive(Debug, PartialEq, Eq)]
pub struct Granted {
    id: ConnectionId,
    tenant: Option<TenantName>,
    account: KitAccount,
    tokens: TokenSet,
}

/// A working grant whose access token was fresh when last observed.
///
/// Not `Clone`: [`Connection::<Authorized>::observe`] spends it into at most one [`Expired`].
#[derive(Debug, PartialEq, Eq)]
pub struct Authorized(Granted);

/// A grant that is **due**: its access token is inside its refresh margin or already past its
/// expiry (the type does not tell the two apart: either way it must be refreshed before its
/// access token is handed out again), or the background schedule's point before the margin has
/// passed, or Kit refused the access token it holds. Reached only through
/// [`Connection::<Authorized>::observe`] with that evidence.
///
/// Not `Clone`: its refresh token is spent by one [`Connection::<Expired>::refreshed`].
#[derive(Debug, PartialEq, Eq)]
pub struct Expired(Granted);

/// The states that hold a grant (sealed: only [`Authorized`] and [`Expired`]; what they share
/// is reached through the sealed supertrait, which no other crate can name or implement).
pub trait HoldsGrant: sealed::Sealed {}

mod sealed {
    use super::Granted;

    pub trait Sealed {
        fn granted(&self) -> &Granted;
        fn into_granted(self) -> Granted;
    }

    impl Sealed for super::Authorized {
        fn granted(&self) -> &Granted {
            &self.0
        }
        fn into_granted(self) -> Granted {
            self.0
        }
    }

    impl Sealed for super::Expired {
        fn granted(&self) -> &Granted {
            &self.0
        }
        fn into_granted(self) -> Granted {
            self.0
        }
    }
}

impl HoldsGrant for Authorized {}
impl HoldsGrant for Expired {}

/// What every state with a grant offers, fresh or due.
impl<S: HoldsGrant> Connection<S> {
    /// The connection id.
    #[must_use]
    pub fn id(&self) -> &ConnectionId {
        &self.state.granted().id
    }

    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> Option<&TenantName> {
        self.state.granted().tenant.as_ref()
    }

    /// The Kit account.
    #[must_use]
    pub fn account(&self) -> &KitAccount {
        &self.state.granted().account
    }

    /// The tokens (possibly stale; the refresh token is needed to revoke at Kit).
    #[must_use]
    pub fn tokens(&self) -> &TokenSet {
        &self.state.granted().tokens
    }

    /// The grant was revoked at Kit (by the app, or the creator uninstalled it).
    #[must_use]
    pub fn revoke(self) -> Connection<Unauthorized> {
        self.end(UnauthorizedReason::Revoked)
    }

    /// Kit no longer accepts the grant (a 401 invalid/revoked, or `invalid_grant` confirmed by
    /// re-reading storage): the creator must reinstall.
    #[must_use]
    pub fn reauth_required(self, detail: String) -> Connection<Unauthorized> {
        self.end(UnauthorizedReason::ReauthRequired { detail })
    }

    fn end(self, reason: UnauthorizedReason) -> Connection<Unauthorized> {
        let granted = self.state.into_granted();
        Connection {
            state: Unauthorized {
                id: Some(granted.id),
                tenant: granted.tenant,
                account: Some(granted.account),
                reason,
            },
        }
    }
}

/// What `begin` needs to start an install.
#[derive(Debug, Clone)]
pub struct InstallStart {
    /// A fresh `state` ([`CsrfState::generate`]).
    pub state: CsrfState,
    /// A fresh PKCE verifier ([`PkceVerifier::generate`]).
    pub verifier: PkceVerifier,
    /// The validated Kit `redirect` to return to at the end.
    pub kit_redirect: KitRedirect,
}

impl<S> Connection<S> {
    /// The state's data.
    pub fn state(&self) -> &S {
        &self.state
    }
}

impl Connection<Unauthorized> {
    /// A connection that was never installed, for `tenant` (`None` for single-tenant apps).
    #[must_use]
    pub fn new(tenant: Option<TenantName>) -> Self {
        Self {
            state: Unauthorized {
                id: None,
                tenant,
                account: None,
                reason: UnauthorizedReason::NotInstalled,
            },
        }
    }

    /// Starts an install: the returned `Pending` holds the secrets of this attempt and dies
    /// after [`PENDING_TTL`].
    #[must_use]
    pub fn begin(self, start: InstallStart, clock: &(impl Clock + ?Sized)) -> Connection<Pending> {
        let now = clock.now();
        Connection {
            state: Pending {
                reinstall_of: self.state.id,
                tenant: self.state.tenant,
                state: start.state,
                verifier: start.verifier,
                kit_redirect: start.kit_redirect,
                started_at: now,
                deadline: now.saturating_add(PENDING_TTL),
            },
        }
    }

    /// The connection id, when this connection was installed before.
    #[must_use]
    pub fn id(&self) -> Option<&ConnectionId> {
        self.state.id.as_ref()
    }

    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> Option<&TenantName> {
        self.state.tenant.as_ref()
    }

    /// The account, when one was ever connected.
    #[must_use]
    pub fn account(&self) -> Option<&KitAccount> {
        self.state.account.as_ref()
    }

    /// Why there is no grant.
    #[must_use]
    pub fn reason(&self) -> &UnauthorizedReason {
        &self.state.reason
    }
}

impl Connection<Pending> {
    /// Applies Kit's callback. Consumes the pending install whatever the outcome: a `state` is
    /// good for one callback only.
    ///
    /// # Errors
    /// [`CallbackRejected`] with the reason ([`CallbackError::StateMismatch`],
    /// [`CallbackError::Expired`], [`CallbackError::AccessDenied`], [`CallbackError::Provider`])
    /// and the connection, now `Unauthorized`.
    pub fn callback(
        self,
        callback: Callback,
        clock: &(impl Clock + ?Sized),
    ) -> Result<CodeGrant, Box<CallbackRejected>> {
        let expired = clock.now() >= self.state.deadline;
        let state_matches = callback.state() == Some(&self.state.state);
        let reject = |pending: Self, error: CallbackError, reason| {
            Box::new(CallbackRejected {
                error,
                connection: pending.into_unauthorized(reason),
            })
        };
        if !state_matches {
            let detail = CallbackError::StateMismatch.to_string();
            return Err(reject(
                self,
                CallbackError::StateMismatch,
                UnauthorizedReason::InstallFailed { detail },
            ));
        }
        if expired {
            return Err(reject(
                self,
                CallbackError::Expired,
                UnauthorizedReason::InstallExpired,
            ));
        }
        match callback {
            Callback::Code { code, .. } => Ok(CodeGrant {
                pending: self.state,
                code,
            }),
            Callback::Error {
                error, description, ..
            } if error == "access_denied" => Err(reject(
                self,
                CallbackError::AccessDenied { description },
                UnauthorizedReason::Denied,
            )),
            Callback::Error {
                error, description, ..
            } => {
                let err = CallbackError::Provider { error, description };
                let detail = err.to_string();
                Err(reject(
                    self,
                    err,
                    UnauthorizedReason::InstallFailed { detail },
                ))
            }
        }
    }

    /// The `state` to send on the authorize request.
    #[must_use]
    pub fn csrf_state(&self) -> &CsrfState {
        &self.state.state
    }

    /// The PKCE verifier (its challenge goes on the authorize request).
    #[must_use]
    pub fn verifier(&self) -> &PkceVerifier {
        &self.state.verifier
    }

    /// Where to send the browser back to on Kit.
    #[must_use]
    pub fn kit_redirect(&self) -> &KitRedirect {
        &self.state.kit_redirect
    }

    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> Option<&TenantName> {
        self.state.tenant.as_ref()
    }

    /// The connection this install replaces, when it is a reinstall.
    #[must_use]
    pub fn reinstall_of(&self) -> Option<&ConnectionId> {
        self.state.reinstall_of.as_ref()
    }

    /// When the install started.
    #[must_use]
    pub fn started_at(&self) -> Timestamp {
        self.state.started_at
    }

    /// After this instant the callback is refused.
    #[must_use]
    pub fn deadline(&self) -> Timestamp {
        self.state.deadline
    }

    /// Rebuilds a pending install from its stored row and the `state` the callback carried;
    /// only [`crate::store::ConsumedPending::into_pending`] calls it, once per consumed row.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn from_stored(
        reinstall_of: Option<ConnectionId>,
        tenant: Option<TenantName>,
        state: CsrfState,
        verifier: PkceVerifier,
        kit_redirect: KitRedirect,
        started_at: Timestamp,
        deadline: Timestamp,
    ) -> Self {
        Self {
            state: Pending {
                reinstall_of,
                tenant,
                state,
                verifier,
                kit_redirect,
                started_at,
                deadline,
            },
        }
    }

    fn into_unauthorized(self, reason: UnauthorizedReason) -> Connection<Unauthorized> {
        Connection {
            state: Unauthorized {
                id: self.state.reinstall_of,
                tenant: self.state.tenant,
                account: None,
                reason,
            },
        }
    }
}

/// A callback that was refused; the pending install is gone.
#[derive(Debug)]
pub struct CallbackRejected {
    /// Why.
    pub error: CallbackError,
    /// The connection, back to `Unauthorized`.
    pub connection: Connection<Unauthorized>,
}

/// A verified callback: the code and verifier to exchange, exactly once.
///
/// Not `Clone`: [`CodeGrant::authorize`] and [`CodeGrant::fail`] consume it, so a code cannot be
/// turned into two connections.
#[derive(Debug)]
pub struct CodeGrant {
    pending: Pending,
    code: AuthorizationCode,
}

impl CodeGrant {
    /// The authorization code to redeem.
    #[must_use]
    pub fn code(&self) -> &AuthorizationCode {
        &self.code
    }

    /// The PKCE verifier to send with it.
    #[must_use]
    pub fn verifier(&self) -> &PkceVerifier {
        &self.pending.verifier
    }

    /// Where to send the browser back to on Kit.
    #[must_use]
    pub fn kit_redirect(&self) -> &KitRedirect {
        &self.pending.kit_redirect
    }

    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> Option<&TenantName> {
        self.pending.tenant.as_ref()
    }

    /// The connection this install replaces, when it is a reinstall.
    #[must_use]
    pub fn reinstall_of(&self) -> Option<&ConnectionId> {
        self.pending.reinstall_of.as_ref()
    }

    /// Completes the install with the exchanged tokens and the account they belong to.
    ///
    /// `id` is the existing connection's id when this (tenant, account) is already connected —
    /// a reinstall replaces the tokens and keeps the id — or a fresh one.
    #[must_use]
    pub fn authorize(
        self,
        id: ConnectionId,
        account: KitAccount,
        tokens: TokenSet,
    ) -> Connection<Authorized> {
        Connection {
            state: Authorized(Granted {
                id,
                tenant: self.pending.tenant,
                account,
                tokens,
            }),
        }
    }

    /// The exchange (or the account lookup) failed: the install is over.
    #[must_use]
    pub fn fail(self, detail: String) -> Connection<Unauthorized> {
        Connection {
            state: Unauthorized {
                id: self.pending.reinstall_of,
                tenant: self.pending.tenant,
                account: None,
                reason: UnauthorizedReason::InstallFailed { detail },
            },
        }
    }
}

/// What, besides the token's own refresh margin, makes a grant due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Only the refresh margin, by the clock.
    Margin,
    /// The background schedule: due in the margin, or once `next_refresh_at` (a jittered
    /// instant before the margin) has passed.
    Scheduled {
        /// The row's scheduled refresh.
        next_refresh_at: Option<Timestamp>,
    },
    /// Kit refused the access token with this fingerprint (or an operator asked to replace
    /// it): due exactly when the connection still holds that token, whatever the clock says —
    /// Kit's word overrides ours.
    Replacing(Sha256Hash),
}

/// The result of looking at an authorized connection's token at an instant.
#[derive(Debug)]
pub enum Freshness {
    /// Outside the refresh margin: the access token may be handed out.
    Fresh(Connection<Authorized>),
    /// Inside the refresh margin or past expiry: refresh first.
    Due(Connection<Expired>),
}

/// The access token was requested at or after the instant the token became due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the access token is due for refresh (since {due_at})")]
pub struct TokenDue {
    /// When it became due.
    pub due_at: Timestamp,
}

impl Connection<Authorized> {
    /// An authorized connection as a store read it back: only [`crate::store::Restore`] calls
    /// this.
    pub(crate) fn from_stored(
        id: ConnectionId,
        tenant: Option<TenantName>,
        account: KitAccount,
        tokens: TokenSet,
    ) -> Self {
        Self {
            state: Authorized(Granted {
                id,
                tenant,
                account,
                tokens,
            }),
        }
    }

    /// Decides, at the clock's instant, whether the token may still be handed out: it is due
    /// once it enters its refresh margin.
    #[must_use]
    pub fn observe(self, clock: &(impl Clock + ?Sized)) -> Freshness {
        self.observe_for(Due::Margin, clock)
    }

    /// As [`Self::observe`], with the evidence that may make a grant due before its margin:
    /// the background schedule, or Kit's refusal of the access token this connection holds.
    /// The one way into [`Expired`]; it consumes the connection, so one `Authorized` gives at
    /// most one `Expired`.
    #[must_use]
    pub fn observe_for(self, due: Due, clock: &(impl Clock + ?Sized)) -> Freshness {
        let now = clock.now();
        let tokens = &self.state.0.tokens;
        let is_due = match due {
            Due::Margin => tokens.is_due(now),
            Due::Scheduled { next_refresh_at } => {
                tokens.is_due(now) || next_refresh_at.is_some_and(|at| now >= at)
            }
            Due::Replacing(refused) => tokens.access().fingerprint() == refused,
        };
        if is_due {
            Freshness::Due(Connection {
                state: Expired(self.state.0),
            })
        } else {
            Freshness::Fresh(self)
        }
    }

    /// The access token, if it is not due for refresh at the clock's instant.
    ///
    /// # Errors
    /// [`TokenDue`] when the token is inside its refresh margin: call [`Self::observe`] and
    /// refresh.
    pub fn access_token(&self, clock: &(impl Clock + ?Sized)) -> Result<&AccessToken, TokenDue> {
        let tokens = &self.state.0.tokens;
        if tokens.is_due(clock.now()) {
            Err(TokenDue {
                due_at: tokens.due_at(),
            })
        } else {
            Ok(tokens.access())
        }
    }
}

impl Connection<Expired> {
    /// The refresh token to send. After [`Self::refreshed`] it is spent and no longer reachable.
    #[must_use]
    pub fn refresh_token(&self) -> &RefreshToken {
        self.state.0.tokens.refresh()
    }

    /// Applies Kit's answer to the refresh: a usable token response makes the authorized
    /// connection to commit (keeping the spent refresh token only when the server did not
    /// rotate it — Kit always rotates); an unusable one gives the connection back unchanged.
    ///
    /// # Errors
    /// The [`TokenError`] that makes the response unusable, with the connection.
    pub fn refreshed_with(
        self,
        response: TokenResponse,
        received_at: Timestamp,
    ) -> Result<Connection<Authorized>, (TokenError, Self)> {
        let kept = response
            .refresh_token
            .is_none()
            .then(|| self.state.0.tokens.refresh().clone());
        match TokenSet::from_response(response, received_at, kept) {
            Ok(tokens) => Ok(self.refreshed(tokens)),
            Err(error) => Err((error, self)),
        }
    }

    /// The refresh succeeded: the old tokens are dropped, the new ones take over.
    #[must_use]
    pub fn refreshed(self, tokens: TokenSet) -> Connection<Authorized> {
        Connection {
            state: Authorized(Granted {
                tokens,
                ..self.state.0
            }),
        }
    }
}

impl Connection<Unauthorized> {
    /// An ended connection as a store read it back: only [`crate::store::Restore`] calls this.
    pub(crate) fn from_stored(
        id: Option<ConnectionId>,
        tenant: Option<TenantName>,
        account: Option<KitAccount>,
        reason: UnauthorizedReason,
    ) -> Self {
        Self {
            state: Unauthorized {
                id,
                tenant,
                account,
                reason,
            },
        }
    }
}
