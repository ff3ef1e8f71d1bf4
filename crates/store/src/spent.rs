//! Spent refresh tokens: the SHA-256 of every refresh token this broker sent to Kit (never the
//! token), so that importing one of them is refused before it reaches Kit. With reuse detection
//! at Kit, sending a spent refresh token once kills the grant's live successor.
//!
//! A hash is recorded when the token is marked in flight — the moment it is spent, whatever
//! Kit answers — and when an import spends one. Rows older than [`SPENT_RETENTION`] are purged,
//! at most once an hour per process, by the recording itself (so a broker that never imports
//! still bounds the table): at Kit's two-hour refresh lifetime a connection spends about twelve
//! tokens a day, so the table holds about 360 rows per connection.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use kit_oauth_core::{ConnectionId, Sha256Hash, StoreError, Timestamp};

use crate::sql::{Params, get};
use crate::store::SeaOrmStore;

/// How long a spent refresh token's hash is kept: 30 days. The copies an import must not
/// resend are the app's own (handed over, then spent by the broker's first refresh) and those
/// of an export; a month covers an adoption that is retried or re-run from an old file, while
/// keeping the table to a bounded size.
pub const SPENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// How often [`SeaOrmStore::record_spent`] also purges.
const PURGE_EVERY_MS: i64 = 60 * 60 * 1000;

/// When this process last purged (Unix ms; `i64::MIN`: never).
static LAST_PURGE: AtomicI64 = AtomicI64::new(i64::MIN);

impl SeaOrmStore {
    /// Records that `token_hash`, a refresh token of `connection`, is being sent to Kit at `at`.
    /// Returns whether this call recorded it: `false` means it was recorded before (a resend
    /// keeps its first time), which makes the record a claim — of two imports racing with one
    /// token, only one may send it.
    ///
    /// # Errors
    /// A database error.
    pub async fn record_spent(
        &self,
        connection: &ConnectionId,
        token_hash: &Sha256Hash,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "INSERT INTO spent_refresh_tokens (token_hash, connection_id, spent_at) \
             VALUES ({}, {}, {}) ON CONFLICT (token_hash) DO NOTHING",
            p.push(token_hash.to_string()),
            p.push(connection.as_str()),
            p.push(at.unix_millis())
        );
        let recorded = self.exec(sql, p).await? == 1;
        let last = LAST_PURGE.load(Ordering::Relaxed);
        let due = last == i64::MIN || at.unix_millis().saturating_sub(last) >= PURGE_EVERY_MS;
        // One caller per hour wins the swap and purges; a failed purge waits for the next hour.
        if due
            && LAST_PURGE
                .compare_exchange(last, at.unix_millis(), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            && let Err(error) = self.purge_spent(at).await
        {
            tracing::warn!(%error, "could not purge expired spent refresh-token hashes");
        }
        Ok(recorded)
    }

    /// Names `connection` as the spender of `token_hash`: an import records the hash under a
    /// fresh id before it knows the account, and the account may turn out to be connected.
    ///
    /// # Errors
    /// A database error.
    pub async fn attribute_spent(
        &self,
        token_hash: &Sha256Hash,
        connection: &ConnectionId,
    ) -> Result<(), StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "UPDATE spent_refresh_tokens SET connection_id = {} WHERE token_hash = {}",
            p.push(connection.as_str()),
            p.push(token_hash.to_string())
        );
        self.exec(sql, p).await.map(drop)
    }

    /// The connection whose refresh token hashed to `token_hash` was spent, if any was within
    /// the retention.
    ///
    /// # Errors
    /// A database error.
    pub async fn spent_by(
        &self,
        token_hash: &Sha256Hash,
    ) -> Result<Option<ConnectionId>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT connection_id FROM spent_refresh_tokens WHERE token_hash = {}",
            p.push(token_hash.to_string())
        );
        let Some(row) = self.query_one(sql, p).await? else {
            return Ok(None);
        };
        let raw: String = get(&row, "connection_id")?;
        ConnectionId::parse(&raw)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(format!("spent token's connection id: {e}")))
    }

    /// Deletes the hashes recorded before `now - SPENT_RETENTION`; returns how many.
    ///
    /// # Errors
    /// A database error.
    pub async fn purge_spent(&self, now: Timestamp) -> Result<u64, StoreError> {
        let cutoff = now
            .unix_millis()
            .saturating_sub(i64::try_from(SPENT_RETENTION.as_millis()).unwrap_or(i64::MAX));
        let mut p = Params::new();
        let sql = format!(
            "DELETE FROM spent_refresh_tokens WHERE spent_at < {}",
            p.push(cutoff)
        );
        self.exec(sql, p).await
    }
}
