//! The install and refresh flow as types: one connection's whole life.
//!
//! A [`Connection<S>`] moves between states by consuming itself, so a transition the protocol
//! forbids does not compile: there is no access token on a `Pending` connection, no refresh of
//! an `Unauthorized` one, and a callback can be applied to a pending install only once.
//!
//! ```text
//! Unauthorized --begin(install)--> Pending --callback(code)--> CodeGrant --authorize--> Authorized
//! Pending --callback: denied / forged / past PENDING_TTL--> Unauthorized
//! CodeGrant --fail (exchange or account lookup failed)--> Unauthorized
//! Unauthorized --import (a grant made outside, proven live at Kit)--> Authorized
//! Authorized --observe_for(Due): margin, schedule passed, or Kit refused it--> Expired
//! Expired --refreshed_with(Kit's answer)--> Authorized
//! Expired --reauth_required (invalid_grant confirmed)--> Unauthorized (needs reinstall)
//! Authorized --revoke (Kit confirmed) / reauth_required (a 401 confirmed)--> Unauthorized
//! ```
//!
//! One connection's life, and where each step is:
//! 1. **Install** (`flow/install.rs`): [`Connection::<Unauthorized>::begin`] makes a `Pending` with a
//!    fresh `state` and PKCE verifier; the store keeps it as a row bound to the browser. Kit's
//!    callback is applied to the `Pending` the store gives back when *that* browser consumes
//!    the row ([`crate::restore::ConsumedPending::into_pending`]); [`Connection::<Pending>::callback`]
//!    checks the `state` and the deadline (install expiry is this check) and yields a
//!    [`CodeGrant`], which [`CodeGrant::authorize`] turns into `Authorized` once Kit has
//!    exchanged the code. The manager stores it as a [`crate::writes::Installed`].
//! 2. **Refresh** (`flow/grant.rs`): every read of the row under the refresh lease comes back typed
//!    ([`crate::restore::Restore`]); [`Connection::<Authorized>::observe_for`] spends it into
//!    `Expired` only on evidence ([`Due`]); [`Connection::<Expired>::refreshed_with`] applies
//!    Kit's answer, and the manager commits the `Authorized` it returns as a
//!    [`crate::writes::Settled::Refreshed`].
//! 3. **End**: `invalid_grant` (once no one else rotated the token) is
//!    [`Connection::reauth_required`] on the `Expired` that was sent; a 401 "revoked/invalid"
//!    confirmed on the stored token is `reauth_required` on the `Authorized` read back; an
//!    uninstall is [`Connection::revoke`] after Kit confirmed it. The manager writes the
//!    `Unauthorized` they return as a [`crate::writes::Settled::Ended`].
//! 4. **Removal** (`flow/removal.rs`): [`Connection::<Unauthorized>::remove`] after `revoke`
//!    (or, forced, [`Connection::<Authorized>::remove_unrevoked`] without Kit: an audit event
//!    says so) makes the [`Removed`] the store deletes by; a reinstall begins from the
//!    `Unauthorized`, remembering the id it replaces.
//!
//! No state is `Clone` or `Deserialize`, and only the store port is handed the constructor that
//! types a stored row ([`crate::restore::Restore`]), so the only way to a second `Expired` or
//! `Pending` is a second read of the store — which the store's fenced lease and single
//! consumption arbitrate across processes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{ConnectionId, KitAccountId, TenantName};
use crate::redirect::KitRedirect;
use crate::secret::{CsrfState, PkceVerifier};
use crate::token::TokenSet;

mod grant;
mod import;
mod install;
mod removal;

pub use grant::{Due, Freshness, Renewed, TokenDue, UnusableAnswer};
pub use install::{CallbackRejected, CodeGrant};
pub use removal::Removed;

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
/// the stored row ([`crate::restore::ConsumedPending::into_pending`]).
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
