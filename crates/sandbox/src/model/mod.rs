//! The in-memory authorization server: codes, grants, tokens, accounts and their bookkeeping.
//!
//! Everything here is synchronous and fast; callers hold the lock for one operation only, never
//! across an `.await`. Memory is bounded: spent and revoked tokens live in a fixed-size FIFO,
//! dead grants and codes are capped, so millions of refreshes leave the footprint flat.

use std::collections::{HashMap, VecDeque};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::stats::Stats;

mod account;
mod answers;
mod codes;
mod grants;
mod installs;
mod tokens;

pub(crate) use account::Account;
pub(crate) use answers::{ApiRefusal, Caller, OAuthError, RevokeOutcome, TokenResponse, sentences};
pub use grants::GrantInfo;
pub(crate) use installs::Install;

/// How many retired (spent or revoked) tokens are remembered, for precise error messages and
/// reuse detection. Older ones are forgotten and answer as unknown.
/// Counted in pairs: 16,384 pairs are the 32,768 tokens the sandbox always kept.
pub(crate) const RETIRED_CAP: usize = 16_384;
/// How many refreshed-but-not-yet-spent pairs one grant keeps live under revoke-on-use (a client
/// that refreshes without ever calling the API would otherwise grow them without end). Beyond
/// it the oldest is spent, as if its successor had been used.
pub(crate) const LIVE_PAIRS_CAP: usize = 32;
/// How many revoked grants are remembered.
pub(crate) const DEAD_GRANTS_CAP: usize = 10_000;
/// How many authorization codes may be outstanding (expired ones are pruned first).
pub(crate) const CODES_CAP: usize = 100_000;
/// How many App Store installs are remembered.
pub(crate) const INSTALLS_CAP: usize = 1_000;

#[derive(Debug)]
struct Code {
    client_id: String,
    redirect_uri: String,
    /// The PKCE challenge and its method (`S256` or `plain`).
    challenge: Option<(String, String)>,
    account: String,
    tenant_name: Option<String>,
    expires_at_ms: i64,
    redeemed: bool,
    /// The pair its exchange issued (for `--revoke-on-code-replay`).
    issued_pair: Option<u64>,
}

/// One grant: the chain of token pairs issued for an (account, client, tenant_name).
#[derive(Debug)]
struct Grant {
    id: u64,
    account: Account,
    client_id: String,
    tenant_name: Option<String>,
    created_at: i64,
    alive: bool,
    revoked_at: Option<i64>,
    /// The pair issued last (what `GET /_sandbox/grants` shows).
    current: u64,
    /// Pairs still live, oldest first. Under revoke-on-use a refreshed pair stays live until
    /// its successor's access token is first used, so there can be several.
    live: Vec<u64>,
    refreshes: u64,
}

/// How a pair stopped working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PairState {
    Live,
    /// Replaced by a refresh: presenting its refresh token again is a reuse.
    Spent,
    /// Revoked (revoke endpoint, grant revoked, replaced by a new code exchange).
    Revoked,
}

/// One issued access/refresh pair, like a row of Doorkeeper's tokens table.
#[derive(Debug)]
struct Pair {
    grant: u64,
    access: String,
    refresh: String,
    issued_at_ms: i64,
    expires_in: u64,
    state: PairState,
    /// Revoke-on-use: the pair this one replaced, spent when this access token is first
    /// presented (Doorkeeper's `previous_refresh_token`).
    previous: Option<u64>,
    /// The pair the last refresh with this refresh token returned, when, and whether the grace
    /// window already returned it once more.
    successor: Option<u64>,
    rotated_at_ms: i64,
    grace_used: bool,
    /// Accepted API calls within the last rate window (sandbox-clock milliseconds).
    window: VecDeque<i64>,
}

impl Pair {
    fn expires_at_ms(&self) -> i64 {
        self.issued_at_ms.saturating_add(ttl_ms(self.expires_in))
    }
}

type GrantKey = (u64, String, Option<String>);

/// The whole server state. One instance sits behind a mutex in [`crate::server::Shared`].
#[derive(Debug, Default)]
pub(crate) struct Model {
    pub(crate) stats: Stats,
    codes: HashMap<String, Code>,
    code_order: VecDeque<String>,
    grants: HashMap<u64, Grant>,
    by_key: HashMap<GrantKey, u64>,
    dead_grants: VecDeque<u64>,
    next_grant_id: u64,
    pairs: HashMap<u64, Pair>,
    next_pair_id: u64,
    by_access: HashMap<String, u64>,
    by_refresh: HashMap<String, u64>,
    /// Spent and revoked pairs, oldest first; beyond [`RETIRED_CAP`] they are forgotten.
    retired: VecDeque<u64>,
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
    /// The PKCE challenge and its method, already checked to be `S256` or `plain`.
    pub(crate) challenge: Option<(&'a str, &'a str)>,
    pub(crate) account: &'a str,
    pub(crate) tenant_name: Option<&'a str>,
}

impl Model {
    /// Account names typed on consent pages so far (most recent last), for the page's list.
    pub(crate) fn accounts_seen(&self) -> &[String] {
        &self.accounts_seen
    }

    /// `invalid_grant`, counted by its cause; the answer's text is the same for every cause.
    fn fail_grant(&mut self, cause: &'static str) -> OAuthError {
        self.stats.count_invalid_grant(cause);
        OAuthError::invalid_grant()
    }

    /// Sizes of the internal maps, for tests and the benchmark to check memory stays bounded.
    pub(crate) fn sizes(&self) -> ModelSizes {
        ModelSizes {
            codes: self.codes.len(),
            grants: self.grants.len(),
            access_tokens: self.by_access.len(),
            refresh_tokens: self.by_refresh.len(),
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
    /// Retired (spent or revoked) token pairs in the bounded FIFO.
    pub retired: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SandboxConfig;

    #[test]
    fn accounts_are_stable_per_name() {
        assert_eq!(Account::named("Jane"), Account::named("Jane"));
        assert_ne!(Account::named("Jane").id, Account::named("John").id);
        assert_eq!(Account::named("Jane Doe!").email(), "jane-doe@example.com");
    }

    #[test]
    fn s256_follows_rfc7636() {
        // RFC 7636 appendix B.
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert_eq!(s256(v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    /// Under revoke-on-use a client that never calls the API leaves every refreshed pair live;
    /// the per-grant cap keeps that bounded too.
    #[test]
    fn many_rotations_keep_tables_bounded_in_every_mode() {
        use crate::config::Rotation;
        for rotation in [
            Rotation::RevokeOnUse,
            Rotation::Strict,
            Rotation::ReuseDetection,
        ] {
            let cfg = SandboxConfig {
                rotation,
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
            let caller = Caller::Client(cfg.client_id.clone());
            for i in 0..100_000 {
                t = m.refresh(&cfg, &caller, &t.refresh_token, i).unwrap();
            }
            let s = m.sizes();
            let bound = RETIRED_CAP + LIVE_PAIRS_CAP + 1;
            assert!(s.access_tokens <= bound, "{rotation}: {s:?}");
            assert!(s.refresh_tokens <= bound, "{rotation}: {s:?}");
            assert_eq!(m.stats.refreshes_ok, 100_000, "{rotation}");
            assert_eq!(m.stats.refresh_reuse_attempts, 0, "{rotation}");
            assert_eq!(m.grants_alive(), 1, "{rotation}");
        }
    }
}
