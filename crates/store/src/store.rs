//! [`SeaOrmStore`]: the `ConnectionStore` port on sea-orm, for SQLite and PostgreSQL.
//!
//! Every operation that must be atomic is one conditional statement (or, for
//! `upsert_installed`, one transaction that starts with the write), so correctness never
//! depends on an in-process lock and holds across processes sharing the database.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kit_oauth_core::{AccessToken, StoreError as E};
use kit_oauth_core::{
    ConnectionId, ConnectionRecord, ConnectionStore, Event, Grant, InFlight, KitAccount,
    KitAccountId, KitRedirect, Lease, LeaseOutcome, LeaseOwner, ListQuery, PendingRecord,
    PkceVerifier, RefreshHealth, RefreshToken, Sha256Hash, StateName, StoreError, TenantName,
    Timestamp, TokenSet, UnauthorizedReason, Version,
};
use sea_orm::sea_query::Value;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, QueryResult,
    Statement, TransactionTrait,
};
use sea_orm_migration::MigratorTrait as _;
use tokio::sync::OnceCell;

use crate::crypto::{KeyRing, connection_aad, pending_aad};
use crate::error::map_db_err;
use crate::migration::Migrator;
use crate::notify::Notifier;

/// How often a SQLite waiter re-reads the row.
const SQLITE_POLL: Duration = Duration::from_millis(25);
/// The most rows one `list` returns; `limit = 0` asks for [`DEFAULT_PAGE`].
pub const MAX_PAGE: u32 = 1000;
/// The page size when a [`ListQuery`] leaves `limit` at 0.
pub const DEFAULT_PAGE: u32 = 100;

const ACCESS: &str = "access_token";
const REFRESH: &str = "refresh_token";
const VERIFIER: &str = "verifier";

const CONNECTION_COLUMNS: &str = "id, tenant_name, kit_account_id, account_name, account_email, \
     state, ended_reason, key_id, access_token_nonce, access_token_ct, refresh_token_nonce, \
     refresh_token_ct, scope, issued_at, expires_at, next_refresh_at, version, lease_owner, \
     lease_until, lease_fence, in_flight_hash, in_flight_started_at, consecutive_failures, \
     cooldown_until, early_retry_after, last_error, last_refresh_at, created_at, updated_at";

const PENDING_COLUMNS: &str = "state_hash, key_id, verifier_nonce, verifier_ct, kit_redirect, \
     tenant_name, reinstall_of, browser_binding, started_at, expires_at";

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
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            busy_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(10),
            migrate: true,
        }
    }
}

/// How far a key rotation got; call [`SeaOrmStore::reencrypt_batch`] until `remaining` is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReencryptProgress {
    /// Rows re-encrypted to the current key by this batch.
    pub reencrypted: u64,
    /// Rows a concurrent writer changed first (already written with the current key, or
    /// picked up by the next batch).
    pub skipped: u64,
    /// Rows still sealed with another key after this batch.
    pub remaining: u64,
}

/// The storage adapter: sea-orm over SQLite or PostgreSQL, tokens encrypted with a
/// [`KeyRing`]. Cheap to clone (one shared pool).
#[derive(Clone)]
pub struct SeaOrmStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    backend: DbBackend,
    keys: KeyRing,
    /// Only PostgreSQL has a listener; without the feature it stays empty.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    notifier: OnceCell<Notifier>,
}

impl fmt::Debug for SeaOrmStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaOrmStore")
            .field("backend", &self.inner.backend)
            .field("keys", &self.inner.keys)
            .finish_non_exhaustive()
    }
}

/// Positional parameters: `p.push(v)` returns the `$n` placeholder for `v` (both backends
/// accept `$n`).
struct Params(Vec<Value>);

impl Params {
    fn new() -> Self {
        Self(Vec::new())
    }

    fn push(&mut self, value: impl Into<Value>) -> String {
        self.0.push(value.into());
        format!("${}", self.0.len())
    }
}

/// The columns a grant is stored in.
struct GrantColumns {
    state: &'static str,
    ended_reason: Option<String>,
    key_id: Option<String>,
    access_nonce: Option<Vec<u8>>,
    access_ct: Option<Vec<u8>>,
    refresh_nonce: Option<Vec<u8>>,
    refresh_ct: Option<Vec<u8>>,
    scope: Option<String>,
    issued_at: Option<i64>,
    expires_at: Option<i64>,
}

/// The lease columns of a row.
struct LeaseColumns {
    in_flight_hash: Option<String>,
    in_flight_started_at: Option<i64>,
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| E::Backend(format!("{what} out of range")))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| E::Corrupt(format!("negative {what}")))
}

fn tenant_column(tenant: Option<&TenantName>) -> String {
    tenant.map_or_else(String::new, |t| t.as_str().to_owned())
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T, StoreError> {
    row.try_get::<T>("", column)
        .map_err(|e| E::Corrupt(format!("column {column}: {e}")))
}

fn parse_tenant(raw: &str) -> Result<Option<TenantName>, StoreError> {
    if raw.is_empty() {
        Ok(None)
    } else {
        TenantName::parse(raw)
            .map(Some)
            .map_err(|e| E::Corrupt(format!("tenant_name: {e}")))
    }
}

fn ts(value: Option<i64>) -> Option<Timestamp> {
    value.map(Timestamp::from_unix_millis)
}

fn millis(value: Option<Timestamp>) -> Option<i64> {
    value.map(Timestamp::unix_millis)
}

fn ttl_until(now: Timestamp, ttl: Duration) -> Timestamp {
    now.saturating_add(ttl)
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
    /// once (PostgreSQL serializes them with an advisory lock; the DDL is `IF NOT EXISTS`).
    ///
    /// # Errors
    /// A [`StoreError`] when a migration fails.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let db = &self.inner.db;
        if self.inner.backend == DbBackend::Postgres {
            let txn = db.begin().await.map_err(|e| map_db_err(&e))?;
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(7427116735219301)")
                .await
                .map_err(|e| map_db_err(&e))?;
            Migrator::up(&txn, None).await.map_err(|e| map_db_err(&e))?;
            txn.commit().await.map_err(|e| map_db_err(&e))
        } else {
            Migrator::up(db, None).await.map_err(|e| map_db_err(&e))
        }
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
            .map_err(|e| map_db_err(&e))?;
        let pending = Migrator::get_pending_migrations_read_only(db)
            .await
            .map_err(|e| map_db_err(&e))?;
        if pending.is_empty() {
            Ok(())
        } else {
            let names: Vec<_> = pending.iter().map(|m| m.name().to_owned()).collect();
            Err(E::Backend(format!(
                "migrations pending: {}",
                names.join(", ")
            )))
        }
    }

    fn stmt(&self, sql: impl Into<String>, params: Params) -> Statement {
        Statement::from_sql_and_values(self.inner.backend, sql, params.0)
    }

    async fn exec(&self, sql: impl Into<String>, params: Params) -> Result<u64, StoreError> {
        self.inner
            .db
            .execute_raw(self.stmt(sql, params))
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| map_db_err(&e))
    }

    async fn query_one(
        &self,
        sql: impl Into<String>,
        params: Params,
    ) -> Result<Option<QueryResult>, StoreError> {
        self.inner
            .db
            .query_one_raw(self.stmt(sql, params))
            .await
            .map_err(|e| map_db_err(&e))
    }

    async fn query_all(
        &self,
        sql: impl Into<String>,
        params: Params,
    ) -> Result<Vec<QueryResult>, StoreError> {
        self.inner
            .db
            .query_all_raw(self.stmt(sql, params))
            .await
            .map_err(|e| map_db_err(&e))
    }

    // ----- encoding -----

    fn seal_grant(
        &self,
        grant: &Grant,
        id: &str,
        version: u64,
    ) -> Result<GrantColumns, StoreError> {
        match grant {
            Grant::Active(tokens) => {
                let keys = &self.inner.keys;
                let access = keys.seal(
                    tokens.access().expose_secret().as_bytes(),
                    &connection_aad(id, version, ACCESS),
                )?;
                let refresh = keys.seal(
                    tokens.refresh().expose_secret().as_bytes(),
                    &connection_aad(id, version, REFRESH),
                )?;
                Ok(GrantColumns {
                    state: StateName::Authorized.as_str(),
                    ended_reason: None,
                    key_id: Some(keys.current_key_id().to_owned()),
                    access_nonce: Some(access.nonce),
                    access_ct: Some(access.ciphertext),
                    refresh_nonce: Some(refresh.nonce),
                    refresh_ct: Some(refresh.ciphertext),
                    scope: tokens.scope().map(str::to_owned),
                    issued_at: Some(tokens.issued_at().unix_millis()),
                    expires_at: Some(tokens.expires_at().unix_millis()),
                })
            }
            Grant::Ended(reason) => Ok(GrantColumns {
                state: StateName::Unauthorized.as_str(),
                ended_reason: Some(
                    serde_json::to_string(reason)
                        .map_err(|e| E::Backend(format!("encoding the reason: {e}")))?,
                ),
                key_id: None,
                access_nonce: None,
                access_ct: None,
                refresh_nonce: None,
                refresh_ct: None,
                scope: None,
                issued_at: None,
                expires_at: None,
            }),
        }
    }

    /// `SET` assignments for the data columns of `record` (sealed for `new_version`).
    fn data_assignments(
        &self,
        record: &ConnectionRecord,
        new_version: u64,
        p: &mut Params,
    ) -> Result<String, StoreError> {
        let g = self.seal_grant(&record.grant, record.id.as_str(), new_version)?;
        let h = &record.health;
        Ok(format!(
            "account_name = {}, account_email = {}, state = {}, ended_reason = {}, key_id = {}, \
             access_token_nonce = {}, access_token_ct = {}, refresh_token_nonce = {}, \
             refresh_token_ct = {}, scope = {}, issued_at = {}, expires_at = {}, \
             next_refresh_at = {}, consecutive_failures = {}, cooldown_until = {}, \
             early_retry_after = {}, last_error = {}, last_refresh_at = {}, updated_at = {}, \
             version = {}",
            p.push(record.account.name.clone()),
            p.push(record.account.primary_email.clone()),
            p.push(g.state),
            p.push(g.ended_reason),
            p.push(g.key_id),
            p.push(g.access_nonce),
            p.push(g.access_ct),
            p.push(g.refresh_nonce),
            p.push(g.refresh_ct),
            p.push(g.scope),
            p.push(g.issued_at),
            p.push(g.expires_at),
            p.push(millis(record.next_refresh_at)),
            p.push(i64::from(h.consecutive_failures)),
            p.push(millis(h.cooldown_until)),
            p.push(millis(h.early_retry_after)),
            p.push(h.last_error.clone()),
            p.push(millis(h.last_refresh_at)),
            p.push(record.updated_at.unix_millis()),
            p.push(to_i64(new_version, "version")?),
        ))
    }

    // ----- decoding -----

    fn open_secret(
        &self,
        row: &QueryResult,
        key_id: &str,
        id: &str,
        version: u64,
        column: &str,
    ) -> Result<String, StoreError> {
        let nonce: Option<Vec<u8>> = get(row, &format!("{column}_nonce"))?;
        let ct: Option<Vec<u8>> = get(row, &format!("{column}_ct"))?;
        let (Some(nonce), Some(ct)) = (nonce, ct) else {
            return Err(E::Corrupt(format!("connection {id}: {column} is missing")));
        };
        let plain =
            self.inner
                .keys
                .open(key_id, &nonce, &ct, &connection_aad(id, version, column))?;
        String::from_utf8(plain.to_vec())
            .map_err(|_| E::Corrupt(format!("connection {id}: {column} is not UTF-8")))
    }

    fn decode_connection(
        &self,
        row: &QueryResult,
    ) -> Result<(ConnectionRecord, LeaseColumns), StoreError> {
        let raw_id: String = get(row, "id")?;
        let id = ConnectionId::parse(&raw_id).map_err(|e| E::Corrupt(format!("id: {e}")))?;
        let version = to_u64(get(row, "version")?, "version")?;
        let state: String = get(row, "state")?;
        let grant = match StateName::parse(&state) {
            Some(StateName::Authorized) => {
                let key_id: Option<String> = get(row, "key_id")?;
                let key_id = key_id
                    .ok_or_else(|| E::Corrupt(format!("connection {id}: key_id is missing")))?;
                let access = self.open_secret(row, &key_id, &raw_id, version, ACCESS)?;
                let refresh = self.open_secret(row, &key_id, &raw_id, version, REFRESH)?;
                let issued_at: Option<i64> = get(row, "issued_at")?;
                let expires_at: Option<i64> = get(row, "expires_at")?;
                let (Some(issued_at), Some(expires_at)) = (issued_at, expires_at) else {
                    return Err(E::Corrupt(format!("connection {id}: expiry is missing")));
                };
                Grant::Active(TokenSet::from_parts(
                    AccessToken::new(access),
                    RefreshToken::new(refresh),
                    get(row, "scope")?,
                    Timestamp::from_unix_millis(issued_at),
                    Timestamp::from_unix_millis(expires_at),
                ))
            }
            Some(StateName::Unauthorized) => {
                let reason: Option<String> = get(row, "ended_reason")?;
                let reason = reason
                    .ok_or_else(|| E::Corrupt(format!("connection {id}: reason is missing")))?;
                Grant::Ended(
                    serde_json::from_str::<UnauthorizedReason>(&reason)
                        .map_err(|e| E::Corrupt(format!("connection {id}: reason: {e}")))?,
                )
            }
            _ => {
                return Err(E::Corrupt(format!(
                    "connection {id}: unknown state {state:?}"
                )));
            }
        };
        let account_id: String = get(row, "kit_account_id")?;
        let failures: i64 = get(row, "consecutive_failures")?;
        let record = ConnectionRecord {
            tenant: parse_tenant(&get::<String>(row, "tenant_name")?)?,
            account: KitAccount {
                id: KitAccountId::parse(&account_id)
                    .map_err(|e| E::Corrupt(format!("connection {id}: account id: {e}")))?,
                name: get(row, "account_name")?,
                primary_email: get(row, "account_email")?,
            },
            grant,
            version: Version(version),
            health: RefreshHealth {
                consecutive_failures: u32::try_from(failures).map_err(|_| {
                    E::Corrupt(format!("connection {id}: failure count out of range"))
                })?,
                cooldown_until: ts(get(row, "cooldown_until")?),
                early_retry_after: ts(get(row, "early_retry_after")?),
                last_error: get(row, "last_error")?,
                last_refresh_at: ts(get(row, "last_refresh_at")?),
            },
            next_refresh_at: ts(get(row, "next_refresh_at")?),
            created_at: Timestamp::from_unix_millis(get(row, "created_at")?),
            updated_at: Timestamp::from_unix_millis(get(row, "updated_at")?),
            id,
        };
        let lease = LeaseColumns {
            in_flight_hash: get(row, "in_flight_hash")?,
            in_flight_started_at: get(row, "in_flight_started_at")?,
        };
        Ok((record, lease))
    }

    fn decode_pending(&self, row: &QueryResult) -> Result<PendingRecord, StoreError> {
        let hash_hex: String = get(row, "state_hash")?;
        let state_hash = Sha256Hash::from_hex(&hash_hex)
            .map_err(|e| E::Corrupt(format!("pending state_hash: {e}")))?;
        let key_id: String = get(row, "key_id")?;
        let nonce: Vec<u8> = get(row, "verifier_nonce")?;
        let ct: Vec<u8> = get(row, "verifier_ct")?;
        let plain =
            self.inner
                .keys
                .open(&key_id, &nonce, &ct, &pending_aad(&hash_hex, VERIFIER))?;
        let verifier = std::str::from_utf8(&plain)
            .ok()
            .and_then(|v| PkceVerifier::parse(v).ok())
            .ok_or_else(|| E::Corrupt("pending verifier is malformed".into()))?;
        let reinstall_of: Option<String> = get(row, "reinstall_of")?;
        let binding: String = get(row, "browser_binding")?;
        Ok(PendingRecord {
            state_hash,
            verifier,
            kit_redirect: KitRedirect::try_from(get::<String>(row, "kit_redirect")?)
                .map_err(|e| E::Corrupt(format!("pending redirect: {e}")))?,
            tenant: parse_tenant(&get::<String>(row, "tenant_name")?)?,
            reinstall_of: reinstall_of
                .map(|r| ConnectionId::parse(&r))
                .transpose()
                .map_err(|e| E::Corrupt(format!("pending reinstall_of: {e}")))?,
            browser_binding: Sha256Hash::from_hex(&binding)
                .map_err(|e| E::Corrupt(format!("pending browser_binding: {e}")))?,
            started_at: Timestamp::from_unix_millis(get(row, "started_at")?),
            expires_at: Timestamp::from_unix_millis(get(row, "expires_at")?),
        })
    }

    // ----- helpers for failed conditional writes -----

    /// Why a conditional write under `lease` touched no row.
    async fn lease_write_failure(
        &self,
        lease: &Lease,
        expected: Option<Version>,
    ) -> Result<StoreError, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT version, lease_owner, lease_fence FROM connections WHERE id = {}",
            p.push(lease.connection.as_str())
        );
        let Some(row) = self.query_one(sql, p).await? else {
            return Ok(E::NotFound(lease.connection.clone()));
        };
        let owner: Option<String> = get(&row, "lease_owner")?;
        let fence: i64 = get(&row, "lease_fence")?;
        let version: i64 = get(&row, "version")?;
        if owner.as_deref() != Some(lease.owner.0.as_str())
            || fence != to_i64(lease.fence, "fence")?
        {
            return Ok(E::LeaseLost(lease.connection.clone()));
        }
        match expected {
            Some(expected) if to_i64(expected.0, "version")? != version => Ok(E::Conflict {
                id: lease.connection.clone(),
                expected: expected.0,
            }),
            // The row matched when re-read: a concurrent change came and went. Report the
            // lease as lost rather than claim success.
            _ => Ok(E::LeaseLost(lease.connection.clone())),
        }
    }

    async fn release_fenced(&self, id: &ConnectionId, owner: &LeaseOwner, fence: i64) {
        let mut p = Params::new();
        let sql = format!(
            "UPDATE connections SET lease_owner = NULL, lease_until = NULL \
             WHERE id = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(id.as_str()),
            p.push(owner.0.clone()),
            p.push(fence)
        );
        if let Err(error) = self.exec(sql, p).await {
            tracing::warn!(connection = %id, %error, "could not release a lease on an unreadable row");
        }
    }

    /// Whether a waiter should wake: the row is gone, its version moved, or its lease is free.
    async fn changed(&self, id: &ConnectionId, seen: Version) -> Result<bool, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT version, lease_owner FROM connections WHERE id = {}",
            p.push(id.as_str())
        );
        let Some(row) = self.query_one(sql, p).await? else {
            return Ok(true);
        };
        let version: i64 = get(&row, "version")?;
        let owner: Option<String> = get(&row, "lease_owner")?;
        Ok(version != to_i64(seen.0, "version")? || owner.is_none())
    }

    /// Without the `postgres` feature there is no listener: waiters poll.
    #[cfg(not(feature = "postgres"))]
    #[allow(clippy::unused_async)]
    async fn notifier(&self) -> Option<&Notifier> {
        None
    }

    #[cfg(feature = "postgres")]
    async fn notifier(&self) -> Option<&Notifier> {
        if self.inner.backend != DbBackend::Postgres {
            return None;
        }
        let pool = self.inner.db.get_postgres_connection_pool();
        match self
            .inner
            .notifier
            .get_or_try_init(|| Notifier::start(pool.clone()))
            .await
        {
            Ok(notifier) => Some(notifier),
            Err(error) => {
                tracing::warn!(%error, "could not LISTEN for changes; polling instead");
                None
            }
        }
    }

    // ----- key rotation -----

    /// Re-encrypts up to `limit` rows (connections, then pending installs) that are sealed
    /// with a key other than the current one. Each row is rewritten only if it did not change
    /// since it was read (compare-and-swap on its version and key id), and the version is not
    /// bumped — re-encryption is invisible to concurrent refreshes. Call until
    /// `remaining == 0`; it resumes where it stopped, since the rows themselves say which key
    /// sealed them.
    ///
    /// # Errors
    /// [`StoreError::UnknownKey`] when a row's key is not in the ring (add the old key behind
    /// the new one), [`StoreError::Integrity`] for a tampered row, or a database error.
    pub async fn reencrypt_batch(&self, limit: u32) -> Result<ReencryptProgress, StoreError> {
        let current = self.inner.keys.current_key_id().to_owned();
        let mut progress = ReencryptProgress::default();
        let mut p = Params::new();
        let sql = format!(
            "SELECT id, version, key_id, access_token_nonce, access_token_ct, \
             refresh_token_nonce, refresh_token_ct FROM connections \
             WHERE key_id IS NOT NULL AND key_id <> {} ORDER BY id LIMIT {}",
            p.push(current.clone()),
            p.push(i64::from(limit))
        );
        let rows = self.query_all(sql, p).await?;
        let mut budget = u64::from(limit).saturating_sub(rows.len() as u64);
        for row in &rows {
            let id: String = get(row, "id")?;
            let version: i64 = get(row, "version")?;
            let key_id: String = get(row, "key_id")?;
            let v = to_u64(version, "version")?;
            let access = self.open_secret(row, &key_id, &id, v, ACCESS)?;
            let refresh = self.open_secret(row, &key_id, &id, v, REFRESH)?;
            let keys = &self.inner.keys;
            let a = keys.seal(access.as_bytes(), &connection_aad(&id, v, ACCESS))?;
            let r = keys.seal(refresh.as_bytes(), &connection_aad(&id, v, REFRESH))?;
            let mut p = Params::new();
            let sql = format!(
                "UPDATE connections SET key_id = {}, access_token_nonce = {}, \
                 access_token_ct = {}, refresh_token_nonce = {}, refresh_token_ct = {} \
                 WHERE id = {} AND version = {} AND key_id = {}",
                p.push(current.clone()),
                p.push(a.nonce),
                p.push(a.ciphertext),
                p.push(r.nonce),
                p.push(r.ciphertext),
                p.push(id.clone()),
                p.push(version),
                p.push(key_id)
            );
            if self.exec(sql, p).await? == 1 {
                progress.reencrypted += 1;
            } else {
                progress.skipped += 1;
            }
        }
        if budget > 0 {
            let mut p = Params::new();
            let sql = format!(
                "SELECT {PENDING_COLUMNS} FROM pending_authorizations WHERE key_id <> {} \
                 ORDER BY state_hash LIMIT {}",
                p.push(current.clone()),
                p.push(to_i64(budget, "limit")?)
            );
            for row in self.query_all(sql, p).await? {
                budget = budget.saturating_sub(1);
                let hash: String = get(&row, "state_hash")?;
                let key_id: String = get(&row, "key_id")?;
                let nonce: Vec<u8> = get(&row, "verifier_nonce")?;
                let ct: Vec<u8> = get(&row, "verifier_ct")?;
                let aad = pending_aad(&hash, VERIFIER);
                let plain = self.inner.keys.open(&key_id, &nonce, &ct, &aad)?;
                let sealed = self.inner.keys.seal(&plain, &aad)?;
                let mut p = Params::new();
                let sql = format!(
                    "UPDATE pending_authorizations SET key_id = {}, verifier_nonce = {}, \
                     verifier_ct = {} WHERE state_hash = {} AND key_id = {}",
                    p.push(current.clone()),
                    p.push(sealed.nonce),
                    p.push(sealed.ciphertext),
                    p.push(hash),
                    p.push(key_id)
                );
                if self.exec(sql, p).await? == 1 {
                    progress.reencrypted += 1;
                } else {
                    progress.skipped += 1;
                }
            }
        }
        let mut p = Params::new();
        let c1 = p.push(current);
        let sql = format!(
            "SELECT (SELECT COUNT(*) FROM connections WHERE key_id IS NOT NULL AND key_id <> {c1}) \
             + (SELECT COUNT(*) FROM pending_authorizations WHERE key_id <> {c1}) AS remaining"
        );
        let remaining: i64 = match self.query_one(sql, p).await? {
            Some(row) => get(&row, "remaining")?,
            None => 0,
        };
        progress.remaining = to_u64(remaining, "count")?;
        Ok(progress)
    }

    // ----- diagnostics -----

    fn list_due_sql(&self, now: Timestamp, limit: u32, p: &mut Params) -> String {
        let now = p.push(now.unix_millis());
        let limit = p.push(i64::from(limit.min(MAX_PAGE)));
        let lock = if self.inner.backend == DbBackend::Postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        format!(
            "SELECT id FROM connections WHERE next_refresh_at <= {now} AND state = 'authorized' \
             AND (cooldown_until IS NULL OR cooldown_until <= {now}) \
             AND (lease_owner IS NULL OR lease_until <= {now}) \
             ORDER BY next_refresh_at LIMIT {limit}{lock}"
        )
    }

    /// The query plan of [`ConnectionStore::list_due`] (`EXPLAIN QUERY PLAN` on SQLite,
    /// `EXPLAIN` on PostgreSQL), one line per plan row — to check it uses the index on
    /// `next_refresh_at`.
    ///
    /// # Errors
    /// A database error.
    pub async fn list_due_plan(&self, now: Timestamp, limit: u32) -> Result<String, StoreError> {
        let mut p = Params::new();
        let sql = self.list_due_sql(now, limit, &mut p);
        let (explain, column) = match self.inner.backend {
            DbBackend::Postgres => ("EXPLAIN", "QUERY PLAN"),
            _ => ("EXPLAIN QUERY PLAN", "detail"),
        };
        let rows = self.query_all(format!("{explain} {sql}"), p).await?;
        let lines = rows
            .iter()
            .map(|row| get::<String>(row, column))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(lines.join("\n"))
    }
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
    opts.max_connections(max)
        .min_connections(0)
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
    Database::connect(opts)
        .await
        .map_err(|e| match map_db_err(&e) {
            E::Backend(message) => E::Unavailable(message),
            other => other,
        })
}

impl ConnectionStore for SeaOrmStore {
    async fn get(&self, id: &ConnectionId) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = {}",
            p.push(id.as_str())
        );
        match self.query_one(sql, p).await? {
            Some(row) => Ok(Some(self.decode_connection(&row)?.0)),
            None => Ok(None),
        }
    }

    async fn find_by_account(
        &self,
        tenant: Option<&TenantName>,
        account: &KitAccountId,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT {CONNECTION_COLUMNS} FROM connections \
             WHERE tenant_name = {} AND kit_account_id = {}",
            p.push(tenant_column(tenant)),
            p.push(account.as_str())
        );
        match self.query_one(sql, p).await? {
            Some(row) => Ok(Some(self.decode_connection(&row)?.0)),
            None => Ok(None),
        }
    }

    async fn upsert_installed(
        &self,
        record: &ConnectionRecord,
    ) -> Result<ConnectionRecord, StoreError> {
        // The row's id and version are only known once the upsert has resolved, and the
        // ciphertexts are bound to both: upsert the plain columns, then seal the tokens for the
        // row as it now is — in one transaction, which starts with the write (so SQLite takes
        // the write lock up front and PostgreSQL holds the row lock until commit).
        let (state, reason, scope, issued, expires) = match &record.grant {
            Grant::Active(t) => (
                StateName::Authorized.as_str(),
                None,
                t.scope().map(str::to_owned),
                Some(t.issued_at().unix_millis()),
                Some(t.expires_at().unix_millis()),
            ),
            Grant::Ended(r) => (
                StateName::Unauthorized.as_str(),
                Some(
                    serde_json::to_string(r)
                        .map_err(|e| E::Backend(format!("encoding the reason: {e}")))?,
                ),
                None,
                None,
                None,
            ),
        };
        let h = &record.health;
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO connections (id, tenant_name, kit_account_id, account_name, \
             account_email, state, ended_reason, scope, issued_at, expires_at, next_refresh_at, \
             version, lease_fence, consecutive_failures, cooldown_until, early_retry_after, \
             last_error, last_refresh_at, created_at, updated_at) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 0, {}, {}, {}, {}, {}, {}, \
             {}) \
             ON CONFLICT (tenant_name, kit_account_id) DO UPDATE SET \
             account_name = excluded.account_name, account_email = excluded.account_email, \
             state = excluded.state, ended_reason = excluded.ended_reason, key_id = NULL, \
             access_token_nonce = NULL, access_token_ct = NULL, refresh_token_nonce = NULL, \
             refresh_token_ct = NULL, scope = excluded.scope, issued_at = excluded.issued_at, \
             expires_at = excluded.expires_at, next_refresh_at = excluded.next_refresh_at, \
             version = connections.version + 1, \
             consecutive_failures = excluded.consecutive_failures, \
             cooldown_until = excluded.cooldown_until, \
             early_retry_after = excluded.early_retry_after, last_error = excluded.last_error, \
             last_refresh_at = excluded.last_refresh_at, updated_at = excluded.updated_at \
             RETURNING id, version, created_at",
            p.push(record.id.as_str()),
            p.push(tenant_column(record.tenant.as_ref())),
            p.push(record.account.id.as_str()),
            p.push(record.account.name.clone()),
            p.push(record.account.primary_email.clone()),
            p.push(state),
            p.push(reason),
            p.push(scope),
            p.push(issued),
            p.push(expires),
            p.push(millis(record.next_refresh_at)),
            p.push(to_i64(Version::INITIAL.0, "version")?),
            p.push(i64::from(h.consecutive_failures)),
            p.push(millis(h.cooldown_until)),
            p.push(millis(h.early_retry_after)),
            p.push(h.last_error.clone()),
            p.push(millis(h.last_refresh_at)),
            p.push(record.created_at.unix_millis()),
            p.push(record.updated_at.unix_millis()),
        );
        let txn = self.inner.db.begin().await.map_err(|e| map_db_err(&e))?;
        let row = txn
            .query_one_raw(self.stmt(sql, p))
            .await
            .map_err(|e| map_db_err(&e))?
            .ok_or_else(|| E::Backend("upsert returned no row".into()))?;
        let raw_id: String = get(&row, "id")?;
        let version = to_u64(get(&row, "version")?, "version")?;
        let created_at: i64 = get(&row, "created_at")?;
        if let Grant::Active(_) = &record.grant {
            let g = self.seal_grant(&record.grant, &raw_id, version)?;
            let mut p = Params::new();
            let sql = format!(
                "UPDATE connections SET key_id = {}, access_token_nonce = {}, \
                 access_token_ct = {}, refresh_token_nonce = {}, refresh_token_ct = {} \
                 WHERE id = {} AND version = {}",
                p.push(g.key_id),
                p.push(g.access_nonce),
                p.push(g.access_ct),
                p.push(g.refresh_nonce),
                p.push(g.refresh_ct),
                p.push(raw_id.clone()),
                p.push(to_i64(version, "version")?)
            );
            let written = txn
                .execute_raw(self.stmt(sql, p))
                .await
                .map_err(|e| map_db_err(&e))?;
            if written.rows_affected() != 1 {
                return Err(E::Backend("sealing the installed tokens failed".into()));
            }
        }
        txn.commit().await.map_err(|e| map_db_err(&e))?;
        Ok(ConnectionRecord {
            id: ConnectionId::parse(&raw_id).map_err(|e| E::Corrupt(format!("id: {e}")))?,
            version: Version(version),
            created_at: Timestamp::from_unix_millis(created_at),
            ..record.clone()
        })
    }

    async fn put(
        &self,
        record: &ConnectionRecord,
        expected: Version,
    ) -> Result<Version, StoreError> {
        let new_version = expected.next();
        let mut p = Params::new();
        let set = self.data_assignments(record, new_version.0, &mut p)?;
        let sql = format!(
            "UPDATE connections SET {set} WHERE id = {} AND version = {}",
            p.push(record.id.as_str()),
            p.push(to_i64(expected.0, "version")?)
        );
        if self.exec(sql, p).await? == 1 {
            return Ok(new_version);
        }
        if self.get_version(&record.id).await?.is_none() {
            Err(E::NotFound(record.id.clone()))
        } else {
            Err(E::Conflict {
                id: record.id.clone(),
                expected: expected.0,
            })
        }
    }

    async fn delete(&self, id: &ConnectionId) -> Result<bool, StoreError> {
        let mut p = Params::new();
        let sql = format!("DELETE FROM connections WHERE id = {}", p.push(id.as_str()));
        Ok(self.exec(sql, p).await? > 0)
    }

    async fn list(&self, query: &ListQuery) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut p = Params::new();
        let mut sql = format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE 1 = 1");
        if let Some(tenant) = &query.tenant {
            sql.push_str(&format!(
                " AND tenant_name = {}",
                p.push(tenant_column(tenant.as_ref()))
            ));
        }
        match query.state {
            None => {}
            Some(state @ (StateName::Authorized | StateName::Unauthorized)) => {
                sql.push_str(&format!(" AND state = {}", p.push(state.as_str())));
            }
            // Pending installs are not connections, and expiry is derived from a clock the
            // store does not have.
            Some(StateName::Pending | StateName::Expired) => return Ok(Vec::new()),
        }
        if let Some(after) = &query.after {
            sql.push_str(&format!(" AND id > {}", p.push(after.as_str())));
        }
        let limit = if query.limit == 0 {
            DEFAULT_PAGE
        } else {
            query.limit.min(MAX_PAGE)
        };
        sql.push_str(&format!(" ORDER BY id LIMIT {}", p.push(i64::from(limit))));
        self.query_all(sql, p)
            .await?
            .iter()
            .map(|row| self.decode_connection(row).map(|(record, _)| record))
            .collect()
    }

    async fn list_due(&self, now: Timestamp, limit: u32) -> Result<Vec<ConnectionId>, StoreError> {
        let mut p = Params::new();
        let sql = self.list_due_sql(now, limit, &mut p);
        self.query_all(sql, p)
            .await?
            .iter()
            .map(|row| {
                let id: String = get(row, "id")?;
                ConnectionId::parse(&id).map_err(|e| E::Corrupt(format!("id: {e}")))
            })
            .collect()
    }

    async fn insert_pending(&self, pending: &PendingRecord) -> Result<(), StoreError> {
        let hash = pending.state_hash.to_string();
        let sealed = self.inner.keys.seal(
            pending.verifier.expose_secret().as_bytes(),
            &pending_aad(&hash, VERIFIER),
        )?;
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO pending_authorizations ({PENDING_COLUMNS}) \
             VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            p.push(hash),
            p.push(self.inner.keys.current_key_id().to_owned()),
            p.push(sealed.nonce),
            p.push(sealed.ciphertext),
            p.push(pending.kit_redirect.to_string()),
            p.push(tenant_column(pending.tenant.as_ref())),
            p.push(pending.reinstall_of.as_ref().map(|r| r.as_str().to_owned())),
            p.push(pending.browser_binding.to_string()),
            p.push(pending.started_at.unix_millis()),
            p.push(pending.expires_at.unix_millis()),
        );
        self.exec(sql, p).await.map(|_| ())
    }

    async fn consume_pending(
        &self,
        state_hash: &Sha256Hash,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "DELETE FROM pending_authorizations WHERE state_hash = {} RETURNING {PENDING_COLUMNS}",
            p.push(state_hash.to_string())
        );
        match self.query_one(sql, p).await? {
            Some(row) => self.decode_pending(&row).map(Some),
            None => Ok(None),
        }
    }

    async fn purge_expired_pending(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "DELETE FROM pending_authorizations WHERE expires_at < {}",
            p.push(now.unix_millis())
        );
        self.exec(sql, p).await
    }

    async fn acquire_lease(
        &self,
        id: &ConnectionId,
        owner: &LeaseOwner,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<LeaseOutcome, StoreError> {
        let until = ttl_until(now, ttl);
        // A lease released between our refused UPDATE and the read that says who holds it is
        // simply tried again; a handful of rounds covers any real interleaving.
        for _ in 0..5 {
            let mut p = Params::new();
            let sql = format!(
                "UPDATE connections SET lease_owner = {}, lease_until = {}, \
                 lease_fence = lease_fence + 1 \
                 WHERE id = {} AND (lease_owner IS NULL OR lease_until <= {}) \
                 RETURNING {CONNECTION_COLUMNS}",
                p.push(owner.0.clone()),
                p.push(until.unix_millis()),
                p.push(id.as_str()),
                p.push(now.unix_millis())
            );
            if let Some(row) = self.query_one(sql, p).await? {
                let fence: i64 = get(&row, "lease_fence")?;
                let (record, lease_cols) = match self.decode_connection(&row) {
                    Ok(decoded) => decoded,
                    Err(error) => {
                        // Do not sit on a lease for a row nobody can use.
                        self.release_fenced(id, owner, fence).await;
                        return Err(error);
                    }
                };
                let previous_in_flight = match (
                    lease_cols.in_flight_hash.as_deref(),
                    lease_cols.in_flight_started_at,
                ) {
                    (Some(hash), Some(started)) => Some(InFlight {
                        refresh_token: Sha256Hash::from_hex(hash)
                            .map_err(|e| E::Corrupt(format!("in_flight_hash: {e}")))?,
                        started_at: Timestamp::from_unix_millis(started),
                    }),
                    _ => None,
                };
                return Ok(LeaseOutcome::Acquired {
                    lease: Lease {
                        connection: id.clone(),
                        owner: owner.clone(),
                        fence: to_u64(fence, "lease_fence")?,
                        until,
                    },
                    record: Box::new(record),
                    previous_in_flight,
                });
            }
            let mut p = Params::new();
            let sql = format!(
                "SELECT lease_owner, lease_until FROM connections WHERE id = {}",
                p.push(id.as_str())
            );
            let Some(row) = self.query_one(sql, p).await? else {
                return Err(E::NotFound(id.clone()));
            };
            let holder: Option<String> = get(&row, "lease_owner")?;
            let held_until: Option<i64> = get(&row, "lease_until")?;
            if let (Some(holder), Some(held_until)) = (holder, held_until)
                && held_until > now.unix_millis()
            {
                return Ok(LeaseOutcome::Held {
                    owner: LeaseOwner(holder),
                    until: Timestamp::from_unix_millis(held_until),
                });
            }
        }
        Err(E::Unavailable(format!(
            "the lease on connection {id} is changing hands too fast"
        )))
    }

    async fn mark_in_flight(&self, lease: &Lease, in_flight: &InFlight) -> Result<(), StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "UPDATE connections SET in_flight_hash = {}, in_flight_started_at = {} \
             WHERE id = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(in_flight.refresh_token.to_string()),
            p.push(in_flight.started_at.unix_millis()),
            p.push(lease.connection.as_str()),
            p.push(lease.owner.0.clone()),
            p.push(to_i64(lease.fence, "fence")?)
        );
        if self.exec(sql, p).await? == 1 {
            Ok(())
        } else {
            Err(self.lease_write_failure(lease, None).await?)
        }
    }

    async fn commit_refresh(
        &self,
        lease: &Lease,
        record: &ConnectionRecord,
        expected: Version,
    ) -> Result<Version, StoreError> {
        if record.id != lease.connection {
            return Err(E::LeaseLost(record.id.clone()));
        }
        let new_version = expected.next();
        let mut p = Params::new();
        let set = self.data_assignments(record, new_version.0, &mut p)?;
        let sql = format!(
            "UPDATE connections SET {set}, lease_owner = NULL, lease_until = NULL, \
             in_flight_hash = NULL, in_flight_started_at = NULL \
             WHERE id = {} AND version = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(record.id.as_str()),
            p.push(to_i64(expected.0, "version")?),
            p.push(lease.owner.0.clone()),
            p.push(to_i64(lease.fence, "fence")?)
        );
        if self.exec(sql, p).await? == 1 {
            Ok(new_version)
        } else {
            Err(self.lease_write_failure(lease, Some(expected)).await?)
        }
    }

    async fn release_lease(
        &self,
        lease: &Lease,
        health: Option<&RefreshHealth>,
        refresh_token_unspent: bool,
    ) -> Result<bool, StoreError> {
        let mut p = Params::new();
        let mut set = String::from("lease_owner = NULL, lease_until = NULL");
        if let Some(h) = health {
            set.push_str(&format!(
                ", consecutive_failures = {}, cooldown_until = {}, early_retry_after = {}, \
                 last_error = {}, last_refresh_at = {}",
                p.push(i64::from(h.consecutive_failures)),
                p.push(millis(h.cooldown_until)),
                p.push(millis(h.early_retry_after)),
                p.push(h.last_error.clone()),
                p.push(millis(h.last_refresh_at))
            ));
        }
        if refresh_token_unspent {
            set.push_str(", in_flight_hash = NULL, in_flight_started_at = NULL");
        }
        let sql = format!(
            "UPDATE connections SET {set} WHERE id = {} AND lease_owner = {} AND lease_fence = {}",
            p.push(lease.connection.as_str()),
            p.push(lease.owner.0.clone()),
            p.push(to_i64(lease.fence, "fence")?)
        );
        Ok(self.exec(sql, p).await? == 1)
    }

    async fn wait_for_change(
        &self,
        id: &ConnectionId,
        seen: Version,
        timeout: Duration,
    ) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut notifications = self.notifier().await.map(Notifier::subscribe);
        loop {
            if self.changed(id, seen).await? {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            let left = deadline - now;
            match notifications.as_mut() {
                Some(rx) => {
                    // A notification for this row, or a periodic re-read in case one was
                    // lost while the listener reconnected.
                    let slice = left.min(crate::notify::FALLBACK_POLL);
                    let _ = tokio::time::timeout(slice, rx.wait_for(id.as_str())).await;
                }
                None => tokio::time::sleep(left.min(SQLITE_POLL)).await,
            }
        }
    }

    async fn append_event(&self, event: &Event) -> Result<(), StoreError> {
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
}

impl SeaOrmStore {
    async fn get_version(&self, id: &ConnectionId) -> Result<Option<i64>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT version FROM connections WHERE id = {}",
            p.push(id.as_str())
        );
        match self.query_one(sql, p).await? {
            Some(row) => Ok(Some(get(&row, "version")?)),
            None => Ok(None),
        }
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
}
