//! Refresh rotation, token retirement, the revoke endpoint and bearer authentication.

use std::collections::VecDeque;

use crate::config::SandboxConfig;

use super::answers::{ApiRefusal, OAuthError, TokenResponse, token_response};
use super::{
    AccessEntry, Account, LastSpent, Model, RETIRED_CAP, RefreshEntry, RefreshState, Retired,
    new_token, secs, ttl_ms,
};

impl Model {
    /// The `refresh_token` grant. The client is already authenticated.
    pub(crate) fn refresh(
        &mut self,
        cfg: &SandboxConfig,
        client_id: &str,
        token: &str,
        now_ms: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let Some(entry) = self.refresh_tokens.get(token) else {
            return Err(self.fail_grant("refresh_unknown", "The refresh token is invalid."));
        };
        let state = entry.state;
        let grant_id = entry.grant;
        let Some(grant) = self.grants.get_mut(&grant_id) else {
            return Err(self.fail_grant("refresh_revoked", "The refresh token was revoked."));
        };
        if grant.client_id != client_id {
            return Err(self.fail_grant(
                "refresh_client_mismatch",
                "The refresh token was issued to another client.",
            ));
        }
        match state {
            RefreshState::Revoked => {
                Err(self.fail_grant("refresh_revoked", "The refresh token was revoked."))
            }
            RefreshState::Spent => {
                self.stats.refresh_reuse_attempts += 1;
                if !grant.alive {
                    return Err(
                        self.fail_grant("refresh_revoked", "The refresh token was revoked.")
                    );
                }
                let grace_ms = ttl_ms(cfg.reuse_grace);
                if let Some(last) = grant.last_spent.as_mut()
                    && cfg.reuse_grace > 0
                    && last.token == token
                    && !last.grace_used
                    && now_ms.saturating_sub(last.at_ms) <= grace_ms
                {
                    last.grace_used = true;
                    self.stats.refresh_grace_hits += 1;
                    let (access, refresh) = (grant.access.clone(), grant.refresh.clone());
                    let (ttl, issued) = (grant.expires_in, grant.issued_at);
                    return Ok(token_response(cfg, access, refresh, ttl, issued));
                }
                if cfg.reuse_detection {
                    self.revoke_grant(grant_id, now_ms);
                    Err(self.fail_grant(
                        "refresh_reused",
                        "The refresh token was already used; the grant has been revoked.",
                    ))
                } else {
                    Err(self.fail_grant("refresh_spent", "The refresh token was already used."))
                }
            }
            RefreshState::Current => {
                let access = new_token();
                let refresh = new_token();
                let old_access = std::mem::replace(&mut grant.access, access.clone());
                let old_refresh = std::mem::replace(&mut grant.refresh, refresh.clone());
                grant.last_spent = Some(LastSpent {
                    token: old_refresh.clone(),
                    at_ms: now_ms,
                    grace_used: false,
                });
                grant.issued_at = secs(now_ms);
                grant.expires_in = cfg.refresh_access_ttl;
                grant.refreshes += 1;
                self.retire_access(old_access);
                self.retire_refresh(old_refresh, RefreshState::Spent);
                self.access_tokens.insert(
                    access.clone(),
                    AccessEntry {
                        grant: grant_id,
                        expires_at_ms: now_ms.saturating_add(ttl_ms(cfg.refresh_access_ttl)),
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
                self.stats.refreshes_ok += 1;
                Ok(token_response(
                    cfg,
                    access,
                    refresh,
                    cfg.refresh_access_ttl,
                    secs(now_ms),
                ))
            }
        }
    }

    pub(super) fn retire_access(&mut self, token: String) {
        if let Some(e) = self.access_tokens.get_mut(&token) {
            e.revoked = true;
            e.window = VecDeque::new();
        }
        self.push_retired(Retired::Access(token));
    }

    pub(super) fn retire_refresh(&mut self, token: String, state: RefreshState) {
        if let Some(e) = self.refresh_tokens.get_mut(&token) {
            e.state = state;
        }
        self.push_retired(Retired::Refresh(token));
    }

    fn push_retired(&mut self, r: Retired) {
        while self.retired.len() >= RETIRED_CAP {
            match self.retired.pop_front() {
                Some(Retired::Access(t)) => {
                    self.access_tokens.remove(&t);
                }
                Some(Retired::Refresh(t)) => {
                    self.refresh_tokens.remove(&t);
                }
                None => break,
            }
        }
        self.retired.push_back(r);
    }

    /// The revoke endpoint (RFC 7009): a current access or refresh token of `client_id` revokes
    /// its grant. Anything else is silently ignored.
    pub(crate) fn revoke_token(&mut self, client_id: &str, token: &str, now_ms: i64) -> bool {
        let grant = if let Some(e) = self.access_tokens.get(token) {
            e.grant
        } else if let Some(e) = self.refresh_tokens.get(token) {
            e.grant
        } else {
            return false;
        };
        let current = self.grants.get(&grant).is_some_and(|g| {
            g.alive && g.client_id == client_id && (g.access == token || g.refresh == token)
        });
        current && self.revoke_grant(grant, now_ms)
    }

    /// Bearer authentication and rate limiting of an API call.
    pub(crate) fn authenticate_api(
        &mut self,
        token: &str,
        now_ms: i64,
        rate_limit: u32,
    ) -> Result<(Account, Option<String>), ApiRefusal> {
        let Some(entry) = self.access_tokens.get_mut(token) else {
            return Err(ApiRefusal::Invalid);
        };
        let Some(grant) = self.grants.get(&entry.grant) else {
            return Err(ApiRefusal::Revoked);
        };
        if entry.revoked || !grant.alive {
            return Err(ApiRefusal::Revoked);
        }
        if now_ms >= entry.expires_at_ms {
            return Err(ApiRefusal::Expired);
        }
        let horizon = now_ms.saturating_sub(60_000);
        while entry.window.front().is_some_and(|&t| t <= horizon) {
            entry.window.pop_front();
        }
        if entry.window.len() >= rate_limit as usize {
            return Err(ApiRefusal::RateLimited);
        }
        entry.window.push_back(now_ms);
        Ok((grant.account.clone(), grant.tenant_name.clone()))
    }
}
