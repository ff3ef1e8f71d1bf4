//! A Kit account's live connections across every tenant: what an import checks so that one
//! refresh-token chain is never held by two connections. Two rows holding one refresh token
//! are two refreshers of one chain: the second refresh resends a spent token, and with reuse
//! detection at Kit that kills the grant.

use kit_oauth_core::{ConnectionRecord, KitAccountId, StateName, StoreError};

use crate::sql::Params;
use crate::store::SeaOrmStore;

impl SeaOrmStore {
    /// Every connection of `account` whose grant is active, in any tenant, with its tokens
    /// opened (read through the index on `kit_account_id`). Unbounded on purpose: a check
    /// that read only a page could miss the holder, and an account has one row per tenant.
    ///
    /// # Errors
    /// A database error, or a row that cannot be opened.
    pub async fn active_by_account(
        &self,
        account: &KitAccountId,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let mut p = Params::new();
        let sql = format!(
            "SELECT {columns} FROM connections WHERE kit_account_id = {} AND state = {} \
             ORDER BY id",
            p.push(account.as_str()),
            p.push(StateName::Authorized.as_str()),
            columns = crate::codec::CONNECTION_COLUMNS,
        );
        self.query_all(sql, p)
            .await?
            .iter()
            .map(|row| self.decode_connection(row).map(|(record, _)| record))
            .collect()
    }
}
