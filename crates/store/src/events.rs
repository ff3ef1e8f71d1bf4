//! The audit trail: appending an event (idempotent on its id) and reading one connection's
//! events back.

use kit_oauth_core::StoreError as E;
use kit_oauth_core::{ConnectionId, Event, StoreError, Timestamp};

use crate::sql::{Params, get, tenant_column};
use crate::store::SeaOrmStore;

impl SeaOrmStore {
    /// Backs `ConnectionStore::append_event`.
    pub(crate) async fn event_append(&self, event: &Event) -> Result<(), StoreError> {
        let detail = serde_json::to_string(&event.kind)
            .map_err(|e| E::Backend(format!("encoding the event: {e}")))?;
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO connection_events (id, connection_id, tenant_name, kit_account_id, \
             kind, detail, at) VALUES ({}, {}, {}, {}, {}, {}, {}) ON CONFLICT (id) DO NOTHING",
            p.push(event.id.as_str()),
            p.push(event.connection.as_str()),
            p.push(tenant_column(event.tenant.as_ref())),
            p.push(event.account.as_ref().map(|a| a.as_str().to_owned())),
            p.push(event.kind.name()),
            p.push(detail),
            p.push(event.at.unix_millis())
        );
        self.exec(sql, p).await.map(|_| ())
    }

    /// The audit trail of one connection, oldest first: (kind, detail JSON, at).
    ///
    /// # Errors
    /// A database error.
    pub async fn events(
        &self,
        id: &ConnectionId,
    ) -> Result<Vec<(String, String, Timestamp)>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT kind, detail, at FROM connection_events WHERE connection_id = {} \
             ORDER BY at, id",
            p.push(id.as_str())
        );
        self.query_all(sql, p)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    get(row, "kind")?,
                    get(row, "detail")?,
                    Timestamp::from_unix_millis(get(row, "at")?),
                ))
            })
            .collect()
    }
}
