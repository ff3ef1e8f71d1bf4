//! Bulk seeding: many connection rows in a few statements, sealed exactly as every other writer
//! seals them (the `codec`'s grant columns, bound to row, version and column), so a seeded row
//! is indistinguishable from an installed one. For load harnesses and tests that need a large
//! table without a million installs; a production path writes rows one at a time through the
//! install flow.

use kit_oauth_core::{ConnectionRecord, StoreError};

use crate::sql::{Params, millis, tenant_column, to_i64};
use crate::store::SeaOrmStore;

/// Rows per `INSERT`: 24 parameters each, well under SQLite's 32,766 and PostgreSQL's 65,535
/// bound parameters per statement.
pub const SEED_BATCH: usize = 1000;

const SEED_COLUMNS: &str = "id, tenant_name, kit_account_id, account_name, account_email, state, \
     ended_reason, key_id, access_token_nonce, access_token_ct, refresh_token_nonce, \
     refresh_token_ct, scope, issued_at, expires_at, next_refresh_at, version, \
     consecutive_failures, cooldown_until, early_retry_after, last_error, last_refresh_at, \
     created_at, updated_at";

impl SeaOrmStore {
    /// Inserts `records` as they are (each at its own `version`, no lease), [`SEED_BATCH`]
    /// rows per multi-row `INSERT`. Returns how many rows were inserted.
    ///
    /// # Errors
    /// A database error, or a row that would break a unique key (an id, or a tenant and
    /// account pair, already stored): the batch holding it is not inserted.
    pub async fn seed_connections(&self, records: &[ConnectionRecord]) -> Result<u64, StoreError> {
        let mut inserted = 0;
        for batch in records.chunks(SEED_BATCH) {
            let mut p = Params::new();
            let mut values = Vec::with_capacity(batch.len());
            for record in batch {
                values.push(self.seed_values(record, &mut p)?);
            }
            let sql = format!(
                "INSERT INTO connections ({SEED_COLUMNS}) VALUES {}",
                values.join(", ")
            );
            inserted += self.exec(sql, p).await?;
        }
        Ok(inserted)
    }

    fn seed_values(&self, r: &ConnectionRecord, p: &mut Params) -> Result<String, StoreError> {
        let g = self.seal_grant(&r.grant, r.id.as_str(), r.version.0)?;
        let h = &r.health;
        let columns = [
            p.push(r.id.as_str()),
            p.push(tenant_column(r.tenant.as_ref())),
            p.push(r.account.id.as_str()),
            p.push(r.account.name.clone()),
            p.push(r.account.primary_email.clone()),
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
            p.push(millis(r.next_refresh_at)),
            p.push(to_i64(r.version.0, "version")?),
            p.push(i64::from(h.consecutive_failures)),
            p.push(millis(h.cooldown_until)),
            p.push(millis(h.early_retry_after)),
            p.push(h.last_error.clone()),
            p.push(millis(h.last_refresh_at)),
            p.push(r.created_at.unix_millis()),
            p.push(r.updated_at.unix_millis()),
        ];
        Ok(format!("({})", columns.join(", ")))
    }
}
