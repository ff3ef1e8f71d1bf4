//! The audit trail: appending an event (idempotent on its id), reading one connection's events
//! back page by page, counting them per hour for the dashboard's overview, and retention.

use kit_oauth_core::StoreError as E;
use kit_oauth_core::{ConnectionId, Event, StoreError, Timestamp};

use crate::sql::{Params, get, tenant_column};
use crate::store::SeaOrmStore;

/// One stored event, as the dashboard and `GET /v1/connections/{id}/events` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event id (`evt_…`).
    pub id: String,
    /// The kind (`refreshed`, `refresh_failed`, …).
    pub kind: String,
    /// The event as JSON (its kind and fields; never a secret).
    pub detail: String,
    /// When it happened.
    pub at: Timestamp,
}

/// Where a page of events starts: strictly older than this (instant, id) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventCursor {
    /// The last shown event's instant.
    pub at: Timestamp,
    /// The last shown event's id (breaks ties between events of one millisecond).
    pub id: String,
}

/// Refresh outcomes in one hour, for the overview chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HourCounts {
    /// The hour's start, in whole hours since the Unix epoch.
    pub hour: i64,
    /// Successful refreshes.
    pub refreshed: u64,
    /// Failed ones (transient failures and ended grants).
    pub failed: u64,
}

/// Event kinds counted as a failed refresh in [`HourCounts`].
const FAILED_KINDS: [&str; 2] = ["refresh_failed", "reauth_required"];
const HOUR_MS: i64 = 3_600_000;

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

    /// Backs `ConnectionStore::purge_events_before`: one bounded DELETE through the `at` index
    /// (a subquery with LIMIT, which both SQLite and PostgreSQL accept).
    pub(crate) async fn events_purge(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "DELETE FROM connection_events WHERE id IN (SELECT id FROM connection_events \
             WHERE at < {} ORDER BY at LIMIT {})",
            p.push(before.unix_millis()),
            p.push(i64::from(limit.max(1)))
        );
        self.exec(sql, p).await
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

    /// One page of a connection's audit trail, newest first, strictly after `after` (a keyset
    /// cursor over the `(connection_id, at)` index: no OFFSET, so page 1,000 costs what page 1
    /// does).
    ///
    /// # Errors
    /// A database error.
    pub async fn events_page(
        &self,
        id: &ConnectionId,
        after: Option<&EventCursor>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut p = Params::new();
        let mut sql = format!(
            "SELECT id, kind, detail, at FROM connection_events WHERE connection_id = {}",
            p.push(id.as_str())
        );
        if let Some(cursor) = after {
            let at = cursor.at.unix_millis();
            sql.push_str(&format!(
                " AND (at < {} OR (at = {} AND id < {}))",
                p.push(at),
                p.push(at),
                p.push(cursor.id.as_str())
            ));
        }
        sql.push_str(&format!(
            " ORDER BY at DESC, id DESC LIMIT {}",
            p.push(i64::from(limit.max(1)))
        ));
        self.query_all(sql, p)
            .await?
            .iter()
            .map(|row| {
                Ok(StoredEvent {
                    id: get(row, "id")?,
                    kind: get(row, "kind")?,
                    detail: get(row, "detail")?,
                    at: Timestamp::from_unix_millis(get(row, "at")?),
                })
            })
            .collect()
    }

    /// Refreshes and failed refreshes per hour since `since` (hours without any are absent),
    /// oldest first. Reads the `at` index's range only.
    ///
    /// # Errors
    /// A database error.
    pub async fn refreshes_per_hour(
        &self,
        since: Timestamp,
    ) -> Result<Vec<HourCounts>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT at / {HOUR_MS} AS hour, kind, COUNT(*) AS n FROM connection_events \
             WHERE at >= {} AND kind IN ('refreshed', {}, {}) GROUP BY at / {HOUR_MS}, kind \
             ORDER BY hour",
            p.push(since.unix_millis()),
            p.push(FAILED_KINDS[0]),
            p.push(FAILED_KINDS[1])
        );
        let mut hours: Vec<HourCounts> = Vec::new();
        for row in self.query_all(sql, p).await? {
            let hour: i64 = get(&row, "hour")?;
            let kind: String = get(&row, "kind")?;
            let n: i64 = get(&row, "n")?;
            let n = u64::try_from(n).unwrap_or(0);
            if hours.last().is_none_or(|last| last.hour != hour) {
                hours.push(HourCounts {
                    hour,
                    ..HourCounts::default()
                });
            }
            let Some(slot) = hours.last_mut() else {
                continue;
            };
            if kind == "refreshed" {
                slot.refreshed += n;
            } else {
                slot.failed += n;
            }
        }
        Ok(hours)
    }
}
