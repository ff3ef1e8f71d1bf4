//! # kit-oauth-store — durable, encrypted storage on sea-orm
//!
//! [`SeaOrmStore`] implements [`kit_oauth_core::ConnectionStore`] on SQLite (the embedded
//! default: one file, WAL, busy timeout, foreign keys on) and PostgreSQL (several instances
//! sharing one database).
//!
//! - **Encryption at rest**: access and refresh tokens and PKCE verifiers are sealed with
//!   AES-256-GCM under a [`KeyRing`] (`KIT_OAUTH_ENCRYPTION_KEY`), a fresh nonce per write,
//!   bound to their row, version and column. [`SeaOrmStore::reencrypt_batch`] rotates keys
//!   online.
//! - **Compare-and-swap** on a `version` column for every token write.
//! - **Refresh leases** with an owner and a fencing counter, taken by one conditional
//!   `UPDATE … RETURNING`; waiters wake on PostgreSQL `NOTIFY` or a bounded SQLite poll.
//! - **Single-use installs**: `DELETE … RETURNING` on the hash of the `state`.
//! - **Migrations** ([`Migrator`]) run on [`SeaOrmStore::connect`] and on demand
//!   ([`SeaOrmStore::migrate`]); [`SeaOrmStore::readiness`] backs `/readyz`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kit_oauth_store::{KeyRing, SeaOrmStore};
//! let store = SeaOrmStore::connect(kit_oauth_store::DEFAULT_DATABASE_URL, KeyRing::from_env()?).await?;
//! store.readiness().await?;
//! # Ok(()) }
//! ```

mod bulk;
mod codec;
mod connections;
mod crypto;
mod dashboard;
mod error;
mod events;
mod fleet;
mod holders;
mod install;
mod lease;
mod migration;
mod notify;
mod pending;
mod reachability;
mod rotation;
mod seed;
mod spent;
mod sql;
mod stats;
mod store;

pub use bulk::{BULK_RESULT_MAX_BYTES, BulkCompletion, BulkRecord, NewBulkRequest};
pub use connections::{DEFAULT_PAGE, MAX_PAGE};
pub use crypto::{DEFAULT_KEY_ID, ENCRYPTION_KEY_ENV, KEY_LEN, KeyRing, KeyRingError};
pub use events::{EventCursor, HourCounts, StoredEvent};
pub use fleet::{FleetCounts, FleetFilter, FleetQuery};
pub use migration::{
    BulkRequests, CHANGE_CHANNEL, ConnectionsByAccount, CreateTables, EarlyRetry, FleetIndexes,
    IndexesAndEvents, Migrator, SpentRefreshTokens,
};
pub use rotation::ReencryptProgress;
pub use sea_orm_migration::MigratorTrait;
pub use seed::{SEED_BATCH, seed_record};
pub use spent::SPENT_RETENTION;
pub use stats::ConnectionCounts;
pub use store::{SeaOrmStore, StoreOptions};

/// The default `DATABASE_URL`: a SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://kit-oauth.db?mode=rwc";
