//! Aggregates over the whole table, answered by the database in one statement each, so that
//! their cost does not grow with what the process holds in memory and their answer is exact at
//! any size (the broker's `/metrics` gauges; the load harness's scan measurements).

use kit_oauth_core::{StoreError, StoreError as E, Timestamp};
use sea_orm::DbBackend;

use crate::sql::{Params, get, to_u64};
use crate::store::SeaOrmStore;

/// How many connections are in each state at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionCounts {
    /// Active grants whose token is outside its refresh margin.
    pub authorized: u64,
    /// Active grants inside their refresh margin or past expiry (what the manager reports as
    /// `expired`: a read would refresh first).
    pub expired: u64,
    /// Ended grants.
    pub unauthorized: u64,
}

impl ConnectionCounts {
    /// Every connection.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.authorized + self.expired + self.unauthorized
    }
}

impl SeaOrmStore {
    /// Counts connections by state at `now`, with `COUNT … GROUP BY`. "Expired" is decided as
    /// [`kit_oauth_core::TokenSet::is_due`] decides it: `now ≥ expires_at − margin`, the
    /// margin being `min(max(lifetime / 10, 60 s), 15 min, lifetime / 2)`.
    ///
    /// # Errors
    /// A database error, or a state the store never writes.
    pub async fn connection_counts(&self, now: Timestamp) -> Result<ConnectionCounts, StoreError> {
        let (least, greatest) = match self.inner.backend {
            DbBackend::Postgres => ("LEAST", "GREATEST"),
            _ => ("MIN", "MAX"),
        };
        let mut p = Params::new();
        let lifetime = "(expires_at - issued_at)";
        let margin = format!("{least}({greatest}({lifetime} / 10, 60000), 900000, {lifetime} / 2)");
        let sql = format!(
            "SELECT CASE WHEN state = 'authorized' AND expires_at - {margin} <= {} \
             THEN 'expired' ELSE state END AS bucket, COUNT(*) AS n \
             FROM connections GROUP BY 1",
            p.push(now.unix_millis())
        );
        let mut counts = ConnectionCounts::default();
        for row in self.query_all(sql, p).await? {
            let bucket: String = get(&row, "bucket")?;
            let n = to_u64(get(&row, "n")?, "count")?;
            match bucket.as_str() {
                "authorized" => counts.authorized += n,
                "expired" => counts.expired += n,
                "unauthorized" => counts.unauthorized += n,
                other => return Err(E::Corrupt(format!("unknown connection state {other:?}"))),
            }
        }
        Ok(counts)
    }

    /// How many connections [`kit_oauth_core::ConnectionStore::list_due`] would find at `now`
    /// without a limit: the refresher's backlog (one statement, for the load harness).
    ///
    /// # Errors
    /// A database error.
    pub async fn count_due(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut p = Params::new();
        let now = p.push(now.unix_millis());
        let sql = format!(
            "SELECT COUNT(*) AS n FROM connections WHERE next_refresh_at <= {now} \
             AND state = 'authorized' AND (cooldown_until IS NULL OR cooldown_until <= {now}) \
             AND (lease_owner IS NULL OR lease_until <= {now})"
        );
        match self.query_one(sql, p).await? {
            Some(row) => to_u64(get(&row, "n")?, "count"),
            None => Ok(0),
        }
    }
}
