//! Authorization codes: issued by the consent, redeemed once by the token endpoint.

use crate::config::SandboxConfig;

use super::answers::{OAuthError, TokenResponse};
use super::{Account, CODES_CAP, Code, CodeRequest, Model, PairState, new_token, s256, ttl_ms};

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
        let code = new_token();
        self.codes.insert(
            code.clone(),
            Code {
                client_id: req.client_id.to_owned(),
                redirect_uri: req.redirect_uri.to_owned(),
                challenge: req.challenge.map(|(c, m)| (c.to_owned(), m.to_owned())),
                account: req.account.to_owned(),
                tenant_name: req.tenant_name.map(str::to_owned),
                expires_at_ms: now_ms.saturating_add(ttl_ms(cfg.code_ttl)),
                redeemed: false,
                issued_pair: None,
            },
        );
        self.code_order.push_back(code.clone());
        self.stats.codes_issued += 1;
        code
    }

    /// Whether `code` was issued with a PKCE challenge: then a token request without
    /// `code_verifier` is `invalid_request`, before anything else is checked (Doorkeeper).
    pub(crate) fn code_wants_verifier(&self, code: &str) -> bool {
        self.codes.get(code).is_some_and(|c| c.challenge.is_some())
    }

    /// The `authorization_code` grant. The client is already authenticated. A failed attempt
    /// leaves the code as it was (a wrong verifier does not use it up); a replayed code is
    /// `invalid_grant` and, as on Doorkeeper, the tokens issued from it keep working.
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
            return Err(self.fail_grant("code_unknown"));
        };
        if entry.client_id != client_id {
            return Err(self.fail_grant("code_client_mismatch"));
        }
        if entry.redeemed {
            let issued = entry.issued_pair;
            self.stats.codes_redeemed_twice += 1;
            if cfg.revoke_on_code_replay
                && let Some(pair) = issued
            {
                self.retire_pair(pair, PairState::Revoked, now_ms);
            }
            return Err(self.fail_grant("code_reused"));
        }
        if now_ms >= entry.expires_at_ms {
            return Err(self.fail_grant("code_expired"));
        }
        if entry.redirect_uri != redirect_uri {
            return Err(self.fail_grant("redirect_uri_mismatch"));
        }
        match (entry.challenge.as_ref(), verifier) {
            (Some((challenge, method)), Some(v)) => {
                let derived = if method == "plain" {
                    v.to_owned()
                } else {
                    s256(v)
                };
                if derived != *challenge {
                    return Err(self.fail_grant("pkce_mismatch"));
                }
            }
            (Some(_), None) => return Err(self.fail_grant("pkce_verifier_missing")),
            (None, Some(_)) => return Err(self.fail_grant("pkce_unexpected_verifier")),
            (None, None) => {}
        }
        entry.redeemed = true;
        let account = Account::named(&entry.account);
        let tenant_name = entry.tenant_name.clone();
        self.stats.codes_redeemed += 1;
        let (pair, answer) = self.open_grant(cfg, account, client_id, tenant_name, now_ms);
        if let Some(c) = self.codes.get_mut(code) {
            c.issued_pair = Some(pair);
        }
        answer.ok_or_else(OAuthError::invalid_grant)
    }
}
