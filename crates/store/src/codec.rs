//! Connection rows ⇄ [`ConnectionRecord`]: which columns a row has, how a grant is written
//! (access and refresh tokens sealed under the key ring, bound to row, version and column) and
//! how a row is read back and opened. Kept apart so every writer seals the same way.

use kit_oauth_core::{AccessToken, StoreError as E};
use kit_oauth_core::{
    ConnectionId, ConnectionRecord, Grant, KitAccount, KitAccountId, RefreshHealth, RefreshToken,
    SettledRow, StateName, StoreError, Timestamp, TokenSet, UnauthorizedReason, Version,
};
use sea_orm::QueryResult;

use crate::crypto::connection_aad;
use crate::sql::{Params, get, millis, parse_tenant, to_i64, to_u64, ts};
use crate::store::SeaOrmStore;

pub(crate) const ACCESS: &str = "access_token";
pub(crate) const REFRESH: &str = "refresh_token";

pub(crate) const CONNECTION_COLUMNS: &str = "id, tenant_name, kit_account_id, account_name, account_email, \
     state, ended_reason, key_id, access_token_nonce, access_token_ct, refresh_token_nonce, \
     refresh_token_ct, scope, issued_at, expires_at, next_refresh_at, version, lease_owner, \
     lease_until, lease_fence, in_flight_hash, in_flight_started_at, consecutive_failures, \
     cooldown_until, early_retry_after, last_error, last_refresh_at, created_at, updated_at";

/// The columns a grant is stored in.
pub(crate) struct GrantColumns {
    pub(crate) state: &'static str,
    pub(crate) ended_reason: Option<String>,
    pub(crate) key_id: Option<String>,
    pub(crate) access_nonce: Option<Vec<u8>>,
    pub(crate) access_ct: Option<Vec<u8>>,
    pub(crate) refresh_nonce: Option<Vec<u8>>,
    pub(crate) refresh_ct: Option<Vec<u8>>,
    pub(crate) scope: Option<String>,
    pub(crate) issued_at: Option<i64>,
    pub(crate) expires_at: Option<i64>,
}

/// The lease columns of a row.
pub(crate) struct LeaseColumns {
    pub(crate) in_flight_hash: Option<String>,
    pub(crate) in_flight_started_at: Option<i64>,
}

impl SeaOrmStore {
    // ----- encoding -----

    pub(crate) fn seal_grant(
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
                ended_reason: Some(encode_reason(reason)?),
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

    /// `SET` assignments for the data columns of `row` (sealed for `new_version`): the one list
    /// of them, for a compare-and-swap write and a committed refresh alike.
    pub(crate) fn row_assignments(
        &self,
        record: &SettledRow,
        new_version: u64,
        p: &mut Params,
    ) -> Result<String, StoreError> {
        let g = self.seal_grant(&record.grant, record.id.as_str(), new_version)?;
        let health = health_assignments(&record.health, p);
        Ok(format!(
            "account_name = {}, account_email = {}, state = {}, ended_reason = {}, key_id = {}, \
             access_token_nonce = {}, access_token_ct = {}, refresh_token_nonce = {}, \
             refresh_token_ct = {}, scope = {}, issued_at = {}, expires_at = {}, \
             next_refresh_at = {}, {health}, updated_at = {}, version = {}",
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
            p.push(record.updated_at.unix_millis()),
            p.push(to_i64(new_version, "version")?),
        ))
    }

    // ----- decoding -----

    pub(crate) fn open_secret(
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

    pub(crate) fn decode_connection(
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
                    decode_reason(&reason)
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
}

/// `SET` assignments for the refresh-health columns: the one list of them that both writes of
/// a connection's health use (every data write, and a failed refresh's lease release).
pub(crate) fn health_assignments(h: &RefreshHealth, p: &mut Params) -> String {
    format!(
        "consecutive_failures = {}, cooldown_until = {}, early_retry_after = {}, \
         last_error = {}, last_refresh_at = {}",
        p.push(i64::from(h.consecutive_failures)),
        p.push(millis(h.cooldown_until)),
        p.push(millis(h.early_retry_after)),
        p.push(h.last_error.clone()),
        p.push(millis(h.last_refresh_at))
    )
}

/// The `ended_reason` column of an ended grant: the reason as JSON (`{"kind": …}`).
pub(crate) fn encode_reason(reason: &UnauthorizedReason) -> Result<String, StoreError> {
    serde_json::to_string(reason).map_err(|e| E::Backend(format!("encoding the reason: {e}")))
}

/// An `ended_reason` column read back. Every reason the type has is read, including those the
/// flow no longer stores on a row (`not_installed`, `denied`, `install_expired`,
/// `install_failed` end an install, which never had a row): rows written before the port took
/// only the flow's values may hold them.
pub(crate) fn decode_reason(column: &str) -> Result<UnauthorizedReason, serde_json::Error> {
    serde_json::from_str(column)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_reason_column_reads_back_including_those_only_old_rows_hold() {
        let columns = [
            (
                r#"{"kind":"not_installed"}"#,
                UnauthorizedReason::NotInstalled,
            ),
            (r#"{"kind":"denied"}"#, UnauthorizedReason::Denied),
            (
                r#"{"kind":"install_expired"}"#,
                UnauthorizedReason::InstallExpired,
            ),
            (
                r#"{"kind":"install_failed","detail":"bad state"}"#,
                UnauthorizedReason::InstallFailed {
                    detail: "bad state".into(),
                },
            ),
            (
                r#"{"kind":"reauth_required","detail":"invalid_grant"}"#,
                UnauthorizedReason::ReauthRequired {
                    detail: "invalid_grant".into(),
                },
            ),
            (r#"{"kind":"revoked"}"#, UnauthorizedReason::Revoked),
        ];
        for (column, reason) in columns {
            assert_eq!(decode_reason(column).unwrap(), reason, "{column}");
            assert_eq!(encode_reason(&reason).unwrap(), column);
        }
        assert!(decode_reason(r#"{"kind":"forgotten"}"#).is_err());
    }
}
