//! The [`ConnectionStore`] implementation. Connection reads, compare-and-swap writes, deletion
//! and listing (with its page limits and the due-for-refresh query) are here; the other port
//! methods forward to their modules: `install`, `lease`, `pending`, `events`.

use std::time::Duration;

use kit_oauth_core::StoreError as E;
use kit_oauth_core::{
    ConnectionId, ConnectionRecord, ConnectionStore, Event, InFlight, Installed, KitAccountId,
    Lease, LeaseOutcome, LeaseOwner, ListQuery, PendingRecord, PendingTake, RefreshHealth, Removed,
    Restore, Settled, Sha256Hash, StateName, StoreError, StoredConnection, TenantName, Timestamp,
    Version,
};
use sea_orm::DbBackend;

use crate::codec::CONNECTION_COLUMNS;
use crate::sql::{Params, get, tenant_column, to_i64};
use crate::store::SeaOrmStore;

/// The most rows one `list` returns; `limit = 0` asks for [`DEFAULT_PAGE`].
pub const MAX_PAGE: u32 = 1000;
/// The page size when a [`ListQuery`] leaves `limit` at 0.
pub const DEFAULT_PAGE: u32 = 100;

impl ConnectionStore for SeaOrmStore {
    async fn get(&self, id: &ConnectionId) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = {}",
            p.push(id.as_str())
        );
        match self.query_one(sql, p).await? {
            Some(row) => Ok(Some(self.decode_connection(&row)?.0)),
            None => Ok(None),
        }
    }

    async fn find_by_account(
        &self,
        tenant: Option<&TenantName>,
        account: &KitAccountId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections \
             WHERE tenant_name = {} AND kit_account_id = {}",
            p.push(tenant_column(tenant)),
            p.push(account.as_str())
        );
        match self.query_one(sql, p).await? {
            Some(row) => Ok(Some(self.decode_connection(&row)?.0)),
            None => Ok(None),
        }
    }

    async fn upsert_installed(
        &self,
        installed: &Installed<'_>,
    ) -> Result<ConnectionRecord, StoreError> {
        self.install_upsert(&installed.row()).await
    }

    async fn put(&self, settled: &Settled<'_>, expected: Version) -> Result<Version, StoreError> {
        let record = settled.row()?;
        let new_version = expected.next();
        let mut p = Params::new();
        let set = self.row_assignments(&record, new_version.0, &mut p)?;
        let sql = format!(
            "UPDATE connections SET {set} WHERE id = {} AND version = {}",
            p.push(record.id.as_str()),
            p.push(to_i64(expected.0, "version")?)
        );
        if self.exec(sql, p).await? == 1 {
            return Ok(new_version);
        }
        if self.get_version(&record.id).await?.is_none() {
            Err(E::NotFound(record.id.clone()))
        } else {
            Err(E::Conflict {
                id: record.id.clone(),
                expected: expected.0,
            })
        }
    }

    async fn delete(&self, removed: &Removed) -> Result<bool, StoreError> {
        let mut p = Params::new();
        let mut sql = format!(
            "DELETE FROM connections WHERE id = {}",
            p.push(removed.id().as_str())
        );
        // An ended grant's removal deletes only while the row is still ended: a reinstall
        // that landed since (same id) holds a live grant nobody revoked.
        if !removed.grant_left_at_kit() {
            sql.push_str(&format!(
                " AND state = {}",
                p.push(StateName::Unauthorized.as_str())
            ));
        }
        Ok(self.exec(sql, p).await? > 0)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut p = Params::new();
        let mut sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE 1 = 1");
        if let Some(tenant) = &query.tenant {
            sql.push_str(&format!(
                " AND tenant_name = {}",
                p.push(tenant_column(tenant.as_ref()))
            ));
        }
        match query.state {
            None => {}
            Some(state @ (StateName::Authorized | StateName::Unauthorized)) => {
                sql.push_str(&format!(" AND state = {}", p.push(state.as_str())));
            }
            // Pending installs are not connections, and expiry is derived from a clock the
            // store does not have.
            Some(StateName::Pending | StateName::Expired) => return Ok(Vec::new()),
        }
        if let Some(after) = &query.after {
            sql.push_str(&format!(" AND id > {}", p.push(after.as_str())));
        }
        let limit = if query.limit == 0 {
            DEFAULT_PAGE
        } else {
            query.limit.min(MAX_PAGE)
        };
        sql.push_str(&format!(" ORDER BY id LIMIT {}", p.push(i64::from(limit))));
        self.query_all(sql, p)
            .await?
            .iter()
            .map(|row| self.decode_connection(row).map(|(record, _)| record))
            .collect()
    }

    async fn list_due(&self, now: Timestamp, limit: u32) -> Result<Vec<ConnectionId>, StoreError> {
        let mut p = Params::new();
        let sql = self.list_due_sql(now, limit, &mut p);
        self.query_all(sql, p)
            .await?
            .iter()
            .map(|row| {
                let id: String = get(row, "id")?;
                ConnectionId::parse(&id).map_err(|e| E::Corrupt(format!("id: {e}")))
            })
            .collect()
    }

    async fn insert_pending(&self, pending: &PendingRecord) -> Result<(), StoreError> {
        self.pending_insert(pending).await
    }

    async fn consume_pending_with(
        &self,
        state_hash: &Sha256Hash,
        browser_binding: Option<&Sha256Hash>,
        restore: Restore,
    ) -> Result<PendingTake, StoreError> {
        self.pending_consume(state_hash, browser_binding, restore)
            .await
    }

    async fn purge_expired_pending(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.pending_purge_expired(now).await
    }

    async fn acquire_lease_with(
        &self,
        id: &ConnectionId,
        owner: &LeaseOwner,
        now: Timestamp,
        ttl: Duration,
        restore: Restore,
    ) -> Result<LeaseOutcome, StoreError> {
        self.lease_acquire(id, owner, now, ttl, restore).await
    }

    async fn load_with(
        &self,
        id: &ConnectionId,
        restore: Restore,
    ) -> Result<Option<(ConnectionRecord, StoredConnection)>, StoreError> {
        Ok(self.get(id).await?.map(|record| {
            let connection = restore.connection(&record);
            (record, connection)
        }))
    }

    async fn mark_in_flight(&self, lease: &Lease, in_flight: &InFlight) -> Result<(), StoreError> {
        self.lease_mark_in_flight(lease, in_flight).await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.lease_renew(lease, now, ttl).await
    }

    async fn commit_refresh(
        &self,
        lease: &Lease,
        settled: &Settled<'_>,
        expected: Version,
    ) -> Result<Version, StoreError> {
        self.lease_commit_refresh(lease, settled, expected).await
    }

    async fn release_lease(
        &self,
        lease: &Lease,
        health: Option<&RefreshHealth>,
        refresh_token_unspent: bool,
    ) -> Result<bool, StoreError> {
        self.lease_release(lease, health, refresh_token_unspent)
            .await
    }

    async fn wait_for_change(
        &self,
        id: &ConnectionId,
        seen: Version,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        self.lease_wait_for_change(id, seen, timeout).await
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        self.event_append(event).await
    }

    async fn purge_events_before(&self, before: Timestamp, limit: u32) -> Result<u64, StoreError> {
        self.events_purge(before, limit).await
    }
}

impl SeaOrmStore {
    async fn get_version(&self, id: &ConnectionId) -> Result<Option<i64>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT version FROM connections WHERE id = {}",
            p.push(id.as_str())
        );
        match self.query_one(sql, p).await? {
            Some(row) => Ok(Some(get(&row, "version")?)),
            None => Ok(None),
        }
    }

    // ----- diagnostics -----

    fn list_due_sql(&self, now: Timestamp, limit: u32, p: &mut Params) -> String {
        let now = p.push(now.unix_millis());
        let limit = p.push(i64::from(limit.min(MAX_PAGE)));
        let lock = if self.inner.backend == DbBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        format!(
            "SELECT id FROM connections WHERE next_refresh_at <= {now} AND state = 'authorized' \
             AND (cooldown_until IS NULL OR cooldown_until <= {now}) \
             AND (lease_owner IS NULL OR lease_until <= {now}) \
             ORDER BY next_refresh_at LIMIT {limit}{lock}"
        )
    }

    /// The query plan of [`ConnectionStore::list_due`] (`EXPLAIN QUERY PLAN` on SQLite,
    /// `EXPLAIN` on PostgreSQL), one line per plan row — to check it uses the index on
    /// `next_refresh_at`.
    ///
    /// # Errors
    /// A database error.
    pub async fn list_due_plan(&self, now: Timestamp, limit: u32) -> Result<String, StoreError> {
        let mut p = Params::new();
        let sql = self.list_due_sql(now, limit, &mut p);
        let (explain, column) = match self.inner.backend {
            DbBackend::Postgres => ("EXPLAIN", "QUERY PLAN"),
            _ => ("EXPLAIN QUERY PLAN", "detail"),
        };
        let rows = self.query_all(format!("{explain} {sql}"), p).await?;
        let lines = rows
            .iter()
            .map(|row| get::<String>(row, column))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines.join("\n"))
    }
}
