//! Authorization codes: issued by the consent, redeemed once by the token endpoint.

use crate::config::SandboxConfig;

use super::answers::{OAuthError, TokenResponse};
use super::{
    Account, CODES_CAP, Code, CodeRequest, Model, new_token, s256, ttl_ms, valid_verifier,
};

impl Model {
    pub(crate) fn issue_code(
        &mut self,
        cfg: &SandboxConfig,
        req: &CodeRequest<'_>,
        now_ms: i64,
    ) -> String {
        while let Some(front) = self.code_order.front() {
            let expired = self
                .codes
                .get(front)
                .is_none_or(|c| c.expires_at_ms <= now_ms);
            if !expired && self.code_order.len() < CODES_CAP {
                break;
            }
            if let Some(old) = self.code_order.pop_front() {
                self.codes.remove(&old);
            }
        }
        if !self.accounts_seen.iter().any(|a| a == req.account) {
            if self.accounts_seen.len() >= 50 {
                self.accounts_seen.remove(0);
            }
            self.accounts_seen.push(req.account.to_owned());
        }
        self.next_code_id += 1;
        let code = new_token();
        self.codes.insert(
            code.clone(),
            Code {
                id: self.next_code_id,
                client_id: req.client_id.to_owned(),
                redirect_uri: req.redirect_uri.to_owned(),
                challenge: req.challenge.map(str::to_owned),
                account: req.account.to_owned(),
                tenant_name: req.tenant_name.map(str::to_owned),
                expires_at_ms: now_ms.saturating_add(ttl_ms(cfg.code_ttl)),
                redeemed: false,
            },
        );
        self.code_order.push_back(code.clone());
        self.stats.codes_issued += 1;
        code
    }

    /// The `authorization_code` grant. The client is already authenticated.
    pub(crate) fn exchange_code(
        &mut self,
        cfg: &SandboxConfig,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        verifier: Option<&str>,
        now_ms: i64,
    ) -> Result<TokenResponse, OAuthError> {
        let Some(entry) = self.codes.get_mut(code) else {
            return Err(self.fail_grant("code_unknown", "The authorization code is invalid."));
        };
        if entry.client_id != client_id {
            return Err(self.fail_grant(
                "code_client_mismatch",
                "The authorization code was issued to another client.",
            ));
        }
        if entry.redeemed {
            let code_id = entry.id;
            self.stats.codes_redeemed_twice += 1;
            let victim = self
                .grants
                .values()
                .find(|g| g.alive && g.origin_code == code_id)
                .map(|g| g.id);
            if let Some(id) = victim {
                self.revoke_grant(id, now_ms);
            }
            return Err(self.fail_grant(
                "code_reused",
                "The authorization code has already been used.",
            ));
        }
        if now_ms >= entry.expires_at_ms {
            return Err(self.fail_grant("code_expired", "The authorization code has expired."));
        }
        if entry.redirect_uri != redirect_uri {
            return Err(self.fail_grant(
                "redirect_uri_mismatch",
                "The redirect_uri does not match the one used in the authorization request.",
            ));
        }
        match (entry.challenge.as_deref(), verifier) {
            (Some(challenge), Some(v)) => {
                if !valid_verifier(v) || s256(v) != challenge {
                    return Err(self.fail_grant(
                        "pkce_mismatch",
                        "The code_verifier does not match the code_challenge.",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(
                    self.fail_grant("pkce_verifier_missing", "A code_verifier is required.")
                );
            }
            (None, Some(_)) => {
                return Err(self.fail_grant(
                    "pkce_unexpected_verifier",
                    "A code_verifier was sent but the authorization request had no code_challenge.",
                ));
            }
            (None, None) => {}
        }
        entry.redeemed = true;
        let code_id = entry.id;
        let account = Account::named(&entry.account);
        let tenant_name = entry.tenant_name.clone();
        self.stats.codes_redeemed += 1;
        Ok(self.open_grant(cfg, account, client_id, tenant_name, code_id, now_ms))
    }
}
