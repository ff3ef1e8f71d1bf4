//! Read APIs over the whole fleet and the audit trail, for the dashboard and the broker API.
//! They are concrete on the SQL store: the searches and counts are queries of that adapter,
//! not part of the `ConnectionStore` port every store must implement.

use kit_oauth_core::{ConnectionId, ConnectionStore, Timestamp};
use kit_oauth_store::{EventCursor, FleetCounts, FleetQuery, HourCounts, SeaOrmStore, StoredEvent};

use crate::error::ManagerError;
use crate::manager::{ConnectionStatus, TokenManager};

impl<E> TokenManager<E, SeaOrmStore> {
    /// One page of the dashboard's search, ordered by id.
    ///
    /// # Errors
    /// A storage error.
    pub async fn search(&self, query: &FleetQuery) -> Result<Vec<ConnectionStatus>, ManagerError> {
        let now = self.inner.clock.now();
        let records = self
            .inner
            .store
            .search_connections(query)
            .await
            .map_err(ManagerError::from_store)?;
        Ok(records
            .iter()
            .map(|r| ConnectionStatus::of(r, now))
            .collect())
    }

    /// One page of a connection's audit trail, newest first.
    ///
    /// # Errors
    /// A storage error.
    pub async fn events(
        &self,
        id: &ConnectionId,
        after: Option<&EventCursor>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, ManagerError> {
        self.inner
            .store
            .events_page(id, after, limit)
            .await
            .map_err(ManagerError::from_store)
    }

    /// Connections by state, and refreshes and failures per hour since `since`.
    ///
    /// # Errors
    /// A storage error.
    pub async fn overview(
        &self,
        since: Timestamp,
    ) -> Result<(FleetCounts, Vec<HourCounts>), ManagerError> {
        let store = &self.inner.store;
        let counts = store
            .fleet_counts()
            .await
            .map_err(ManagerError::from_store)?;
        let hours = store
            .refreshes_per_hour(since)
            .await
            .map_err(ManagerError::from_store)?;
        Ok((counts, hours))
    }

    /// Deletes audit-trail events older than `before`, `batch` at a time, until none is left;
    /// returns how many. (The refresher does this one batch per scan; this is for tools.)
    ///
    /// # Errors
    /// A storage error.
    pub async fn purge_events_before(
        &self,
        before: Timestamp,
        batch: u32,
    ) -> Result<u64, ManagerError> {
        let mut total = 0;
        loop {
            let removed = self
                .inner
                .store
                .purge_events_before(before, batch)
                .await
                .map_err(ManagerError::from_store)?;
            total += removed;
            if removed < u64::from(batch.max(1)) {
                return Ok(total);
            }
        }
    }
}
