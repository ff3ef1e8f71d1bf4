//! Mapping database errors into [`StoreError`], without leaking values into messages.

use std::ops::Deref as _;

use kit_oauth_core::StoreError;
use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// Maps a sea-orm error: unreachable or busy databases are [`StoreError::Unavailable`] (retry
/// later), a violation of a connection's or a pending install's key [`StoreError::Duplicate`],
/// everything else [`StoreError::Backend`].
pub(crate) fn map_db_err(err: &DbErr) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(message)) = err.sql_err() {
        return if violates_a_domain_key(&message) {
            StoreError::Duplicate
        } else {
            StoreError::Backend(format!("unique constraint violated: {message}"))
        };
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

/// Whether `err` means the database could not be reached at all — a lost or refused
/// connection, or a server shutting down — as opposed to a busy, locked or conflicting one that
/// answered. Only this is an outage for `reachability`.
///
/// A pool timeout is not one: it is what a saturated pool answers under load, when the database
/// is fine (the fleet suite's four pools of four connections meet it), and a real outage shows
/// itself anyway, as I/O errors on the statements in flight and a dropped `LISTEN` connection.
pub(crate) fn cuts_off(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout) => false,
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            cuts_off_sqlx(e)
        }
        _ => false,
    }
}

/// As [`cuts_off`], for the driver's own error (the `LISTEN` connection reports these).
pub(crate) fn cuts_off_sqlx(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_lost_connection_code(&c)),
        _ => false,
    }
}

/// PostgreSQL: connection exceptions (class 08) and shutdowns (57P01–57P03), the server gone.
fn is_lost_connection_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// `Duplicate` means "this Kit account is already connected for this tenant" (or "this install
/// state exists"), a fact callers act on; any other unique violation (two migrators recording
/// the same migration, say) is a database error and must not read as one. The driver's message
/// names the violated key — SQLite `UNIQUE constraint failed: connections.tenant_name, …`,
/// PostgreSQL `… violates unique constraint "connections_tenant_account_key"` — and never a
/// value, so it is safe to keep.
fn violates_a_domain_key(message: &str) -> bool {
    const DOMAIN_KEYS: [&str; 3] = ["connections.", "connections_", "pending_authorizations"];
    DOMAIN_KEYS.iter().any(|key| message.contains(key))
}

fn runtime_message(err: &RuntimeErr) -> String {
    match err {
        RuntimeErr::SqlxError(e) => sqlx_message(e),
        other => other.to_string(),
    }
}

fn map_sqlx(err: &sqlx::Error) -> StoreError {
    match err {
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
        // A saturated pool, or a connection lost or refused: try again later.
        sqlx::Error::PoolTimedOut => StoreError::Unavailable(sqlx_message(err)),
        _ if cuts_off_sqlx(err) => StoreError::Unavailable(sqlx_message(err)),
        other => StoreError::Backend(sqlx_message(other)),
    }
}

/// SQLite: `SQLITE_BUSY` (5) and `SQLITE_LOCKED` (6) with their extended codes.
/// PostgreSQL: a lost connection ([`is_lost_connection_code`]), serialization failures and
/// deadlocks (40001, 40P01), too many connections (53300), lock timeouts (55P03).
fn is_transient_code(sqlite: bool, code: &str) -> bool {
    if sqlite {
        // The primary result code is the low byte of the extended code.
        let primary = code.parse::<i64>().map_or(0, |n| n & 0xff);
        return primary == 5 || primary == 6;
    }
    is_lost_connection_code(code) || matches!(code, "40001" | "40P01" | "53300" | "55P03")
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
    fn only_a_domain_key_is_a_duplicate() {
        for domain in [
            "UNIQUE constraint failed: connections.tenant_name, connections.kit_account_id",
            "UNIQUE constraint failed: connections.id",
            "UNIQUE constraint failed: pending_authorizations.state_hash",
            "duplicate key value violates unique constraint \"connections_tenant_account_key\"",
            "duplicate key value violates unique constraint \"pending_authorizations_pkey\"",
        ] {
            assert!(violates_a_domain_key(domain), "{domain}");
        }
        for other in [
            "UNIQUE constraint failed: seaql_migrations.version",
            "duplicate key value violates unique constraint \"seaql_migrations_pkey\"",
            "UNIQUE constraint failed: connection_events.id",
        ] {
            assert!(!violates_a_domain_key(other), "{other}");
        }
    }

    /// The race that killed one of three instances started at once: a second migrator records
    /// a migration already recorded. Read from a real SQLite error, not a hand-made one.
    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn a_migration_bookkeeping_clash_is_not_a_duplicate_connection() {
        use sea_orm::{ConnectionTrait as _, Database};
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE seaql_migrations (version TEXT PRIMARY KEY)")
            .await
            .unwrap();
        db.execute_unprepared("INSERT INTO seaql_migrations VALUES ('m1')")
            .await
            .unwrap();
        let err = db
            .execute_unprepared("INSERT INTO seaql_migrations VALUES ('m1')")
            .await
            .unwrap_err();
        let mapped = map_db_err(&err);
        assert!(
            matches!(mapped, StoreError::Backend(ref m) if m.contains("seaql_migrations")),
            "{mapped:?}"
        );
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
