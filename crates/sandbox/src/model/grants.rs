//! Grants: one per (account, client, tenant_name), holding the current token pair.

use serde::{Deserialize, Serialize};

use crate::config::SandboxConfig;

use super::answers::TokenResponse;
use super::{Account, DEAD_GRANTS_CAP, Grant, GrantKey, Model, PairState, secs, sha256_hex};

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
    /// Whether any pair of the grant still works (ended by revocation, reuse detection, or when
    /// its last pair was revoked).
    pub alive: bool,
    /// Sandbox-clock Unix seconds of the first code exchange.
    pub created_at: i64,
    /// Sandbox-clock Unix seconds of the revocation.
    pub revoked_at: Option<i64>,
    /// Successful refreshes (rotations) of this grant.
    pub refreshes: u64,
    /// Lower-case hex SHA-256 of the access token issued last (empty once forgotten).
    pub access_token_sha256: String,
    /// Lower-case hex SHA-256 of the refresh token issued last (empty once forgotten).
    pub refresh_token_sha256: String,
    /// Sandbox-clock Unix seconds when the current access token expires.
    pub access_expires_at: i64,
}

impl Model {
    /// Creates the grant for (account, client, tenant_name), or gives an alive one another token
    /// pair. As on Doorkeeper, the pairs it already had keep working, unless
    /// `revoke_on_reauthorization` asks for one pair per install.
    pub(super) fn open_grant(
        &mut self,
        cfg: &SandboxConfig,
        account: Account,
        client_id: &str,
        tenant_name: Option<String>,
        now_ms: i64,
    ) -> (u64, Option<TokenResponse>) {
        let key: GrantKey = (account.id, client_id.to_owned(), tenant_name.clone());
        let grant_id = if let Some(&id) = self.by_key.get(&key) {
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
                    current: 0,
                    live: Vec::new(),
                    refreshes: 0,
                },
            );
            self.by_key.insert(key, id);
            self.stats.grants_created += 1;
            id
        };
        let earlier = match self.grants.get(&grant_id) {
            Some(g) if cfg.revoke_on_reauthorization => g.live.clone(),
            _ => Vec::new(),
        };
        let pair = self.new_pair(grant_id, cfg.access_ttl, None, now_ms);
        for id in earlier {
            self.retire_pair(id, PairState::Revoked, now_ms);
        }
        (pair, self.pair_response(cfg, pair))
    }

    /// Revokes a grant: every live pair of it stops working. Returns whether it was alive.
    pub(crate) fn revoke_grant(&mut self, id: u64, now_ms: i64) -> bool {
        let Some(g) = self.grants.get(&id) else {
            return false;
        };
        if !g.alive {
            return false;
        }
        for pair in g.live.clone() {
            self.retire_pair(pair, PairState::Revoked, now_ms);
        }
        // Retiring the last pair ended it; a grant without pairs is ended here.
        self.end_grant(id, now_ms);
        true
    }

    /// Marks a grant dead once nothing of it works any more. Idempotent.
    pub(super) fn end_grant(&mut self, id: u64, now_ms: i64) {
        let Some(g) = self.grants.get_mut(&id) else {
            return;
        };
        if !g.alive {
            return;
        }
        g.alive = false;
        g.revoked_at = Some(secs(now_ms));
        let key: GrantKey = (g.account.id, g.client_id.clone(), g.tenant_name.clone());
        self.by_key.remove(&key);
        self.stats.grants_revoked += 1;
        while self.dead_grants.len() >= DEAD_GRANTS_CAP {
            if let Some(old) = self.dead_grants.pop_front() {
                self.grants.remove(&old);
            }
        }
        self.dead_grants.push_back(id);
    }

    pub(crate) fn grants_info(&self) -> Vec<GrantInfo> {
        let mut out: Vec<GrantInfo> = self
            .grants
            .values()
            .map(|g| {
                let current = self.pairs.get(&g.current);
                GrantInfo {
                    id: g.id,
                    account_id: g.account.id,
                    account_name: g.account.name.clone(),
                    client_id: g.client_id.clone(),
                    tenant_name: g.tenant_name.clone(),
                    alive: g.alive,
                    created_at: g.created_at,
                    revoked_at: g.revoked_at,
                    refreshes: g.refreshes,
                    access_token_sha256: current.map(|p| sha256_hex(&p.access)).unwrap_or_default(),
                    refresh_token_sha256: current
                        .map(|p| sha256_hex(&p.refresh))
                        .unwrap_or_default(),
                    access_expires_at: current.map_or(0, |p| p.expires_at_ms().div_euclid(1000)),
                }
            })
            .collect();
        out.sort_by_key(|g| g.id);
        out
    }

    pub(crate) fn grants_alive(&self) -> u64 {
        self.by_key.len() as u64
    }
}
