//! The in-memory authorization server: codes, grants, tokens, accounts and their bookkeeping.
//!
//! Everything here is synchronous and fast; callers hold the lock for one operation only, never
//! across an `.await`. Memory is bounded: spent and revoked tokens live in a fixed-size FIFO,
//! dead grants and codes are capped, so millions of refreshes leave the footprint flat.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::SandboxConfig;
use crate::stats::Stats;

/// How many retired (spent or revoked) tokens are remembered, for precise error messages and
/// reuse detection. Older ones are forgotten and answer as unknown.
pub(crate) const RETIRED_CAP: usize = 32_768;
/// How many revoked grants are remembered.
pub(crate) const DEAD_GRANTS_CAP: usize = 10_000;
/// How many authorization codes may be outstanding (expired ones are pruned first).
pub(crate) const CODES_CAP: usize = 100_000;
/// How many App Store installs are remembered.
pub(crate) const INSTALLS_CAP: usize = 1_000;

/// A Kit account, derived from its name: the same name always has the same ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) id: u64,
    pub(crate) user_id: u64,
    pub(crate) name: String,
}

impl Account {
    /// Ids are spread over 9·10¹² values (still exact in a JSON number read as a double), so a
    /// load test installing 10,000 distinct names never sees two share an account; a range of
    /// 9·10⁶ collided a few times per 10,000.
    pub(crate) fn named(name: &str) -> Self {
        let digest = Sha256::digest(format!("kit-sandbox account:{name}").as_bytes());
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&digest[..8]);
        b.copy_from_slice(&digest[8..16]);
        Self {
            id: 1_000_000 + u64::from_le_bytes(a) % 9_000_000_000_000,
            user_id: 1_000_000 + u64::from_le_bytes(b) % 9_000_000_000_000,
            name: name.to_owned(),
        }
    }

    /// `jane-doe@example.com` for "Jane Doe".
    pub(crate) fn email(&self) -> String {
        let mut local = String::new();
        for c in self.name.chars() {
            if c.is_ascii_alphanumeric() {
                local.push(c.to_ascii_lowercase());
            } else if !local.ends_with('-') && !local.is_empty() {
                local.push('-');
            }
        }
        let local = local.trim_end_matches('-');
        if local.is_empty() {
            format!("account-{}@example.com", self.id)
        } else {
            format!("{local}@example.com")
        }
    }
}

/// An OAuth error answer of the token endpoint (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OAuthError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: String,
}

impl OAuthError {
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_request",
            description: description.into(),
        }
    }
    pub(crate) fn invalid_client(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "invalid_client",
            description: description.into(),
        }
    }
    pub(crate) fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "unsupported_grant_type",
            description: description.into(),
        }
    }
    fn invalid_grant(description: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: "invalid_grant",
            description: description.to_owned(),
        }
    }
}

/// The JSON body of a successful token response, fields in Kit's documented order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct TokenResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: &'static str,
    pub(crate) expires_in: u64,
    pub(crate) refresh_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<&'static str>,
    pub(crate) created_at: i64,
}

/// Why an API call's bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiRefusal {
    Invalid,
    Expired,
    Revoked,
    RateLimited,
}

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

/// What the sandbox knows of one App Store install (`/apps/{id}`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Install {
    pub(crate) clicks: u64,
    pub(crate) first_at: i64,
    pub(crate) last_at: i64,
}

#[derive(Debug)]
struct Code {
    id: u64,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    account: String,
    tenant_name: Option<String>,
    expires_at_ms: i64,
    redeemed: bool,
}

#[derive(Debug)]
struct LastSpent {
    token: String,
    at_ms: i64,
    grace_used: bool,
}

#[derive(Debug)]
struct Grant {
    id: u64,
    account: Account,
    client_id: String,
    tenant_name: Option<String>,
    created_at: i64,
    alive: bool,
    revoked_at: Option<i64>,
    /// The code whose exchange started the current token chain.
    origin_code: u64,
    access: String,
    refresh: String,
    issued_at: i64,
    expires_in: u64,
    last_spent: Option<LastSpent>,
    refreshes: u64,
}

#[derive(Debug)]
struct AccessEntry {
    grant: u64,
    expires_at_ms: i64,
    revoked: bool,
    /// Accepted API calls within the last 60 s (sandbox-clock milliseconds).
    window: VecDeque<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Current,
    Spent,
    Revoked,
}

#[derive(Debug)]
struct RefreshEntry {
    grant: u64,
    state: RefreshState,
}

#[derive(Debug)]
enum Retired {
    Access(String),
    Refresh(String),
}

type GrantKey = (u64, String, Option<String>);

/// The whole server state. One instance sits behind a mutex in [`crate::server::Shared`].
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) stats: Stats,
    codes: HashMap<String, Code>,
    code_order: VecDeque<String>,
    next_code_id: u64,
    grants: HashMap<u64, Grant>,
    by_key: HashMap<GrantKey, u64>,
    dead_grants: VecDeque<u64>,
    next_grant_id: u64,
    access_tokens: HashMap<String, AccessEntry>,
    refresh_tokens: HashMap<String, RefreshEntry>,
    retired: VecDeque<Retired>,
    accounts_seen: Vec<String>,
    pub(crate) installs: HashMap<String, Install>,
}

/// A fresh random token: 32 bytes from the thread-local CSPRNG, base64url without padding.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(SHA-256(verifier))`, the S256 code challenge (RFC 7636 §4.2).
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// RFC 7636 §4.1: 43–128 characters of `A-Z a-z 0-9 - . _ ~`.
pub(crate) fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 challenge is base64url of 32 bytes: exactly 43 characters.
pub(crate) fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

pub(crate) fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn ttl_ms(ttl: u64) -> i64 {
    i64::try_from(ttl.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// Parameters of a code issuance, already validated by the authorize endpoint.
pub(crate) struct CodeRequest<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: &'a str,
    pub(crate) challenge: Option<&'a str>,
    pub(crate) account: &'a str,
    pub(crate) tenant_name: Option<&'a str>,
}

impl Model {
    /// Account names typed on consent pages so far (most recent last), for the page's list.
    pub(crate) fn accounts_seen(&self) -> &[String] {
        &self.accounts_seen
    }

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

    fn fail_grant(&mut self, cause: &'static str, description: &str) -> OAuthError {
        self.stats.count_invalid_grant(cause);
        OAuthError::invalid_grant(description)
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

    /// Creates the grant for (account, client, tenant_name), or gives an alive one a new token
    /// pair (the previous pair is revoked).
    fn open_grant(
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

    fn retire_access(&mut self, token: String) {
        if let Some(e) = self.access_tokens.get_mut(&token) {
            e.revoked = true;
            e.window = VecDeque::new();
        }
        self.push_retired(Retired::Access(token));
    }

    fn retire_refresh(&mut self, token: String, state: RefreshState) {
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

    pub(crate) fn record_install(&mut self, app_id: &str, now_ms: i64) {
        let now = secs(now_ms);
        if let Some(i) = self.installs.get_mut(app_id) {
            i.clicks += 1;
            i.last_at = now;
        } else if self.installs.len() < INSTALLS_CAP {
            self.installs.insert(
                app_id.to_owned(),
                Install {
                    clicks: 1,
                    first_at: now,
                    last_at: now,
                },
            );
        }
        self.stats.installs_started += 1;
    }

    /// Sizes of the internal maps, for tests and the benchmark to check memory stays bounded.
    pub(crate) fn sizes(&self) -> ModelSizes {
        ModelSizes {
            codes: self.codes.len(),
            grants: self.grants.len(),
            access_tokens: self.access_tokens.len(),
            refresh_tokens: self.refresh_tokens.len(),
            retired: self.retired.len(),
        }
    }
}

/// Sizes of the sandbox's internal tables (`GET /_sandbox/sizes`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelSizes {
    /// Outstanding authorization codes (redeemed ones stay until they expire).
    pub codes: usize,
    /// Grants remembered, alive or dead.
    pub grants: usize,
    /// Access tokens remembered (current and retired).
    pub access_tokens: usize,
    /// Refresh tokens remembered (current and retired).
    pub refresh_tokens: usize,
    /// Retired tokens in the bounded FIFO.
    pub retired: usize,
}

fn token_response(
    cfg: &SandboxConfig,
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    created_at: i64,
) -> TokenResponse {
    TokenResponse {
        access_token,
        token_type: if cfg.lowercase_token_type {
            "bearer"
        } else {
            "Bearer"
        },
        expires_in,
        refresh_token,
        scope: if cfg.omit_scope { None } else { Some("public") },
        created_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_stable_per_name() {
        assert_eq!(Account::named("Jane"), Account::named("Jane"));
        assert_ne!(Account::named("Jane").id, Account::named("John").id);
        assert_eq!(Account::named("Jane Doe!").email(), "jane-doe@example.com");
    }

    #[test]
    fn pkce_helpers_follow_rfc7636() {
        // RFC 7636 appendix B.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(s256(v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(valid_verifier(v));
        assert!(!valid_verifier("short"));
        assert!(valid_challenge(&s256(v)));
        assert!(!valid_challenge("not+a+challenge"));
    }

    #[test]
    fn many_rotations_keep_tables_bounded() {
        let cfg = SandboxConfig {
            reuse_detection: true,
            ..SandboxConfig::default()
        };
        let mut m = Model::default();
        let req = CodeRequest {
            client_id: &cfg.client_id,
            redirect_uri: &cfg.redirect_uris[0],
            challenge: None,
            account: "a",
            tenant_name: None,
        };
        let code = m.issue_code(&cfg, &req, 0);
        let mut t = m
            .exchange_code(&cfg, &cfg.client_id, &code, &cfg.redirect_uris[0], None, 0)
            .unwrap();
        for i in 0..100_000 {
            t = m
                .refresh(&cfg, &cfg.client_id, &t.refresh_token, i)
                .unwrap();
        }
        let s = m.sizes();
        assert!(s.access_tokens <= RETIRED_CAP + 1, "{s:?}");
        assert!(s.refresh_tokens <= RETIRED_CAP + 1, "{s:?}");
        assert_eq!(m.stats.refreshes_ok, 100_000);
    }
}
