//! Key rotation: re-encrypting rows sealed with an older key to the current one, online and in
//! batches, without bumping versions.

use kit_oauth_core::StoreError;

use crate::codec::{ACCESS, REFRESH};
use crate::crypto::{connection_aad, pending_aad};
use crate::pending::{PENDING_COLUMNS, VERIFIER};
use crate::sql::{Params, get, to_i64, to_u64};
use crate::store::SeaOrmStore;

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

impl SeaOrmStore {
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
}
