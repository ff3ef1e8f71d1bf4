//! Grants: one per (account, client, tenant_name), holding the current token pair.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::config::SandboxConfig;

use super::answers::{TokenResponse, token_response};
use super::{
    AccessEntry, Account, DEAD_GRANTS_CAP, Grant, GrantKey, Model, RefreshEntry, RefreshState,
    new_token, secs, sha256_hex, ttl_ms,
};

/// One grant as `GET /_sandbox/grants` shows it: no secrets, only SHA-256 hashes of the tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GrantInfo {
    /// The sandbox's id for the grant.
    pub id: u64,
    /// Kit account id (stable per account name).
    pub account_id: u64,
    /// Account name chosen on the consent page.
    pub account_name: String,
    /// The client the grant belongs to.
    pub client_id: String,
    /// `tenant_name` sent to authorize, if any.
    pub tenant_name: Option<String>,
    /// Whether the grant's current tokens still work (not revoked).
    pub alive: bool,
    /// Sandbox-clock Unix seconds of the first code exchange.
    pub created_at: i64,
    /// Sandbox-clock Unix seconds of the revocation.
    pub revoked_at: Option<i64>,
    /// Successful refreshes (rotations) of this grant.
    pub refreshes: u64,
    /// Lower-case hex SHA-256 of the current (or last, if revoked) access token.
    pub access_token_sha256: String,
    /// Lower-case hex SHA-256 of the current (or last, if revoked) refresh token.
    pub refresh_token_sha256: String,
    /// Sandbox-clock Unix seconds when the current access token expires.
    pub access_expires_at: i64,
}

impl Model {
    /// Creates the grant for (account, client, tenant_name), or gives an alive one a new token
    /// pair (the previous pair is revoked).
    pub(super) fn open_grant(
        &mut self,
        cfg: &SandboxConfig,
        account: Account,
        client_id: &str,
        tenant_name: Option<String>,
        code_id: u64,
        now_ms: i64,
    ) -> TokenResponse {
        let key: GrantKey = (account.id, client_id.to_owned(), tenant_name.clone());
        let access = new_token();
        let refresh = new_token();
        let expires_at_ms = now_ms.saturating_add(ttl_ms(cfg.access_ttl));
        let grant_id = if let Some(&id) = self.by_key.get(&key) {
            let mut old = None;
            if let Some(g) = self.grants.get_mut(&id) {
                let old_access = std::mem::replace(&mut g.access, access.clone());
                let old_refresh = std::mem::replace(&mut g.refresh, refresh.clone());
                g.origin_code = code_id;
                g.issued_at = secs(now_ms);
                g.expires_in = cfg.access_ttl;
                g.last_spent = None;
                old = Some((old_access, old_refresh));
            }
            if let Some((old_access, old_refresh)) = old {
                self.retire_access(old_access);
                self.retire_refresh(old_refresh, RefreshState::Revoked);
            }
            id
        } else {
            self.next_grant_id += 1;
            let id = self.next_grant_id;
            self.grants.insert(
                id,
                Grant {
                    id,
                    account,
                    client_id: client_id.to_owned(),
                    tenant_name,
                    created_at: secs(now_ms),
                    alive: true,
                    revoked_at: None,
                    origin_code: code_id,
                    access: access.clone(),
                    refresh: refresh.clone(),
                    issued_at: secs(now_ms),
                    expires_in: cfg.access_ttl,
                    last_spent: None,
                    refreshes: 0,
                },
            );
            self.by_key.insert(key, id);
            self.stats.grants_created += 1;
            id
        };
        self.access_tokens.insert(
            access.clone(),
            AccessEntry {
                grant: grant_id,
                expires_at_ms,
                revoked: false,
                window: VecDeque::new(),
            },
        );
        self.refresh_tokens.insert(
            refresh.clone(),
            RefreshEntry {
                grant: grant_id,
                state: RefreshState::Current,
            },
        );
        token_response(cfg, access, refresh, cfg.access_ttl, secs(now_ms))
    }

    /// Revokes a grant: its current access and refresh tokens stop working. Returns whether it
    /// was alive.
    pub(crate) fn revoke_grant(&mut self, id: u64, now_ms: i64) -> bool {
        let Some(g) = self.grants.get_mut(&id) else {
            return false;
        };
        if !g.alive {
            return false;
        }
        g.alive = false;
        g.revoked_at = Some(secs(now_ms));
        let (access, refresh) = (g.access.clone(), g.refresh.clone());
        let key: GrantKey = (g.account.id, g.client_id.clone(), g.tenant_name.clone());
        self.by_key.remove(&key);
        self.retire_access(access);
        self.retire_refresh(refresh, RefreshState::Revoked);
        self.stats.grants_revoked += 1;
        while self.dead_grants.len() >= DEAD_GRANTS_CAP {
            if let Some(old) = self.dead_grants.pop_front() {
                self.grants.remove(&old);
            }
        }
        self.dead_grants.push_back(id);
        true
    }

    pub(crate) fn grants_info(&self) -> Vec<GrantInfo> {
        let mut out: Vec<GrantInfo> = self
            .grants
            .values()
            .map(|g| GrantInfo {
                id: g.id,
                account_id: g.account.id,
                account_name: g.account.name.clone(),
                client_id: g.client_id.clone(),
                tenant_name: g.tenant_name.clone(),
                alive: g.alive,
                created_at: g.created_at,
                revoked_at: g.revoked_at,
                refreshes: g.refreshes,
                access_token_sha256: sha256_hex(&g.access),
                refresh_token_sha256: sha256_hex(&g.refresh),
                access_expires_at: g
                    .issued_at
                    .saturating_add(i64::try_from(g.expires_in).unwrap_or(i64::MAX)),
            })
            .collect();
        out.sort_by_key(|g| g.id);
        out
    }

    pub(crate) fn grants_alive(&self) -> u64 {
        self.by_key.len() as u64
    }
}
