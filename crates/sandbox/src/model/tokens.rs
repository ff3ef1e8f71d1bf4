//! Token pairs: issuing, refresh rotation in the three modes, retirement, the revoke endpoint
//! and bearer authentication.

use std::collections::VecDeque;

use crate::config::{Rotation, SandboxConfig};

use super::answers::token_response;
use super::answers::{ApiRefusal, Caller, OAuthError, RevokeOutcome, TokenResponse};
use super::{
    Account, LIVE_PAIRS_CAP, Model, Pair, PairState, RETIRED_CAP, new_token, secs, ttl_ms,
};

impl Model {
    /// Issues a new live pair for `grant` and makes it the grant's current one.
    pub(super) fn new_pair(
        &mut self,
        grant: u64,
        expires_in: u64,
        previous: Option<u64>,
        now_ms: i64,
    ) -> u64 {
        self.next_pair_id += 1;
        let id = self.next_pair_id;
        let (access, refresh) = (new_token(), new_token());
        self.by_access.insert(access.clone(), id);
        self.by_refresh.insert(refresh.clone(), id);
        self.pairs.insert(
            id,
            Pair {
                grant,
                access,
                refresh,
                issued_at_ms: now_ms,
                expires_in,
                state: PairState::Live,
                previous,
                successor: None,
                rotated_at_ms: now_ms,
                grace_used: false,
                window: VecDeque::new(),
            },
        );
        let oldest = self.grants.get_mut(&grant).and_then(|g| {
            g.current = id;
            g.live.push(id);
            (g.live.len() > LIVE_PAIRS_CAP).then(|| g.live[0])
        });
        if let Some(old) = oldest {
            self.retire_pair(old, PairState::Spent, now_ms);
        }
        id
    }

    /// The token response of a pair, as it was first sent.
    pub(super) fn pair_response(&self, cfg: &SandboxConfig, id: u64) -> Option<TokenResponse> {
        let p = self.pairs.get(&id)?;
        Some(token_response(
            cfg,
            p.access.clone(),
            p.refresh.clone(),
            p.expires_in,
            secs(p.issued_at_ms),
        ))
    }

    /// Stops a live pair: both its tokens stop working. A grant whose last live pair stops has
    /// ended. Retired pairs are remembered in a bounded FIFO for precise answers.
    pub(super) fn retire_pair(&mut self, id: u64, state: PairState, now_ms: i64) {
        let Some(p) = self.pairs.get_mut(&id) else {
            return;
        };
        if p.state != PairState::Live {
            return;
        }
        p.state = state;
        p.window = VecDeque::new();
        let grant = p.grant;
        let ended = self.grants.get_mut(&grant).is_some_and(|g| {
            g.live.retain(|&x| x != id);
            g.alive && g.live.is_empty()
        });
        if ended {
            self.end_grant(grant, now_ms);
        }
        while self.retired.len() >= RETIRED_CAP {
            let Some(old) = self.retired.pop_front() else {
                break;
            };
            if let Some(p) = self.pairs.remove(&old) {
                self.by_access.remove(&p.access);
                self.by_refresh.remove(&p.refresh);
            }
        }
        self.retired.push_back(id);
    }

    /// The `refresh_token` grant, in Doorkeeper's order of checks: the token first
    /// (`invalid_grant`), then client credentials that fail (`invalid_client`), then a missing
    /// or foreign client (`invalid_grant`).
    pub(crate) fn refresh(
        &mut self,
        cfg: &SandboxConfig,
        caller: &Caller,
        token: &str,
        now_ms: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let Some(&id) = self.by_refresh.get(token) else {
            return Err(self.fail_grant("refresh_unknown"));
        };
        let Some(pair) = self.pairs.get(&id) else {
            return Err(self.fail_grant("refresh_unknown"));
        };
        let (state, grant_id, refreshed_before) = (pair.state, pair.grant, pair.successor);
        let client_ok = self
            .grants
            .get(&grant_id)
            .is_some_and(|g| matches!(caller, Caller::Client(c) if *c == g.client_id));
        match state {
            PairState::Revoked => Err(self.fail_grant("refresh_revoked")),
            PairState::Spent => {
                if !client_ok {
                    return Err(self.fail_grant("refresh_spent"));
                }
                self.stats.refresh_reuse_attempts += 1;
                if !self.grants.get(&grant_id).is_some_and(|g| g.alive) {
                    return Err(self.fail_grant("refresh_revoked"));
                }
                if let Some(again) = self.grace(cfg, id, now_ms) {
                    self.stats.refresh_grace_hits += 1;
                    return Ok(again);
                }
                if cfg.rotation == Rotation::ReuseDetection {
                    self.revoke_grant(grant_id, now_ms);
                    Err(self.fail_grant("refresh_reused"))
                } else {
                    Err(self.fail_grant("refresh_spent"))
                }
            }
            PairState::Live => {
                match caller {
                    Caller::BadCredentials => return Err(OAuthError::invalid_client()),
                    Caller::Anonymous => return Err(self.fail_grant("refresh_no_client")),
                    Caller::Client(_) if !client_ok => {
                        return Err(self.fail_grant("refresh_client_mismatch"));
                    }
                    Caller::Client(_) => {}
                }
                if refreshed_before.is_some() {
                    // Only under revoke-on-use: the successor's access token is still unused.
                    self.stats.refresh_reuse_attempts += 1;
                    self.stats.refresh_reuse_accepted += 1;
                }
                let previous = (!cfg.rotation.revokes_at_once()).then_some(id);
                let next = self.new_pair(grant_id, cfg.refresh_access_ttl, previous, now_ms);
                if let Some(p) = self.pairs.get_mut(&id) {
                    p.successor = Some(next);
                    p.rotated_at_ms = now_ms;
                    p.grace_used = false;
                }
                if cfg.rotation.revokes_at_once() {
                    self.retire_pair(id, PairState::Spent, now_ms);
                }
                if let Some(g) = self.grants.get_mut(&grant_id) {
                    g.refreshes += 1;
                }
                self.stats.refreshes_ok += 1;
                self.pair_response(cfg, next)
                    .ok_or_else(OAuthError::invalid_grant)
            }
        }
    }

    /// `--reuse-grace`: the spent refresh token, once, within the window, while the pair it
    /// gave is still live, returns that same pair.
    fn grace(&mut self, cfg: &SandboxConfig, id: u64, now_ms: i64) -> Option<TokenResponse> {
        if cfg.reuse_grace == 0 {
            return None;
        }
        let p = self.pairs.get(&id)?;
        let next = p.successor?;
        let in_window = now_ms.saturating_sub(p.rotated_at_ms) <= ttl_ms(cfg.reuse_grace);
        let next_live = self
            .pairs
            .get(&next)
            .is_some_and(|n| n.state == PairState::Live);
        if p.grace_used || !in_window || !next_live {
            return None;
        }
        if let Some(p) = self.pairs.get_mut(&id) {
            p.grace_used = true;
        }
        self.pair_response(cfg, next)
    }

    /// The revoke endpoint (RFC 7009) for an authenticated client. Like Doorkeeper, only a pair
    /// that is live and whose access token has not expired (unless `revoke_expired`) is
    /// revoked; anything else changes nothing.
    pub(crate) fn revoke_token(
        &mut self,
        cfg: &SandboxConfig,
        client_id: &str,
        token: &str,
        now_ms: i64,
    ) -> RevokeOutcome {
        let Some(&id) = self
            .by_access
            .get(token)
            .or_else(|| self.by_refresh.get(token))
        else {
            return RevokeOutcome::Ignored;
        };
        let Some(p) = self.pairs.get(&id) else {
            return RevokeOutcome::Ignored;
        };
        let own = self
            .grants
            .get(&p.grant)
            .is_some_and(|g| g.client_id == client_id);
        if !own {
            return RevokeOutcome::Forbidden;
        }
        let expired = now_ms >= p.expires_at_ms() && !cfg.revoke_expired;
        if p.state != PairState::Live || expired {
            return RevokeOutcome::Ignored;
        }
        self.retire_pair(id, PairState::Revoked, now_ms);
        RevokeOutcome::Revoked
    }

    /// Bearer authentication and rate limiting of an API call. Presenting an access token,
    /// even a dead one, spends the pair it replaced (revoke-on-use), as Doorkeeper does when it
    /// looks a token up.
    pub(crate) fn authenticate_api(
        &mut self,
        token: &str,
        now_ms: i64,
        rate_limit: u32,
        rate_window_secs: u64,
    ) -> Result<(Account, Option<String>), ApiRefusal> {
        let Some(&id) = self.by_access.get(token) else {
            return Err(ApiRefusal::Invalid);
        };
        let previous = self.pairs.get_mut(&id).and_then(|p| p.previous.take());
        if let Some(prev) = previous {
            self.retire_pair(prev, PairState::Spent, now_ms);
        }
        let Some(entry) = self.pairs.get_mut(&id) else {
            return Err(ApiRefusal::Invalid);
        };
        let Some(grant) = self.grants.get(&entry.grant) else {
            return Err(ApiRefusal::Revoked);
        };
        if entry.state != PairState::Live || !grant.alive {
            return Err(ApiRefusal::Revoked);
        }
        if now_ms >= entry.expires_at_ms() {
            return Err(ApiRefusal::Expired);
        }
        let window_ms = i64::try_from(rate_window_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        let horizon = now_ms.saturating_sub(window_ms);
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
