//! Mapping database errors into [`StoreError`], without leaking values into messages.

use std::ops::Deref as _;

use kit_oauth_core::StoreError;
use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// Maps a sea-orm error: unreachable or busy databases are [`StoreError::Unavailable`] (retry
/// later), unique violations [`StoreError::Duplicate`], everything else
/// [`StoreError::Backend`].
pub(crate) fn map_db_err(err: &DbErr) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(_)) = err.sql_err() {
        return StoreError::Duplicate;
    }
    match err {
        DbErr::ConnectionAcquire(e) => StoreError::Unavailable(e.to_string()),
        DbErr::Conn(e) => StoreError::Unavailable(runtime_message(e)),
        DbErr::Exec(e) | DbErr::Query(e) => match e {
            RuntimeErr::SqlxError(sqlx_err) => map_sqlx(sqlx_err),
            other => StoreError::Backend(other.to_string()),
        },
        other => StoreError::Backend(other.to_string()),
    }
}

fn runtime_message(err: &RuntimeErr) -> String {
    match err {
        RuntimeErr::SqlxError(e) => sqlx_message(e),
        other => other.to_string(),
    }
}

fn map_sqlx(err: &sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(sqlx_message(err)),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            #[cfg(feature = "sqlite")]
            let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
            #[cfg(not(feature = "sqlite"))]
            let sqlite = false;
            if is_transient_code(sqlite, code.deref()) {
                StoreError::Unavailable(db.message().to_owned())
            } else {
                StoreError::Backend(db.message().to_owned())
            }
        }
        other => StoreError::Backend(sqlx_message(other)),
    }
}

/// SQLite: `SQLITE_BUSY` (5) and `SQLITE_LOCKED` (6) with their extended codes.
/// PostgreSQL: connection exceptions (class 08), serialization failures and deadlocks (40001,
/// 40P01), too many connections (53300), shutdowns (57P01–57P03), lock timeouts (55P03).
fn is_transient_code(sqlite: bool, code: &str) -> bool {
    if sqlite {
        // The primary result code is the low byte of the extended code.
        let primary = code.parse::<i64>().map_or(0, |n| n & 0xff);
        return primary == 5 || primary == 6;
    }
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03" | "55P03"
        )
}

/// sqlx's message for a connection-level error. Those never carry bound values.
fn sqlx_message(err: &sqlx::Error) -> String {
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes() {
        assert!(is_transient_code(true, "5"));
        assert!(is_transient_code(true, "517")); // SQLITE_BUSY_SNAPSHOT
        assert!(is_transient_code(true, "6"));
        assert!(!is_transient_code(true, "2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(is_transient_code(false, "08006"));
        assert!(is_transient_code(false, "40P01"));
        assert!(!is_transient_code(false, "23505"));
        assert!(!is_transient_code(false, "42P01"));
    }

    #[test]
    fn pool_errors_are_unavailable() {
        let err = DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        assert!(matches!(map_db_err(&err), StoreError::Unavailable(_)));
        let err = DbErr::Query(RuntimeErr::SqlxError(std::sync::Arc::new(
            sqlx::Error::PoolTimedOut,
        )));
        assert!(matches!(map_db_err(&err), StoreError::Unavailable(_)));
        let err = DbErr::Custom("x".into());
        assert!(matches!(map_db_err(&err), StoreError::Backend(_)));
    }
}
