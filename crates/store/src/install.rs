//! The install upsert behind `ConnectionStore::upsert_installed`: one transaction that
//! inserts or replaces the (tenant, account) row and then seals its tokens for the id and
//! version the upsert resolved to — the ciphertexts are bound to both, so they can only be
//! written once the row is known.

use kit_oauth_core::StoreError as E;
use kit_oauth_core::{
    ConnectionId, ConnectionRecord, Grant, StateName, StoreError, Timestamp, Version,
};
use sea_orm::{ConnectionTrait, TransactionTrait};

use crate::codec::encode_reason;
use crate::sql::{Params, get, millis, tenant_column, to_i64, to_u64};
use crate::store::SeaOrmStore;

impl SeaOrmStore {
    /// Backs `ConnectionStore::upsert_installed`.
    pub(crate) async fn install_upsert(
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
                Some(encode_reason(r)?),
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
        let txn = self.inner.db.begin().await.map_err(|e| self.db_error(&e))?;
        let row = txn
            .query_one_raw(self.stmt(sql, p))
            .await
            .map_err(|e| self.db_error(&e))?
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
                .map_err(|e| self.db_error(&e))?;
            if written.rows_affected() != 1 {
                return Err(E::Backend("sealing the installed tokens failed".into()));
            }
        }
        txn.commit().await.map_err(|e| self.db_error(&e))?;
        Ok(ConnectionRecord {
            id: ConnectionId::parse(&raw_id).map_err(|e| E::Corrupt(format!("id: {e}")))?,
            version: Version(version),
            created_at: Timestamp::from_unix_millis(created_at),
            ..record.clone()
        })
    }
}
