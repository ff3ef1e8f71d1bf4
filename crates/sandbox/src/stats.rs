//! Counters exposed by `GET /_sandbox/stats` and [`crate::SandboxHandle::stats`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the sandbox has seen since it started or since the last reset.
///
/// Every field is always present in the JSON form; unknown fields are ignored when reading it
/// back, so the shape can grow.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Stats {
    /// Requests by endpoint: `authorize`, `consent`, `token`, `revoke`, `account`, `api`,
    /// `apps`, `control`, `other`.
    pub requests: BTreeMap<String, u64>,
    /// Authorization codes handed out (consent allowed or auto-approved).
    pub codes_issued: u64,
    /// Codes exchanged successfully for tokens.
    pub codes_redeemed: u64,
    /// Attempts to redeem a code a second time (`invalid_grant`; as on Doorkeeper the tokens
    /// issued from it keep working).
    pub codes_redeemed_twice: u64,
    /// Successful `refresh_token` grants that rotated the token pair.
    pub refreshes_ok: u64,
    /// Spent refresh tokens accepted inside the `--reuse-grace` window.
    pub refresh_grace_hits: u64,
    /// Presentations of a refresh token that was already used for a refresh, in every rotation
    /// mode: spent ones (refused, or accepted in grace) and, under revoke-on-use, ones whose
    /// successor was not used yet (accepted: see `refresh_reuse_accepted`).
    pub refresh_reuse_attempts: u64,
    /// Under revoke-on-use: refreshes with a refresh token already used once, accepted because
    /// the pair it gave had not been used yet (each issued another pair).
    pub refresh_reuse_accepted: u64,
    /// `invalid_grant` answers by cause, e.g. `code_unknown`, `code_expired`, `code_reused`,
    /// `redirect_uri_mismatch`, `pkce_mismatch`, `pkce_verifier_missing`,
    /// `pkce_unexpected_verifier`, `code_missing`, `refresh_unknown`, `refresh_spent`,
    /// `refresh_reused` (reuse detection revoked the grant), `refresh_revoked`,
    /// `refresh_no_client`, `refresh_client_mismatch`.
    pub invalid_grant: BTreeMap<String, u64>,
    /// Sum of `invalid_grant`.
    pub invalid_grant_total: u64,
    /// `invalid_client` answers (401).
    pub invalid_client: u64,
    /// `invalid_request` answers from the token and revoke endpoints.
    pub invalid_request: u64,
    /// `unsupported_grant_type` answers.
    pub unsupported_grant_type: u64,
    /// Grants created by a first code exchange for an (account, client, tenant_name).
    pub grants_created: u64,
    /// Grants ended: revoked by the control API or reuse detection, or whose last live pair was
    /// revoked (revoke endpoint) or replaced.
    pub grants_revoked: u64,
    /// Grants alive right now (a gauge, not reset).
    pub grants_alive: u64,
    /// Calls to the revoke endpoint by an authenticated client.
    pub revocations: u64,
    /// Calls to the revoke endpoint refused with 403 `unauthorized_client`.
    pub revocations_refused: u64,
    /// Consent forms submitted with Allow.
    pub consents_allowed: u64,
    /// Consent forms submitted with Deny.
    pub consents_denied: u64,
    /// API calls answered 2xx.
    pub api_ok: u64,
    /// API calls answered 401.
    pub unauthorized_401: u64,
    /// API calls answered 429 by the rate limiter.
    pub rate_limited_429: u64,
    /// Responses replaced or altered by an injected fault.
    pub faults_injected: u64,
    /// `GET /apps/{id}/install` redirects.
    pub installs_started: u64,
    /// Of those, links that carried Kit's attribution parameter `k_app_id=k_{id}`.
    pub installs_attributed: u64,
}

impl Stats {
    pub(crate) fn count_request(&mut self, endpoint: &str) {
        match self.requests.get_mut(endpoint) {
            Some(n) => *n += 1,
            None => {
                self.requests.insert(endpoint.to_owned(), 1);
            }
        }
    }

    pub(crate) fn count_invalid_grant(&mut self, cause: &str) {
        self.invalid_grant_total += 1;
        match self.invalid_grant.get_mut(cause) {
            Some(n) => *n += 1,
            None => {
                self.invalid_grant.insert(cause.to_owned(), 1);
            }
        }
    }
}
