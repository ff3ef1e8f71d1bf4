//! Raw SQL plumbing shared by every operation: `$n` placeholders, running a statement on the
//! pool, reading a column, and the conversions between the port's types and column values.
//! The store speaks hand-written SQL (one conditional statement per atomic step), not entities.

use kit_oauth_core::{StoreError, StoreError as E, TenantName, Timestamp};
use sea_orm::sea_query::Value;
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement};

use crate::error::{cuts_off, map_db_err};
use crate::store::SeaOrmStore;

/// Positional parameters: `p.push(v)` returns the `$n` placeholder for `v` (both backends
/// accept `$n`).
pub(crate) struct Params(Vec<Value>);

impl Params {
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }

    pub(crate) fn push(&mut self, value: impl Into<Value>) -> String {
        self.0.push(value.into());
        format!("${}", self.0.len())
    }
}

pub(crate) fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| E::Backend(format!("{what} out of range")))
}

pub(crate) fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| E::Corrupt(format!("negative {what}")))
}

pub(crate) fn tenant_column(tenant: Option<&TenantName>) -> String {
    tenant.map_or_else(String::new, |t| t.as_str().to_owned())
}

pub(crate) fn get<T: sea_orm::TryGetable>(
    row: &QueryResult,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get::<T>("", column)
        .map_err(|e| E::Corrupt(format!("column {column}: {e}")))
}

pub(crate) fn parse_tenant(raw: &str) -> Result<Option<TenantName>, StoreError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        TenantName::parse(raw)
            .map(Some)
            .map_err(|e| E::Corrupt(format!("tenant_name: {e}")))
    }
}

pub(crate) fn ts(value: Option<i64>) -> Option<Timestamp> {
    value.map(Timestamp::from_unix_millis)
}

pub(crate) fn millis(value: Option<Timestamp>) -> Option<i64> {
    value.map(Timestamp::unix_millis)
}

impl SeaOrmStore {
    pub(crate) fn stmt(&self, sql: impl Into<String>, params: Params) -> Statement {
        Statement::from_sql_and_values(self.inner.backend, sql, params.0)
    }

    pub(crate) async fn exec(
        &self,
        sql: impl Into<String>,
        params: Params,
    ) -> Result<u64, StoreError> {
        let done = self.inner.db.execute_raw(self.stmt(sql, params)).await;
        self.observed(done).map(|r| r.rows_affected())
    }

    pub(crate) async fn query_one(
        &self,
        sql: impl Into<String>,
        params: Params,
    ) -> Result<Option<QueryResult>, StoreError> {
        let done = self.inner.db.query_one_raw(self.stmt(sql, params)).await;
        self.observed(done)
    }

    pub(crate) async fn query_all(
        &self,
        sql: impl Into<String>,
        params: Params,
    ) -> Result<Vec<QueryResult>, StoreError> {
        let done = self.inner.db.query_all_raw(self.stmt(sql, params)).await;
        self.observed(done)
    }

    /// The outcome of every statement run through `exec` and the `query_*` helpers: the error
    /// is mapped, and whether the database was reached is recorded for the lease rule in
    /// `reachability`. Transactions, migrations and the readiness probe only report cut-offs
    /// (`db_error`): the store counts as back from the next statement run through these.
    pub(crate) fn observed<T>(&self, done: Result<T, DbErr>) -> Result<T, StoreError> {
        match done {
            Ok(value) => {
                self.inner.reachability.reached();
                Ok(value)
            }
            Err(e) => Err(self.db_error(&e)),
        }
    }

    /// Maps a database error, recording a cut-off (see `reachability`).
    pub(crate) fn db_error(&self, e: &DbErr) -> StoreError {
        if cuts_off(e) {
            self.inner.reachability.cut_off();
        }
        map_db_err(e)
    }
}
