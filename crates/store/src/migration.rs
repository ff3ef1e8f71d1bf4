//! Forward-only migrations (sea-orm-migration), run at start-up and by `kit-oauth migrate`.
//!
//! Each migration is idempotent on its own (`IF NOT EXISTS`), and sea-orm-migration records
//! what ran in `seaql_migrations`, so running them again, or on top of an older schema, is safe.
//! There is no `down`: a rollback is a restore from backup, never a silent data loss.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

/// The migrations of this crate, oldest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateTables),
            Box::new(IndexesAndEvents),
            Box::new(EarlyRetry),
            Box::new(FleetIndexes),
            Box::new(SpentRefreshTokens),
            Box::new(BulkRequests),
            Box::new(ConnectionsByAccount),
        ]
    }
}

/// The binary column type of each backend.
fn blob(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "BYTEA",
        _ => "BLOB",
    }
}

async fn run_all(manager: &SchemaManager<'_>, statements: &[String]) -> Result<(), DbErr> {
    let connection = manager.get_connection();
    for statement in statements {
        connection.execute_unprepared(statement).await?;
    }
    Ok(())
}

/// `m20250601_000001_create_tables`: connections and pending installs.
#[derive(Debug, Clone, Copy)]
pub struct CreateTables;

impl MigrationName for CreateTables {
    fn name(&self) -> &str {
        "m20250601_000001_create_tables"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for CreateTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let blob = blob(manager.get_database_backend());
        run_all(
            manager,
            &[
                format!(
                    "CREATE TABLE IF NOT EXISTS connections (
                        id TEXT NOT NULL PRIMARY KEY,
                        tenant_name TEXT NOT NULL,
                        kit_account_id TEXT NOT NULL,
                        account_name TEXT NOT NULL,
                        account_email TEXT NULL,
                        state TEXT NOT NULL,
                        ended_reason TEXT NULL,
                        key_id TEXT NULL,
                        access_token_nonce {blob} NULL,
                        access_token_ct {blob} NULL,
                        refresh_token_nonce {blob} NULL,
                        refresh_token_ct {blob} NULL,
                        scope TEXT NULL,
                        issued_at BIGINT NULL,
                        expires_at BIGINT NULL,
                        next_refresh_at BIGINT NULL,
                        version BIGINT NOT NULL,
                        lease_owner TEXT NULL,
                        lease_until BIGINT NULL,
                        lease_fence BIGINT NOT NULL DEFAULT 0,
                        in_flight_hash TEXT NULL,
                        in_flight_started_at BIGINT NULL,
                        consecutive_failures BIGINT NOT NULL DEFAULT 0,
                        cooldown_until BIGINT NULL,
                        last_error TEXT NULL,
                        last_refresh_at BIGINT NULL,
                        created_at BIGINT NOT NULL,
                        updated_at BIGINT NOT NULL,
                        CONSTRAINT connections_tenant_account_key UNIQUE (tenant_name, kit_account_id)
                    )"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS pending_authorizations (
                        state_hash TEXT NOT NULL PRIMARY KEY,
                        key_id TEXT NOT NULL,
                        verifier_nonce {blob} NOT NULL,
                        verifier_ct {blob} NOT NULL,
                        kit_redirect TEXT NOT NULL,
                        tenant_name TEXT NOT NULL,
                        reinstall_of TEXT NULL,
                        browser_binding TEXT NOT NULL,
                        started_at BIGINT NOT NULL,
                        expires_at BIGINT NOT NULL
                    )"
                ),
            ],
        )
        .await
    }
}

/// `m20250601_000002_indexes_and_events`: the refresh-scheduling index, the purge index, the
/// audit trail, and (PostgreSQL) the change notifications waiters listen for.
#[derive(Debug, Clone, Copy)]
pub struct IndexesAndEvents;

impl MigrationName for IndexesAndEvents {
    fn name(&self) -> &str {
        "m20250601_000002_indexes_and_events"
    }
}

/// The channel PostgreSQL notifies with a connection id whenever its version changes, its
/// lease is released, or it is deleted.
pub const CHANGE_CHANNEL: &str = "kit_oauth_connection_changed";

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for IndexesAndEvents {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut statements = vec![
            "CREATE INDEX IF NOT EXISTS connections_next_refresh_at_idx \
             ON connections (next_refresh_at)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS pending_authorizations_expires_at_idx \
             ON pending_authorizations (expires_at)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS connection_events (
                id TEXT NOT NULL PRIMARY KEY,
                connection_id TEXT NOT NULL,
                tenant_name TEXT NOT NULL,
                kit_account_id TEXT NULL,
                kind TEXT NOT NULL,
                detail TEXT NOT NULL,
                at BIGINT NOT NULL
            )"
            .to_owned(),
            "CREATE INDEX IF NOT EXISTS connection_events_connection_at_idx \
             ON connection_events (connection_id, at)"
                .to_owned(),
        ];
        if manager.get_database_backend() == DbBackend::Postgres {
            statements.extend([
                format!(
                    "CREATE OR REPLACE FUNCTION kit_oauth_notify_connection_change() \
                     RETURNS trigger LANGUAGE plpgsql AS $fn$
                     BEGIN
                         IF TG_OP = 'DELETE' THEN
                             PERFORM pg_notify('{CHANGE_CHANNEL}', OLD.id);
                         ELSE
                             PERFORM pg_notify('{CHANGE_CHANNEL}', NEW.id);
                         END IF;
                         RETURN NULL;
                     END
                     $fn$"
                ),
                "DROP TRIGGER IF EXISTS connections_notify_update ON connections".to_owned(),
                "CREATE TRIGGER connections_notify_update AFTER UPDATE ON connections \
                 FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version \
                 OR (OLD.lease_owner IS NOT NULL AND NEW.lease_owner IS NULL)) \
                 EXECUTE FUNCTION kit_oauth_notify_connection_change()"
                    .to_owned(),
                "DROP TRIGGER IF EXISTS connections_notify_delete ON connections".to_owned(),
                "CREATE TRIGGER connections_notify_delete AFTER DELETE ON connections \
                 FOR EACH ROW EXECUTE FUNCTION kit_oauth_notify_connection_change()"
                    .to_owned(),
            ]);
        }
        run_all(manager, &statements).await
    }
}

/// `m20261129_000003_early_retry`: `connections.early_retry_after`, which lets a cooldown end
/// as soon as Kit answers again after an outage (see `RefreshHealth::early_retry_after`).
/// Existing rows get NULL: their cooldowns run their course, as before.
#[derive(Debug, Clone, Copy)]
pub struct EarlyRetry;

impl MigrationName for EarlyRetry {
    fn name(&self) -> &str {
        "m20261129_000003_early_retry"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for EarlyRetry {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite has no `ADD COLUMN IF NOT EXISTS`: ask first, so a re-run is harmless, and
        // ask again after a failure, which is then another instance starting up at the same
        // moment (PostgreSQL start-ups are serialized by an advisory lock; SQLite's are not).
        let exists = || manager.has_column("connections", "early_retry_after");
        if exists().await? {
            return Ok(());
        }
        let added = run_all(
            manager,
            &["ALTER TABLE connections ADD COLUMN early_retry_after BIGINT NULL".to_owned()],
        )
        .await;
        match added {
            Err(_) if exists().await? => Ok(()),
            other => other,
        }
    }
}

/// `m20261130_000004_fleet_indexes`: the audit trail by time alone (retention's bounded DELETE
/// and the overview's refreshes per hour read a range of it). No index on `connections.state`:
/// the dashboard's filters walk the primary key in id order, and such an index would tempt
/// SQLite's planner away from `next_refresh_at` in the refresher's due query.
#[derive(Debug, Clone, Copy)]
pub struct FleetIndexes;

impl MigrationName for FleetIndexes {
    fn name(&self) -> &str {
        "m20261130_000004_fleet_indexes"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for FleetIndexes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                "CREATE INDEX IF NOT EXISTS connection_events_at_idx ON connection_events (at)"
                    .to_owned(),
            ],
        )
        .await
    }
}

/// `m20261130_000005_spent_refresh_tokens`: the hashes of refresh tokens already sent to Kit
/// (see `spent.rs`), so an import never sends one again.
#[derive(Debug, Clone, Copy)]
pub struct SpentRefreshTokens;

impl MigrationName for SpentRefreshTokens {
    fn name(&self) -> &str {
        "m20261130_000005_spent_refresh_tokens"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for SpentRefreshTokens {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                "CREATE TABLE IF NOT EXISTS spent_refresh_tokens (
                    token_hash TEXT NOT NULL PRIMARY KEY,
                    connection_id TEXT NOT NULL,
                    spent_at BIGINT NOT NULL
                )"
                .to_owned(),
                "CREATE INDEX IF NOT EXISTS spent_refresh_tokens_spent_at_idx \
                 ON spent_refresh_tokens (spent_at)"
                    .to_owned(),
            ],
        )
        .await
    }
}

/// `m20261130_000007_bulk_requests`: Kit bulk requests waiting for their callback, and their
/// results (see `bulk.rs`). Only the callback token's hash is kept.
#[derive(Debug, Clone, Copy)]
pub struct BulkRequests;

impl MigrationName for BulkRequests {
    fn name(&self) -> &str {
        "m20261130_000007_bulk_requests"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for BulkRequests {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &[
                "CREATE TABLE IF NOT EXISTS bulk_requests (
                    id TEXT NOT NULL PRIMARY KEY,
                    callback_hash TEXT NOT NULL UNIQUE,
                    connection_id TEXT NOT NULL,
                    tenant_name TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    completed_at BIGINT NULL,
                    result TEXT NULL
                )"
                .to_owned(),
                "CREATE INDEX IF NOT EXISTS bulk_requests_created_at_idx \
                 ON bulk_requests (created_at)"
                    .to_owned(),
            ],
        )
        .await
    }
}

/// `m20261130_000008_connections_by_account`: a Kit account's connections across tenants (the
/// unique key leads with the tenant, so it cannot serve them). An import reads them to refuse a
/// refresh token another connection already holds (`holders.rs`); without the index, every
/// import would scan the whole table.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionsByAccount;

impl MigrationName for ConnectionsByAccount {
    fn name(&self) -> &str {
        "m20261130_000008_connections_by_account"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for ConnectionsByAccount {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        run_all(
            manager,
            &["CREATE INDEX IF NOT EXISTS connections_kit_account_id_idx \
               ON connections (kit_account_id)"
                .to_owned()],
        )
        .await
    }
}
