//! The dashboard's reads over the whole fleet: search with filters and a keyset cursor, and
//! connection counts by state. Every page walks the primary key from the cursor (`id > ?`
//! with `ORDER BY id LIMIT n`), never an OFFSET, so the last page of 100,000 connections costs
//! what the first does.

use kit_oauth_core::{ConnectionId, ConnectionRecord, StoreError};

use crate::codec::CONNECTION_COLUMNS;
use crate::sql::{Params, get};
use crate::store::SeaOrmStore;

/// How a revoked grant's `ended_reason` is stored (the JSON of `UnauthorizedReason::Revoked`).
const REVOKED: &str = r#"{"kind":"revoked"}"#;

/// The dashboard's state filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetFilter {
    /// Active grants.
    Active,
    /// Active grants whose last refresh failed.
    Failing,
    /// Ended grants the creator must reinstall (everything ended but revoked).
    NeedsReauth,
    /// Grants the app revoked.
    Revoked,
}

impl FleetFilter {
    /// The filter's name in a URL.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Failing => "failing",
            Self::NeedsReauth => "reauth",
            Self::Revoked => "revoked",
        }
    }

    /// The filter named `name` in a URL.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Active,
            Self::Failing,
            Self::NeedsReauth,
            Self::Revoked,
        ]
        .into_iter()
        .find(|f| f.as_str() == name)
    }
}

/// A dashboard search.
#[derive(Debug, Clone, Default)]
pub struct FleetQuery {
    /// An exact connection id, tenant or Kit account id, or part of an account name
    /// (case-insensitive).
    pub text: Option<String>,
    /// Only connections in this state.
    pub filter: Option<FleetFilter>,
    /// Ids strictly after this one.
    pub after: Option<ConnectionId>,
    /// At most this many.
    pub limit: u32,
}

/// Connections by state, for the overview.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FleetCounts {
    /// Active grants.
    pub active: u64,
    /// Of those, the ones whose last refresh failed.
    pub failing: u64,
    /// Ended grants waiting for a reinstall.
    pub needs_reauth: u64,
    /// Revoked grants.
    pub revoked: u64,
}

/// `%`, `_` and the escape character itself, escaped for `LIKE … ESCAPE '\'`.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl SeaOrmStore {
    /// One page of the dashboard's search, ordered by id.
    ///
    /// # Errors
    /// A database error, or a row that cannot be read back.
    pub async fn search_connections(
        &self,
        query: &FleetQuery,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut p = Params::new();
        let mut sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE 1 = 1");
        if let Some(text) = query
            .text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            sql.push_str(&format!(
                " AND (id = {} OR tenant_name = {} OR kit_account_id = {} \
                 OR LOWER(account_name) LIKE {} ESCAPE '\\')",
                p.push(text),
                p.push(text),
                p.push(text),
                p.push(like_pattern(text))
            ));
        }
        match query.filter {
            None => {}
            Some(FleetFilter::Active) => sql.push_str(" AND state = 'authorized'"),
            Some(FleetFilter::Failing) => {
                sql.push_str(" AND state = 'authorized' AND consecutive_failures > 0");
            }
            Some(FleetFilter::NeedsReauth) => sql.push_str(&format!(
                " AND state = 'unauthorized' AND ended_reason <> {}",
                p.push(REVOKED)
            )),
            Some(FleetFilter::Revoked) => sql.push_str(&format!(
                " AND state = 'unauthorized' AND ended_reason = {}",
                p.push(REVOKED)
            )),
        }
        if let Some(after) = &query.after {
            sql.push_str(&format!(" AND id > {}", p.push(after.as_str())));
        }
        sql.push_str(&format!(
            " ORDER BY id LIMIT {}",
            p.push(i64::from(query.limit.clamp(1, 500)))
        ));
        self.query_all(sql, p)
            .await?
            .iter()
            .map(|row| self.decode_connection(row).map(|(record, _)| record))
            .collect()
    }

    /// Connections by state (one indexed GROUP BY).
    ///
    /// # Errors
    /// A database error.
    pub async fn fleet_counts(&self) -> Result<FleetCounts, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT state, CASE WHEN state = 'unauthorized' AND ended_reason = {} THEN 1 ELSE 0 \
             END AS revoked, CASE WHEN consecutive_failures > 0 THEN 1 ELSE 0 END AS failing, \
             COUNT(*) AS n FROM connections GROUP BY 1, 2, 3",
            p.push(REVOKED)
        );
        let mut counts = FleetCounts::default();
        for row in self.query_all(sql, p).await? {
            let state: String = get(&row, "state")?;
            let revoked: i32 = get(&row, "revoked")?;
            let failing: i32 = get(&row, "failing")?;
            let n = u64::try_from(get::<i64>(&row, "n")?).unwrap_or(0);
            match (state.as_str(), revoked, failing) {
                ("authorized", _, 0) => counts.active += n,
                ("authorized", _, _) => {
                    counts.active += n;
                    counts.failing += n;
                }
                (_, 1, _) => counts.revoked += n,
                _ => counts.needs_reauth += n,
            }
        }
        Ok(counts)
    }
}
