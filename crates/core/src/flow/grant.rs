//! The grant half of the flow: `Authorized --observe--> Expired --refreshed--> Authorized`, and
//! the ends of a grant (`revoke`, `reauth_required`) back to `Unauthorized`.

use crate::clock::{Clock, Timestamp};
use crate::error::TokenError;
use crate::ids::{ConnectionId, TenantName};
use crate::secret::{AccessToken, RefreshToken, Sha256Hash};
use crate::token::{TokenResponse, TokenSet};

use super::{
    Authorized, Connection, Expired, Granted, HoldsGrant, KitAccount, Unauthorized,
    UnauthorizedReason,
};

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

/// A token response [`Connection::<Expired>::refreshed_with`] could not use.
#[derive(Debug)]
pub struct UnusableAnswer {
    /// Why.
    pub error: TokenError,
    /// The connection, still due, its refresh token as it was.
    pub connection: Connection<Expired>,
}

/// What, besides the token's own refresh margin, makes a grant due.
///
/// Public on purpose, `Scheduled` and `Replacing` included: the evidence for them is not the
/// core's to check (the row's schedule, Kit's 401 on an API call, an operator's force-refresh
/// all arrive in other crates), so any holder of a `Connection<Authorized>` may spend it into an
/// `Expired` on their word. That costs nothing the types promise: `observe_for` consumes the
/// `Authorized`, so one read still gives at most one `Expired`, and a refresh still needs the
/// store's fenced lease, so an early one is one extra call to Kit, never a lost or doubly spent
/// refresh token. What it cannot do is make a grant due without either the clock or a claim
/// about the exact access token it holds (`Replacing` is due only while the connection still
/// holds the refused token, so a stale claim after someone else refreshed is a no-op).
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

impl Due {
    /// Whether `tokens` are due at `now` on this evidence: the one copy of the rule, which
    /// [`Connection::<Authorized>::observe_for`] applies and a caller may consult on a row it
    /// read without taking the lease.
    #[must_use]
    pub fn holds(self, tokens: &TokenSet, now: Timestamp) -> bool {
        match self {
            Self::Margin => tokens.is_due(now),
            Self::Scheduled { next_refresh_at } => {
                tokens.is_due(now) || next_refresh_at.is_some_and(|at| now >= at)
            }
            Self::Replacing(refused) => tokens.access().fingerprint() == refused,
        }
    }
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
    /// An authorized connection as a store read it back: only [`crate::restore::Restore`] calls
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
        if due.holds(&self.state.0.tokens, clock.now()) {
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
    /// [`UnusableAnswer`]: why the response is unusable, with the connection unchanged.
    pub fn refreshed_with(
        self,
        response: TokenResponse,
        received_at: Timestamp,
    ) -> Result<Renewed, Box<UnusableAnswer>> {
        let kept = response
            .refresh_token
            .is_none()
            .then(|| self.state.0.tokens.refresh().clone());
        match TokenSet::from_response(response, received_at, kept) {
            Ok(tokens) => Ok(self.refreshed(tokens)),
            Err(error) => Err(Box::new(UnusableAnswer {
                error,
                connection: self,
            })),
        }
    }

    /// The refresh succeeded: the old tokens are dropped, the new ones take over.
    #[must_use]
    pub fn refreshed(self, tokens: TokenSet) -> Renewed {
        Renewed(Connection {
            state: Authorized(Granted {
                tokens,
                ..self.state.0
            }),
        })
    }
}

/// An `Authorized` connection that the refresh transition made, and only it: the evidence
/// [`crate::writes::Settled::Refreshed`] asks for, so that no other `Authorized` (an install's,
/// an import's) can be written as a refresh with its health reset to a success. It reads as the
/// connection it holds; [`Self::into_connection`] gives that up once it is committed.
#[derive(Debug)]
pub struct Renewed(Connection<Authorized>);

impl Renewed {
    /// The renewed connection, to hold after the commit.
    #[must_use]
    pub fn into_connection(self) -> Connection<Authorized> {
        self.0
    }
}

impl std::ops::Deref for Renewed {
    type Target = Connection<Authorized>;

    fn deref(&self) -> &Connection<Authorized> {
        &self.0
    }
}

impl Connection<Unauthorized> {
    /// An ended connection as a store read it back: only [`crate::restore::Restore`] calls this.
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
