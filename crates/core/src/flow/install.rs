//! The install half of the flow: `Unauthorized --begin--> Pending --callback--> CodeGrant
//! --authorize--> Authorized` (or back to `Unauthorized`: denied, forged, past the deadline, a
//! failed exchange).

use crate::callback::Callback;
use crate::clock::{Clock, Timestamp};
use crate::error::CallbackError;
use crate::ids::{ConnectionId, TenantName};
use crate::redirect::KitRedirect;
use crate::secret::{AuthorizationCode, CsrfState, PkceVerifier};
use crate::token::TokenSet;

use super::{
    Authorized, Connection, Granted, InstallStart, KitAccount, PENDING_TTL, Pending, Unauthorized,
    UnauthorizedReason,
};

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
    /// only [`crate::restore::ConsumedPending::into_pending`] calls it, once per consumed row.
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
