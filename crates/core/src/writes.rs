//! What the store port's writes take: only values the flow's transitions made.
//!
//! [`ConnectionRecord`] is the *read* shape (plain data, every field public, for listing and
//! the dashboard). No write of [`ConnectionStore`] accepts one: an install commits an
//! [`Installed`], made from the `Connection<Authorized>` that `CodeGrant::authorize` or
//! `Connection::<Unauthorized>::import` returned; every later change of a row is a [`Settled`],
//! made from the `Connection<Authorized>` a refresh returned or the `Connection<Unauthorized>`
//! that `revoke`/`reauth_required` returned; a deletion takes the [`Removed`] that the flow's
//! removal transition returned. So the rows a store holds are the states the flow made, and
//! what each one looks like (health reset on a refresh, no schedule once ended) is written once,
//! here.
//!
//! [`ConnectionStore`]: crate::store::ConnectionStore
//! [`Removed`]: crate::flow::Removed

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::flow::{Authorized, Connection, KitAccount, Renewed, Unauthorized};
use crate::ids::ConnectionId;
use crate::store::{ConnectionRecord, Grant, RefreshHealth, Version};

/// A completed install (or import), for [`crate::store::ConnectionStore::upsert_installed`]:
/// made only from the `Connection<Authorized>` the flow returned.
#[derive(Debug)]
pub struct Installed<'a> {
    connection: &'a Connection<Authorized>,
    next_refresh_at: Timestamp,
    at: Timestamp,
}

impl<'a> Installed<'a> {
    /// The install of `connection` at `at`, its first background refresh at `next_refresh_at`.
    #[must_use]
    pub const fn new(
        connection: &'a Connection<Authorized>,
        next_refresh_at: Timestamp,
        at: Timestamp,
    ) -> Self {
        Self {
            connection,
            next_refresh_at,
            at,
        }
    }

    /// The connection the flow authorized.
    #[must_use]
    pub const fn connection(&self) -> &'a Connection<Authorized> {
        self.connection
    }

    /// The row to insert: the grant, fresh refresh health, version [`Version::INITIAL`]. A
    /// store that finds (tenant, account) already connected keeps that row's id, `created_at`
    /// and version count instead (see `upsert_installed`).
    #[must_use]
    pub fn row(&self) -> ConnectionRecord {
        let c = self.connection;
        ConnectionRecord {
            id: c.id().clone(),
            tenant: c.tenant().cloned(),
            account: c.account().clone(),
            grant: Grant::Active(c.tokens().clone()),
            version: Version::INITIAL,
            health: RefreshHealth::default(),
            next_refresh_at: Some(self.next_refresh_at),
            created_at: self.at,
            updated_at: self.at,
        }
    }
}

/// What the flow made of a stored grant, for [`crate::store::ConnectionStore::commit_refresh`]
/// (under the lease) and [`crate::store::ConnectionStore::put`] (compare-and-swap): only a
/// transition's result can be written.
#[derive(Debug)]
pub enum Settled<'a> {
    /// [`Connection::<crate::flow::Expired>::refreshed_with`] returned this: new tokens, the
    /// refresh health reset to a success at `at`.
    Refreshed {
        /// The renewed connection (only the refresh transition makes a [`Renewed`]).
        connection: &'a Renewed,
        /// When the background refresher should renew it.
        next_refresh_at: Timestamp,
        /// Now.
        at: Timestamp,
    },
    /// `revoke` or `reauth_required` returned this: no tokens, no refresh scheduled.
    Ended {
        /// The ended connection (read back from the store, so it has its id and account).
        connection: &'a Connection<Unauthorized>,
        /// The refresh health as the caller counted it.
        health: RefreshHealth,
        /// Now.
        at: Timestamp,
    },
}

impl Settled<'_> {
    /// The connection id.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for an ended connection that was never stored (no id).
    pub fn id(&self) -> Result<&ConnectionId, StoreError> {
        match self {
            Self::Refreshed { connection, .. } => Ok(connection.id()),
            Self::Ended { connection, .. } => connection.id().ok_or_else(|| {
                StoreError::Backend("an install that never completed has no row".into())
            }),
        }
    }

    /// The row's data columns as the transition left them: the one copy of what a refreshed
    /// and an ended grant's row look like.
    ///
    /// # Errors
    /// As [`Self::id`], and for an ended connection without its account.
    pub fn row(&self) -> Result<SettledRow, StoreError> {
        let id = self.id()?.clone();
        Ok(match self {
            Self::Refreshed {
                connection,
                next_refresh_at,
                at,
            } => SettledRow {
                id,
                account: connection.account().clone(),
                grant: Grant::Active(connection.tokens().clone()),
                health: RefreshHealth {
                    last_refresh_at: Some(*at),
                    ..RefreshHealth::default()
                },
                next_refresh_at: Some(*next_refresh_at),
                updated_at: *at,
            },
            Self::Ended {
                connection,
                health,
                at,
            } => SettledRow {
                id,
                account: connection.account().cloned().ok_or_else(|| {
                    StoreError::Backend("an ended connection read back has its account".into())
                })?,
                grant: Grant::Ended(connection.reason().clone()),
                health: health.clone(),
                next_refresh_at: None,
                updated_at: *at,
            },
        })
    }
}

/// The data columns a [`Settled`] transition writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledRow {
    /// The connection.
    pub id: ConnectionId,
    /// The Kit account (its name and email are refreshed on every write).
    pub account: KitAccount,
    /// The grant the transition left.
    pub grant: Grant,
    /// The refresh health after it.
    pub health: RefreshHealth,
    /// The next scheduled refresh (`None` once the grant ended).
    pub next_refresh_at: Option<Timestamp>,
    /// When it was written.
    pub updated_at: Timestamp,
}
