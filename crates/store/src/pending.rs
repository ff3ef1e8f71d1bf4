//! Pending authorizations: an install between its start and Kit's callback, keyed by the hash
//! of its `state`, its PKCE verifier sealed under the key ring. Consumed once, by
//! `DELETE … RETURNING`, and only by the browser that started it.

use kit_oauth_core::StoreError as E;
use kit_oauth_core::{
    ConnectionId, KitRedirect, PendingRecord, PendingTake, PkceVerifier, Restore, Sha256Hash,
    StoreError, Timestamp,
};
use sea_orm::QueryResult;

use crate::crypto::pending_aad;
use crate::sql::{Params, get, parse_tenant, tenant_column};
use crate::store::SeaOrmStore;

pub(crate) const VERIFIER: &str = "verifier";

pub(crate) const PENDING_COLUMNS: &str = "state_hash, key_id, verifier_nonce, verifier_ct, kit_redirect, \
     tenant_name, reinstall_of, browser_binding, started_at, expires_at";

impl SeaOrmStore {
    /// Backs `ConnectionStore::insert_pending`.
    pub(crate) async fn pending_insert(&self, pending: &PendingRecord) -> Result<(), StoreError> {
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

    /// Backs `ConnectionStore::consume_pending_with`. The binding is part of the `DELETE`'s
    /// condition, so a stranger's request cannot remove the row between the right browser's
    /// check and its consumption; the follow-up read only tells "another browser" from
    /// "unknown" for the message.
    pub(crate) async fn pending_consume(
        &self,
        state_hash: &Sha256Hash,
        browser_binding: Option<&Sha256Hash>,
        restore: Restore,
    ) -> Result<PendingTake, StoreError> {
        if let Some(binding) = browser_binding {
            let mut p = Params::new();
            let sql = format!(
                "DELETE FROM pending_authorizations WHERE state_hash = {} AND browser_binding = {} \
                 RETURNING {PENDING_COLUMNS}",
                p.push(state_hash.to_string()),
                p.push(binding.to_string())
            );
            if let Some(row) = self.query_one(sql, p).await? {
                return Ok(PendingTake::Taken(
                    restore.consumed(self.decode_pending(&row)?),
                ));
            }
        }
        let mut p = Params::new();
        let sql = format!(
            "SELECT state_hash FROM pending_authorizations WHERE state_hash = {}",
            p.push(state_hash.to_string())
        );
        Ok(match self.query_one(sql, p).await? {
            Some(_) => PendingTake::OtherBrowser,
            None => PendingTake::Unknown,
        })
    }

    /// Backs `ConnectionStore::purge_expired_pending`.
    pub(crate) async fn pending_purge_expired(&self, now: Timestamp) -> Result<u64, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "DELETE FROM pending_authorizations WHERE expires_at < {}",
            p.push(now.unix_millis())
        );
        self.exec(sql, p).await
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
}
