//! Refresh leases: taking one (a conditional `UPDATE … RETURNING` that bumps the fence),
//! marking a refresh token in flight, committing a refresh and releasing, all fenced on
//! (owner, fence); explaining a fenced write that touched no row; and waiting for a row to
//! change (PostgreSQL `NOTIFY`, or a bounded SQLite poll).

use std::time::Duration;

use kit_oauth_core::StoreError as E;
use kit_oauth_core::{
    ConnectionId, InFlight, Lease, LeaseOutcome, LeaseOwner, RefreshHealth, Restore, Settled,
    Sha256Hash, StoreError, Timestamp, Version,
};
#[cfg(feature = "postgres")]
use sea_orm::DbBackend;

use crate::codec::{CONNECTION_COLUMNS, health_assignments};
use crate::notify::Notifier;
use crate::sql::{Params, get, to_i64, to_u64};
use crate::store::SeaOrmStore;

/// How often a SQLite waiter re-reads the row.
const SQLITE_POLL: Duration = Duration::from_millis(25);

fn ttl_until(now: Timestamp, ttl: Duration) -> Timestamp {
    now.saturating_add(ttl)
}

impl SeaOrmStore {
    /// Backs `ConnectionStore::acquire_lease`.
    pub(crate) async fn lease_acquire(
        &self,
        id: &ConnectionId,
        owner: &LeaseOwner,
        now: Timestamp,
        ttl: Duration,
        restore: Restore,
    ) -> Result<LeaseOutcome, StoreError> {
        let until = ttl_until(now, ttl);
        // Right after an outage a lapsed lease is no evidence that its holder died (nobody
        // could renew): only a free lease is taken until the store has been back for a TTL.
        let hold_back = self.inner.reachability.hold_back(ttl);
        // A lease released between our refused UPDATE and the read that says who holds it is
        // simply tried again; a handful of rounds covers any real interleaving.
        for _ in 0..5 {
            let mut p = Params::new();
            let owner_param = p.push(owner.0.clone());
            let until_param = p.push(until.unix_millis());
            let id_param = p.push(id.as_str());
            let free = if hold_back.is_some() {
                "lease_owner IS NULL".to_owned()
            } else {
                format!(
                    "(lease_owner IS NULL OR lease_until <= {})",
                    p.push(now.unix_millis())
                )
            };
            let sql = format!(
                "UPDATE connections SET lease_owner = {owner_param}, lease_until = {until_param}, \
                 lease_fence = lease_fence + 1 \
                 WHERE id = {id_param} AND {free} \
                 RETURNING {CONNECTION_COLUMNS}"
            );
            if let Some(row) = self.query_one(sql, p).await? {
                let fence: i64 = get(&row, "lease_fence")?;
                let (record, lease_cols) = match self.decode_connection(&row) {
                    Ok(decoded) => decoded,
                    Err(error) => {
                        // Do not sit on a lease for a row nobody can use.
                        self.release_fenced(id, owner, fence).await;
                        return Err(error);
                    }
                };
                let previous_in_flight = match (
                    lease_cols.in_flight_hash.as_deref(),
                    lease_cols.in_flight_started_at,
                ) {
                    (Some(hash), Some(started)) => Some(InFlight {
                        refresh_token: Sha256Hash::from_hex(hash)
                            .map_err(|e| E::Corrupt(format!("in_flight_hash: {e}")))?,
                        started_at: Timestamp::from_unix_millis(started),
                    }),
                    _ => None,
                };
                return Ok(LeaseOutcome::Acquired {
                    lease: Lease {
                        connection: id.clone(),
                        owner: owner.clone(),
                        fence: to_u64(fence, "lease_fence")?,
                        until,
                    },
                    connection: Box::new(restore.connection(&record)),
                    record: Box::new(record),
                    previous_in_flight,
                });
            }
            let mut p = Params::new();
            let sql = format!(
                "SELECT lease_owner, lease_until FROM connections WHERE id = {}",
                p.push(id.as_str())
            );
            let Some(row) = self.query_one(sql, p).await? else {
                return Err(E::NotFound(id.clone()));
            };
            let holder: Option<String> = get(&row, "lease_owner")?;
            let held_until: Option<i64> = get(&row, "lease_until")?;
            if let (Some(holder), Some(held_until)) = (holder, held_until) {
                let held_until = Timestamp::from_unix_millis(held_until);
                // Lapsed during our outage: its holder gets the rest of a TTL to show it lives.
                let until = match hold_back {
                    Some(rest) => held_until.max(now.saturating_add(rest)),
                    None => held_until,
                };
                if until > now {
                    return Ok(LeaseOutcome::Held {
                        owner: LeaseOwner(holder),
                        until,
                    });
                }
            }
        }
        Err(E::Unavailable(format!(
            "the lease on connection {id} is changing hands too fast"
        )))
    }

    /// Backs `ConnectionStore::mark_in_flight`.
    pub(crate) async fn lease_mark_in_flight(
        &self,
        lease: &Lease,
        in_flight: &InFlight,
    ) -> Result<(), StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "UPDATE connections SET in_flight_hash = {}, in_flight_started_at = {} \
             WHERE id = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(in_flight.refresh_token.to_string()),
            p.push(in_flight.started_at.unix_millis()),
            p.push(lease.connection.as_str()),
            p.push(lease.owner.0.clone()),
            p.push(to_i64(lease.fence, "fence")?)
        );
        if self.exec(sql, p).await? == 1 {
            // The token is spent from now on, whatever Kit answers: imports must refuse it.
            self.record_spent(
                &lease.connection,
                &in_flight.refresh_token,
                in_flight.started_at,
            )
            .await
            .map(drop)
        } else {
            Err(self.lease_write_failure(lease, None).await?)
        }
    }

    /// Backs `ConnectionStore::renew_lease`: pushes `lease_until` to `now + ttl` only while
    /// the lease is still ours (owner and fence), so a lapsed holder cannot renew its way back
    /// over a successor.
    pub(crate) async fn lease_renew(
        &self,
        lease: &Lease,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "UPDATE connections SET lease_until = {} \
             WHERE id = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(ttl_until(now, ttl).unix_millis()),
            p.push(lease.connection.as_str()),
            p.push(lease.owner.0.clone()),
            p.push(to_i64(lease.fence, "fence")?)
        );
        Ok(self.exec(sql, p).await? == 1)
    }

    /// Backs `ConnectionStore::commit_refresh`.
    pub(crate) async fn lease_commit_refresh(
        &self,
        lease: &Lease,
        settled: &Settled<'_>,
        expected: Version,
    ) -> Result<Version, StoreError> {
        let record = settled.row()?;
        if record.id != lease.connection {
            return Err(E::LeaseLost(record.id.clone()));
        }
        let new_version = expected.next();
        let mut p = Params::new();
        let set = self.row_assignments(&record, new_version.0, &mut p)?;
        let sql = format!(
            "UPDATE connections SET {set}, lease_owner = NULL, lease_until = NULL, \
             in_flight_hash = NULL, in_flight_started_at = NULL \
             WHERE id = {} AND version = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(record.id.as_str()),
            p.push(to_i64(expected.0, "version")?),
            p.push(lease.owner.0.clone()),
            p.push(to_i64(lease.fence, "fence")?)
        );
        if self.exec(sql, p).await? == 1 {
            Ok(new_version)
        } else {
            Err(self.lease_write_failure(lease, Some(expected)).await?)
        }
    }

    /// Backs `ConnectionStore::release_lease`.
    pub(crate) async fn lease_release(
        &self,
        lease: &Lease,
        health: Option<&RefreshHealth>,
        refresh_token_unspent: bool,
    ) -> Result<bool, StoreError> {
        let mut p = Params::new();
        let mut set = String::from("lease_owner = NULL, lease_until = NULL");
        if let Some(h) = health {
            set.push_str(", ");
            set.push_str(&health_assignments(h, &mut p));
        }
        if refresh_token_unspent {
            set.push_str(", in_flight_hash = NULL, in_flight_started_at = NULL");
        }
        let sql = format!(
            "UPDATE connections SET {set} WHERE id = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(lease.connection.as_str()),
            p.push(lease.owner.0.clone()),
            p.push(to_i64(lease.fence, "fence")?)
        );
        Ok(self.exec(sql, p).await? == 1)
    }

    /// Backs `ConnectionStore::wait_for_change`.
    pub(crate) async fn lease_wait_for_change(
        &self,
        id: &ConnectionId,
        seen: Version,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut notifications = self.notifier().await.map(Notifier::subscribe);
        loop {
            if self.changed(id, seen).await? {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let left = deadline - now;
            match notifications.as_mut() {
                Some(rx) => {
                    // A notification for this row, or a periodic re-read in case one was
                    // lost while the listener reconnected.
                    let slice = left.min(crate::notify::FALLBACK_POLL);
                    let _ = tokio::time::timeout(slice, rx.wait_for(id.as_str())).await;
                }
                None => tokio::time::sleep(left.min(SQLITE_POLL)).await,
            }
        }
    }

    // ----- helpers for failed conditional writes -----

    /// Why a conditional write under `lease` touched no row.
    async fn lease_write_failure(
        &self,
        lease: &Lease,
        expected: Option<Version>,
    ) -> Result<StoreError, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT version, lease_owner, lease_fence FROM connections WHERE id = {}",
            p.push(lease.connection.as_str())
        );
        let Some(row) = self.query_one(sql, p).await? else {
            return Ok(E::NotFound(lease.connection.clone()));
        };
        let owner: Option<String> = get(&row, "lease_owner")?;
        let fence: i64 = get(&row, "lease_fence")?;
        let version: i64 = get(&row, "version")?;
        if owner.as_deref() != Some(lease.owner.0.as_str())
            || fence != to_i64(lease.fence, "fence")?
        {
            return Ok(E::LeaseLost(lease.connection.clone()));
        }
        match expected {
            Some(expected) if to_i64(expected.0, "version")? != version => Ok(E::Conflict {
                id: lease.connection.clone(),
                expected: expected.0,
            }),
            // The row matched when re-read: a concurrent change came and went. Report the
            // lease as lost rather than claim success.
            _ => Ok(E::LeaseLost(lease.connection.clone())),
        }
    }

    async fn release_fenced(&self, id: &ConnectionId, owner: &LeaseOwner, fence: i64) {
        let mut p = Params::new();
        let sql = format!(
            "UPDATE connections SET lease_owner = NULL, lease_until = NULL \
             WHERE id = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(id.as_str()),
            p.push(owner.0.clone()),
            p.push(fence)
        );
        if let Err(error) = self.exec(sql, p).await {
            tracing::warn!(connection = %id, %error, "could not release a lease on an unreadable row");
        }
    }

    /// Whether a waiter should wake: the row is gone, its version moved, or its lease is free.
    async fn changed(&self, id: &ConnectionId, seen: Version) -> Result<bool, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT version, lease_owner FROM connections WHERE id = {}",
            p.push(id.as_str())
        );
        let Some(row) = self.query_one(sql, p).await? else {
            return Ok(true);
        };
        let version: i64 = get(&row, "version")?;
        let owner: Option<String> = get(&row, "lease_owner")?;
        Ok(version != to_i64(seen.0, "version")? || owner.is_none())
    }

    /// Without the `postgres` feature there is no listener: waiters poll.
    #[cfg(not(feature = "postgres"))]
    #[allow(clippy::unused_async)]
    async fn notifier(&self) -> Option<&Notifier> {
        None
    }

    #[cfg(feature = "postgres")]
    async fn notifier(&self) -> Option<&Notifier> {
        if self.inner.backend != DbBackend::Postgres {
            return None;
        }
        let pool = self.inner.db.get_postgres_connection_pool();
        match self
            .inner
            .notifier
            .get_or_try_init(|| Notifier::start(pool.clone(), self.inner.reachability.clone()))
            .await
        {
            Ok(notifier) => Some(notifier),
            Err(error) => {
                tracing::warn!(%error, "could not LISTEN for changes; polling instead");
                None
            }
        }
    }
}
