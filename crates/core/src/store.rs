//! The storage port: what a `ConnectionStore` keeps, and the operations that make "exactly one
//! refresh, nothing lost" possible across processes.
//!
//! The contract, which every backend's conformance suite checks:
//! - [`ConnectionStore::put`] is a compare-and-swap on [`Version`]: a stale writer gets
//!   [`StoreError::Conflict`] and never overwrites newer tokens.
//! - [`ConnectionStore::upsert_installed`] is atomic on (tenant, Kit account): two concurrent
//!   installs of the same account for the same tenant end in one connection, one id.
//! - [`ConnectionStore::consume_pending_with`] returns a pending install at most once, ever,
//!   and only to the browser that started it: another browser's attempt leaves it in place.
//! - [`ConnectionStore::acquire_lease_with`] succeeds for one owner at a time across processes; a
//!   lease expires if its holder dies; every acquisition bumps a fencing counter, and
//!   [`ConnectionStore::commit_refresh`] / [`ConnectionStore::release_lease`] check owner and
//!   fence, so a holder whose lease was taken over cannot write.
//! - Expiry is never persisted as a state: it is derived from `expires_at` and a clock.
//!
//! A typed connection or pending install comes back from storage only through [`Restore`], the
//! sealed constructor this crate hands the store on each typed read (see [`crate::restore`]),
//! and every write takes a value a transition made (see [`crate::writes`]): a
//! [`ConnectionRecord`] is what a read returns, never what a write takes.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::any::StateName;
use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::event::Event;
use crate::flow::{Connection, KitAccount, Pending, Removed, UnauthorizedReason};
use crate::ids::{ConnectionId, KitAccountId, TenantName};
use crate::redirect::KitRedirect;
use crate::restore::{PendingTake, Restore, StoredConnection};
use crate::secret::{PkceVerifier, Sha256Hash};
use crate::token::TokenSet;
use crate::writes::{Installed, Settled};

/// A row's version for compare-and-swap; every successful write increments it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(pub u64);

impl Version {
    /// The version of a row that was just inserted.
    pub const INITIAL: Self = Self(1);

    /// The version after one more write.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// Whether the grant works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Tokens that work (or did until they expired: expiry is derived, not stored).
    Active(TokenSet),
    /// No tokens: revoked, or Kit refused the grant. Needs a reinstall.
    Ended(UnauthorizedReason),
}

/// The refresh bookkeeping of one connection: what stops retry storms and what the dashboard
/// shows as "last error".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshHealth {
    /// Consecutive failed refreshes (reset by a success).
    pub consecutive_failures: u32,
    /// No refresh is attempted before this instant, unless `early_retry_after` allows it.
    pub cooldown_until: Option<Timestamp>,
    /// When set, the cooldown may end early for a caller whose token has expired: once Kit has
    /// answered a refresh (of any connection) after this instant, Kit is back, and waiting out
    /// a backoff that grew during an outage would only prolong it. Unset when Kit asked for a
    /// `Retry-After`, and when the failure was itself such an early retry, so a connection that
    /// Kit keeps refusing on its own costs at most twice its cooldown schedule.
    pub early_retry_after: Option<Timestamp>,
    /// The last failure, without secrets.
    pub last_error: Option<String>,
    /// The last successful refresh.
    pub last_refresh_at: Option<Timestamp>,
}

/// One stored connection: a grant for one (tenant, Kit account).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The connection id.
    pub id: ConnectionId,
    /// The tenant (`None` for single-tenant apps; stored as the empty string so the unique
    /// index on (tenant, account) holds for it too).
    pub tenant: Option<TenantName>,
    /// The Kit account.
    pub account: KitAccount,
    /// The tokens, or why there are none.
    pub grant: Grant,
    /// Set by the store; ignored on insert.
    pub version: Version,
    /// Refresh bookkeeping.
    pub health: RefreshHealth,
    /// When the background refresher should renew the token (`None` for ended grants).
    pub next_refresh_at: Option<Timestamp>,
    /// When the connection was first installed.
    pub created_at: Timestamp,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

impl ConnectionRecord {
    /// The state name as the dashboard and the `state` column show it: `authorized` or
    /// `unauthorized` (expiry is derived from the clock, see [`TokenSet::is_due`]).
    #[must_use]
    pub fn state_name(&self) -> StateName {
        match self.grant {
            Grant::Active(_) => StateName::Authorized,
            Grant::Ended(_) => StateName::Unauthorized,
        }
    }
}

/// A pending install as stored: the `state` only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// SHA-256 of the `state` (the primary key).
    pub state_hash: Sha256Hash,
    /// The PKCE verifier (encrypted at rest by the store).
    pub verifier: PkceVerifier,
    /// Where to send the browser back to.
    pub kit_redirect: KitRedirect,
    /// The tenant.
    pub tenant: Option<TenantName>,
    /// The connection being reinstalled, if any.
    pub reinstall_of: Option<ConnectionId>,
    /// SHA-256 of the browser-binding cookie value.
    pub browser_binding: Sha256Hash,
    /// When the install started.
    pub started_at: Timestamp,
    /// When it dies.
    pub expires_at: Timestamp,
}

impl PendingRecord {
    /// The stored form of a pending install bound to a browser.
    #[must_use]
    pub fn new(pending: &Connection<Pending>, browser_binding: Sha256Hash) -> Self {
        Self {
            state_hash: pending.csrf_state().fingerprint(),
            verifier: pending.verifier().clone(),
            kit_redirect: pending.kit_redirect().clone(),
            tenant: pending.tenant().cloned(),
            reinstall_of: pending.reinstall_of().cloned(),
            browser_binding,
            started_at: pending.started_at(),
            expires_at: pending.deadline(),
        }
    }
}

/// Who holds a refresh lease: an instance id plus anything that tells its workers apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LeaseOwner(pub String);

/// A refresh "in flight": recorded before the refresh token is sent, so the next lease holder
/// knows that token may already be spent at Kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFlight {
    /// SHA-256 of the refresh token that was sent.
    pub refresh_token: Sha256Hash,
    /// When it was sent.
    pub started_at: Timestamp,
}

/// The right to refresh one connection, until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The connection.
    pub connection: ConnectionId,
    /// The holder.
    pub owner: LeaseOwner,
    /// Incremented on every acquisition; writes under a lease check it.
    pub fence: u64,
    /// When the lease lapses if not released.
    pub until: Timestamp,
}

/// The answer to [`ConnectionStore::acquire_lease_with`].
#[derive(Debug, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// Ours, with the row as it was at acquisition (no second read needed) and the previous
    /// holder's unfinished refresh, if it died mid-flight.
    Acquired {
        /// The lease.
        lease: Lease,
        /// The row at acquisition.
        record: Box<ConnectionRecord>,
        /// The same row, typed (through [`Restore`]): what the lease holder may do with it.
        connection: Box<StoredConnection>,
        /// A refresh the previous holder started and never committed.
        previous_in_flight: Option<InFlight>,
    },
    /// Someone else holds it until `until`.
    Held {
        /// The holder.
        owner: LeaseOwner,
        /// When their lease lapses.
        until: Timestamp,
    },
}

/// Which connections to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only this tenant (`Some(None)` = only single-tenant connections).
    pub tenant: Option<Option<TenantName>>,
    /// Only active (`Authorized`) or only ended (`Unauthorized`) grants.
    pub state: Option<StateName>,
    /// Cursor: ids strictly after this one (ordered by id).
    pub after: Option<ConnectionId>,
    /// At most this many (the store may cap it).
    pub limit: u32,
}

/// Durable storage of connections, pending installs, leases and events.
///
/// See the module documentation for the contract. Futures are `Send` so that callers can
/// spawn them; see [`crate::ports`] for why the traits return `impl Future`.
pub trait ConnectionStore: Send + Sync {
    /// One connection.
    fn get(
        &self,
        id: &ConnectionId,
    ) -> impl Future<Output = Result<Option<ConnectionRecord>, StoreError>> + Send;

    /// The connection for (tenant, account), if any.
    fn find_by_account(
        &self,
        tenant: Option<&TenantName>,
        account: &KitAccountId,
    ) -> impl Future<Output = Result<Option<ConnectionRecord>, StoreError>> + Send;

    /// Stores a completed install atomically: inserts the [`Installed`] connection's row, or —
    /// when (tenant, account) is already connected — replaces that row's account details,
    /// grant and health, keeps its id and `created_at`, and bumps its version. Returns the row
    /// as stored.
    fn upsert_installed(
        &self,
        installed: &Installed<'_>,
    ) -> impl Future<Output = Result<ConnectionRecord, StoreError>> + Send;

    /// Compare-and-swap outside the refresh lease: writes what the flow made of the grant
    /// ([`Settled`]: `revoke`, `reauth_required`, or a refresh whose lease lapsed after Kit had
    /// rotated) only if the row is still at `expected`. Returns the new version.
    fn put(
        &self,
        settled: &Settled<'_>,
        expected: Version,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Removes the connection the flow [`Removed`] (and its lease). `false` if it did not
    /// exist — or, for the removal of an ended connection, if it is no longer ended: a
    /// reinstall that landed since holds a live grant, which must be revoked first.
    fn delete(&self, removed: &Removed) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A page of connections ordered by id.
    fn list(
        &self,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<ConnectionRecord>, StoreError>> + Send;

    /// Active connections whose `next_refresh_at <= now`, not cooling down, not leased,
    /// earliest first, using the index on `next_refresh_at`.
    fn list_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ConnectionId>, StoreError>> + Send;

    /// Stores a pending install.
    fn insert_pending(
        &self,
        pending: &PendingRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes and returns the pending install with this `state` hash — at most once, ever,
    /// even under concurrent callers — in the same atomic step that checks it was started by
    /// the browser whose binding hash is `browser_binding`. Another browser (or `None`) gets
    /// [`PendingTake::OtherBrowser`] and the row stays for the right one. Expired rows are
    /// returned too (and removed), so the caller can say "expired" rather than "unknown".
    /// Callers use [`crate::restore::ConnectionStoreExt::consume_pending`]; `restore` makes the returned value.
    fn consume_pending_with(
        &self,
        state_hash: &Sha256Hash,
        browser_binding: Option<&Sha256Hash>,
        restore: Restore,
    ) -> impl Future<Output = Result<PendingTake, StoreError>> + Send;

    /// Deletes pending installs that expired before `now`; returns how many.
    fn purge_expired_pending(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Takes the refresh lease if nobody holds it or the holder's lease lapsed; `restore`
    /// types the row it returns. Callers use [`crate::restore::ConnectionStoreExt::acquire_lease`].
    fn acquire_lease_with(
        &self,
        id: &ConnectionId,
        owner: &LeaseOwner,
        now: Timestamp,
        ttl: Duration,
        restore: Restore,
    ) -> impl Future<Output = Result<LeaseOutcome, StoreError>> + Send;

    /// One connection with its typed form (through `restore`). Callers use
    /// [`crate::restore::ConnectionStoreExt::load`].
    fn load_with(
        &self,
        id: &ConnectionId,
        restore: Restore,
    ) -> impl Future<Output = Result<Option<(ConnectionRecord, StoredConnection)>, StoreError>> + Send;

    /// Records, under the lease, the refresh token about to be sent.
    ///
    /// [`StoreError::LeaseLost`] when the lease is no longer ours.
    fn mark_in_flight(
        &self,
        lease: &Lease,
        in_flight: &InFlight,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Extends the lease to `now + ttl` while its holder's call to Kit is still running (the
    /// heartbeat that lets leases be short). `Ok(false)` when the lease is no longer ours: it
    /// lapsed and another holder took it, whose fence now refuses our writes.
    fn renew_lease(
        &self,
        lease: &Lease,
        now: Timestamp,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Writes what the flow made of the grant under the lease ([`Settled`]: the
    /// `Connection<Authorized>` a refresh returned, or the `Connection<Unauthorized>` of a
    /// confirmed `invalid_grant`) and releases the lease in one atomic step, only if the lease
    /// is still ours (owner and fence) and the row is still at `expected`.
    ///
    /// [`StoreError::LeaseLost`] or [`StoreError::Conflict`] otherwise.
    fn commit_refresh(
        &self,
        lease: &Lease,
        settled: &Settled<'_>,
        expected: Version,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send;

    /// Releases the lease without new tokens (the refresh failed), recording `health` when
    /// given and clearing the in-flight mark only when `refresh_token_unspent` says the token
    /// never reached the server. A lease that is no longer ours is left alone (`Ok(false)`).
    fn release_lease(
        &self,
        lease: &Lease,
        health: Option<&RefreshHealth>,
        refresh_token_unspent: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Waits until the row's version differs from `seen`, its lease is released, or `timeout`
    /// passes — whichever is first. PostgreSQL listens for a notification; SQLite polls within
    /// a bounded interval. Returns without error on timeout: callers re-read either way.
    fn wait_for_change(
        &self,
        id: &ConnectionId,
        seen: Version,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends an event to the audit trail.
    fn append_event(&self, event: &Event) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes at most `limit` audit-trail events older than `before`, oldest first; returns
    /// how many. Bounded so that retention never holds a long lock on a busy table.
    fn purge_events_before(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
