//! The store port's sealed constructor: how a row read back from storage becomes a typed
//! connection or a pending install again, and only that way.
//!
//! A [`Restore`] is made only in this crate and handed to the store on each typed read (the
//! `…_with` methods of [`ConnectionStore`], which callers reach through [`ConnectionStoreExt`]);
//! the store spends it on the one value that read returns. No other code can turn data into an
//! `Authorized`, an `Unauthorized` or a `Pending`.

use std::future::Future;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::flow::{Authorized, Connection, Pending, Unauthorized};
use crate::ids::ConnectionId;
use crate::secret::{CsrfState, Sha256Hash};
use crate::store::{
    ConnectionRecord, ConnectionStore, Grant, LeaseOutcome, LeaseOwner, PendingRecord,
};

/// A connection as a store read it back, typed: what its grant allows next.
#[derive(Debug, PartialEq, Eq)]
pub enum StoredConnection {
    /// The grant works (its token may be due: observe it).
    Active(Connection<Authorized>),
    /// The grant ended.
    Ended(Connection<Unauthorized>),
}

/// The store port's sealed constructor: the one way data read from storage becomes a typed
/// connection or a pending install. Only this crate makes one, and hands it to the store on each
/// typed read; a store spends it on the one value that read returns.
#[derive(Debug)]
pub struct Restore(());

impl Restore {
    pub(crate) const fn new() -> Self {
        Self(())
    }

    /// The typed connection for a row this store just read.
    #[must_use]
    pub fn connection(self, record: &ConnectionRecord) -> StoredConnection {
        match &record.grant {
            Grant::Active(tokens) => {
                StoredConnection::Active(Connection::<Authorized>::from_stored(
                    record.id.clone(),
                    record.tenant.clone(),
                    record.account.clone(),
                    tokens.clone(),
                ))
            }
            Grant::Ended(reason) => {
                StoredConnection::Ended(Connection::<Unauthorized>::from_stored(
                    Some(record.id.clone()),
                    record.tenant.clone(),
                    Some(record.account.clone()),
                    reason.clone(),
                ))
            }
        }
    }

    /// A pending row this store just removed, as the one value that can resume the install.
    #[must_use]
    pub fn consumed(self, record: PendingRecord) -> ConsumedPending {
        ConsumedPending(Box::new(record))
    }
}

/// A pending install removed from storage: it becomes a [`Connection<Pending>`] once, given the
/// `state` that found it. Not `Clone`, and made only by [`Restore::consumed`].
#[derive(Debug, PartialEq, Eq)]
pub struct ConsumedPending(Box<PendingRecord>);

impl ConsumedPending {
    /// The stored row.
    #[must_use]
    pub fn record(&self) -> &PendingRecord {
        &self.0
    }

    /// The pending install again, given the `state` the callback carried.
    ///
    /// # Errors
    /// Gives itself back when `state` is not the one whose hash found this row.
    pub fn into_pending(self, state: CsrfState) -> Result<Connection<Pending>, Self> {
        if !state.fingerprint().ct_eq(&self.0.state_hash) {
            return Err(self);
        }
        let r = *self.0;
        Ok(Connection::<Pending>::from_stored(
            r.reinstall_of,
            r.tenant,
            state,
            r.verifier,
            r.kit_redirect,
            r.started_at,
            r.expires_at,
        ))
    }
}

/// The answer to [`ConnectionStore::consume_pending_with`].
#[derive(Debug, PartialEq, Eq)]
pub enum PendingTake {
    /// Removed: the browser that started the install brought it back.
    Taken(ConsumedPending),
    /// It exists, but another browser (or none) asked: left in place for the right one.
    OtherBrowser,
    /// No such pending install: never started, already consumed, or purged.
    Unknown,
}

impl PendingTake {
    /// The stored row, when it was taken.
    #[must_use]
    pub fn taken(self) -> Option<ConsumedPending> {
        match self {
            Self::Taken(consumed) => Some(consumed),
            Self::OtherBrowser | Self::Unknown => None,
        }
    }
}

/// The typed reads of every [`ConnectionStore`], each handing the store a fresh [`Restore`].
pub trait ConnectionStoreExt: ConnectionStore {
    /// See [`ConnectionStore::load_with`].
    fn load(
        &self,
        id: &ConnectionId,
    ) -> impl Future<Output = Result<Option<(ConnectionRecord, StoredConnection)>, StoreError>> + Send
    {
        self.load_with(id, Restore::new())
    }

    /// See [`ConnectionStore::acquire_lease_with`].
    fn acquire_lease(
        &self,
        id: &ConnectionId,
        owner: &LeaseOwner,
        now: Timestamp,
        ttl: Duration,
    ) -> impl Future<Output = Result<LeaseOutcome, StoreError>> + Send {
        self.acquire_lease_with(id, owner, now, ttl, Restore::new())
    }

    /// See [`ConnectionStore::consume_pending_with`].
    fn consume_pending(
        &self,
        state_hash: &Sha256Hash,
        browser_binding: Option<&Sha256Hash>,
    ) -> impl Future<Output = Result<PendingTake, StoreError>> + Send {
        self.consume_pending_with(state_hash, browser_binding, Restore::new())
    }
}

impl<T: ConnectionStore + ?Sized> ConnectionStoreExt for T {}
