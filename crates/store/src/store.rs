//! [`SeaOrmStore`]: the `ConnectionStore` port on sea-orm, for SQLite and PostgreSQL — the
//! handle itself, how it connects, migrates and reports readiness. The port's operations live
//! beside it, one concern per module (`connections`, `install`, `lease`, `pending`, `events`,
//! `rotation`), over the row codec (`codec`) and the raw-SQL helpers (`sql`).
//!
//! Every operation that must be atomic is one conditional statement (or, for
//! `upsert_installed`, one transaction that starts with the write), so correctness never
//! depends on an in-process lock and holds across processes sharing the database.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kit_oauth_core::{StoreError, StoreError as E};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};
use sea_orm_migration::MigratorTrait as _;
use tokio::sync::OnceCell;

use crate::crypto::KeyRing;
use crate::error::map_db_err;
use crate::migration::Migrator;
use crate::notify::Notifier;
use crate::reachability::Reachability;

/// Connection settings. The defaults suit both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Pool size. Default: 4 for SQLite (one writer at a time anyway; WAL lets the others
    /// read), 10 for PostgreSQL. A `:memory:` SQLite database always uses 1.
    pub max_connections: Option<u32>,
    /// How long a SQLite statement waits for the write lock before reporting
    /// [`StoreError::Unavailable`].
    pub busy_timeout: Duration,
    /// How long to wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// Run pending migrations on connect (the default).
    pub migrate: bool,
    /// Open the whole pool at connect, all connections at once, and keep it open (off by
    /// default; the broker turns it on). A request that has to open a PostgreSQL connection
    /// waits for it, and with sqlx 0.9.0 one over TLS (`sslmode=prefer`, the default, against
    /// a server with TLS on) costs about 90 ms on loopback: sqlx 0.9.0 no longer sets
    /// `TCP_NODELAY` (sqlx issue #4335, fixed upstream after 0.9.0), so the handshake meets
    /// Nagle and delayed ACKs. A long-running process pays that once, at start-up, in parallel,
    /// not on the first requests (docs/benchmarks.md, "The first page").
    pub warm_pool: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            migrate: true,
            warm_pool: false,
        }
    }
}

/// The storage adapter: sea-orm over SQLite or PostgreSQL, tokens encrypted with a
/// [`KeyRing`]. Cheap to clone (one shared pool).
#[derive(Clone)]
pub struct SeaOrmStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: DatabaseConnection,
    pub(crate) backend: DbBackend,
    pub(crate) keys: KeyRing,
    /// Only PostgreSQL has a listener; without the feature it stays empty.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) notifier: OnceCell<Notifier>,
    /// When the database was last cut off and reached again (the lease takeover rule).
    pub(crate) reachability: Arc<Reachability>,
}

impl fmt::Debug for SeaOrmStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaOrmStore")
            .field("backend", &self.inner.backend)
            .field("keys", &self.inner.keys)
            .finish_non_exhaustive()
    }
}

impl SeaOrmStore {
    /// Opens `url` (`sqlite://path?mode=rwc`, `sqlite::memory:`, or `postgres://…`) and runs
    /// pending migrations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database cannot be reached, or a migration error.
    pub async fn connect(url: &str, keys: KeyRing) -> Result<Self, StoreError> {
        Self::connect_with(url, keys, StoreOptions::default()).await
    }

    /// As [`SeaOrmStore::connect`], with explicit options.
    ///
    /// # Errors
    /// As [`SeaOrmStore::connect`].
    pub async fn connect_with(
        url: &str,
        keys: KeyRing,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let db = open(url, &options).await?;
        let store = Self::from_connection(db, keys);
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Wraps an existing sea-orm connection (no migration is run).
    #[must_use]
    pub fn from_connection(db: DatabaseConnection, keys: KeyRing) -> Self {
        let backend = db.get_database_backend();
        Self {
            inner: Arc::new(Inner {
                db,
                backend,
                keys,
                notifier: OnceCell::new(),
                reachability: Arc::new(Reachability::new()),
            }),
        }
    }

    /// The underlying connection (for operators' tools and tests).
    #[must_use]
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// Which database this is.
    #[must_use]
    pub fn backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// The key ring.
    #[must_use]
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// Applies pending migrations. Safe to call at any time and from several processes at
    /// once: N instances started together on one fresh database all come up.
    ///
    /// PostgreSQL serializes migrators with an advisory lock. SQLite has no such lock, so two
    /// processes may both run a migration (its DDL is idempotent: `IF NOT EXISTS`, columns
    /// added after a `has_column` check) and then both record it; the loser's bookkeeping
    /// insert violates `seaql_migrations`' key, or it finds the file busy. A migrator that
    /// fails re-reads what is still pending: nothing means another process finished the
    /// work, anything else is retried a few times from where it stands, and only an error
    /// that outlives the retries is returned.
    ///
    /// # Errors
    /// A [`StoreError`] when a migration still fails after the retries.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut failures = 0;
        loop {
            let Err(err) = self.migrate_once().await else {
                return Ok(());
            };
            if self.pending_migrations().await.is_ok_and(|p| p.is_empty()) {
                return Ok(());
            }
            failures += 1;
            if failures >= MIGRATE_ATTEMPTS {
                return Err(err);
            }
            tracing::debug!(error = %err, attempt = failures, "migration raced another process; retrying");
            tokio::time::sleep(migrate_backoff(failures)).await;
        }
    }

    async fn migrate_once(&self) -> Result<(), StoreError> {
        let db = &self.inner.db;
        if self.inner.backend == DbBackend::Postgres {
            let txn = db.begin().await.map_err(|e| self.db_error(&e))?;
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7427116735219301)")
                .await
                .map_err(|e| self.db_error(&e))?;
            Migrator::up(&txn, None)
                .await
                .map_err(|e| self.db_error(&e))?;
            txn.commit().await.map_err(|e| self.db_error(&e))
        } else {
            Migrator::up(db, None).await.map_err(|e| self.db_error(&e))
        }
    }

    /// The names of the migrations not yet applied.
    async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let pending = Migrator::get_pending_migrations_read_only(&self.inner.db)
            .await
            .map_err(|e| self.db_error(&e))?;
        Ok(pending.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Ready to serve: the database answers and no migration is pending.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the database does not answer; [`StoreError::Backend`]
    /// naming the pending migrations.
    pub async fn readiness(&self) -> Result<(), StoreError> {
        let db = &self.inner.db;
        db.execute_unprepared("SELECT 1")
            .await
            .map_err(|e| self.db_error(&e))?;
        let pending = self.pending_migrations().await?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(E::Backend(format!(
                "migrations pending: {}",
                pending.join(", ")
            )))
        }
    }
}

/// Opens `connections` pooled connections at once (each `BEGIN` holds one while the others
/// are opening, so the pool opens a new one for each): the pool is full after
/// about one connection's set-up time, and an unreachable database is reported here as a
/// non-lazy connect would.
async fn warm(db: &DatabaseConnection, connections: u32) -> Result<(), sea_orm::DbErr> {
    // Each open transaction holds its connection until all have one.
    let held = futures_util::future::try_join_all((0..connections).map(|_| db.begin())).await?;
    for transaction in held {
        transaction.rollback().await?;
    }
    Ok(())
}

/// How many times a migrator (or a SQLite opener) that lost a race with another process
/// tries again.
const MIGRATE_ATTEMPTS: u32 = 8;

/// 50, 100, 200 … ms, capped at 1 s, with up to 50 % jitter so retrying processes spread out.
fn migrate_backoff(failures: u32) -> Duration {
    let base = 50u64 << failures.min(5).saturating_sub(1);
    let base = base.min(1_000);
    let jitter = rand_core::RngCore::next_u64(&mut rand_core::OsRng) % (base / 2 + 1);
    Duration::from_millis(base + jitter)
}

async fn open(url: &str, options: &StoreOptions) -> Result<DatabaseConnection, StoreError> {
    let sqlite = url.starts_with("sqlite:");
    let memory = sqlite && (url.contains(":memory:") || url.contains("mode=memory"));
    let max = if memory {
        1
    } else {
        options
            .max_connections
            .unwrap_or(if sqlite { 4 } else { 10 })
            .max(1)
    };
    let mut opts = ConnectOptions::new(url.to_owned());
    // A warm pool keeps `max` connections; sqlx would open them one after the other before
    // `connect` returns, so the pool is made lazily and `warm` opens them at once below.
    let min = if options.warm_pool { max } else { 0 };
    opts.max_connections(max)
        .min_connections(min)
        .connect_lazy(options.warm_pool)
        .acquire_timeout(options.acquire_timeout)
        .connect_timeout(options.acquire_timeout)
        .sqlx_logging(false);
    let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if (sqlite && !cfg!(feature = "sqlite")) || (postgres && !cfg!(feature = "postgres")) {
        let feature = if sqlite { "sqlite" } else { "postgres" };
        return Err(E::Backend(format!(
            "this build has no {feature} support: enable the `{feature}` feature of kit-oauth"
        )));
    }
    #[cfg(feature = "sqlite")]
    if sqlite {
        let busy = options.busy_timeout;
        opts.map_sqlx_sqlite_opts(move |o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy)
                .foreign_keys(true)
        });
    }
    // Opening a fresh SQLite file switches it to WAL, which takes an exclusive lock that
    // SQLite reports as `SQLITE_BUSY` at once rather than waiting out the busy timeout. Several
    // instances started together on one new file meet exactly that, so a busy file is tried
    // again, as a migrator that lost a race is; an unreachable server is reported at once.
    let mut failures = 0;
    loop {
        let opened = match Database::connect(opts.clone()).await {
            Ok(db) if options.warm_pool => warm(&db, max).await.map(|()| db),
            other => other,
        };
        let error = match opened {
            Ok(db) => return Ok(db),
            Err(e) => match map_db_err(&e) {
                E::Backend(message) => E::Unavailable(message),
                other => other,
            },
        };
        failures += 1;
        if !sqlite || failures >= MIGRATE_ATTEMPTS || !matches!(error, E::Unavailable(_)) {
            return Err(error);
        }
        tokio::time::sleep(migrate_backoff(failures)).await;
    }
}
