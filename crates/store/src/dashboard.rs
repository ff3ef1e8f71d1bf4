//! The broker dashboard's "sessions valid after" instant, shared by every instance: signing out
//! ends every session started before it. Kept as an event of a reserved pseudo-connection in
//! `connection_events` (indexed by connection and time), so it needs no table of its own; an
//! instant older than a session's lifetime ends nothing, so retention may drop it.

use kit_oauth_core::{StoreError, Timestamp};

use crate::sql::{Params, get};
use crate::store::SeaOrmStore;

/// The reserved `connection_id` (not a valid connection id: ids never contain `:`).
const DASHBOARD: &str = "broker:dashboard";
/// The event kind of a sign-out.
const SIGNED_OUT: &str = "dashboard_signed_out";

impl SeaOrmStore {
    /// Ends every dashboard session started before `at`, on every instance.
    ///
    /// # Errors
    /// A database error.
    pub async fn end_dashboard_sessions(&self, at: Timestamp) -> Result<(), StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO connection_events (id, connection_id, tenant_name, kit_account_id, \
             kind, detail, at) VALUES ({}, {}, '', NULL, {}, '{{}}', {}) \
             ON CONFLICT (id) DO NOTHING",
            p.push(format!("{DASHBOARD}:{}", at.unix_millis())),
            p.push(DASHBOARD),
            p.push(SIGNED_OUT),
            p.push(at.unix_millis())
        );
        self.exec(sql, p).await.map(|_| ())
    }

    /// The latest instant given to [`SeaOrmStore::end_dashboard_sessions`], if any.
    ///
    /// # Errors
    /// A database error.
    pub async fn dashboard_sessions_ended_at(&self) -> Result<Option<Timestamp>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT MAX(at) AS at FROM connection_events WHERE connection_id = {} AND kind = {}",
            p.push(DASHBOARD),
            p.push(SIGNED_OUT)
        );
        let Some(row) = self.query_one(sql, p).await? else {
            return Ok(None);
        };
        let at: Option<i64> = get(&row, "at")?;
        Ok(at.map(Timestamp::from_unix_millis))
    }
}
