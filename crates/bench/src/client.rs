//! What the harness says over HTTP: the install flow as a browser does it, the broker API as an
//! app uses it, and the sandbox's control API. Own types, read with `serde(default)`: the
//! harness shares no code with the crates it measures.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::error::{BenchError, Result};

/// A client that never follows redirects (the install flow reads each `Location`) and keeps
/// connections alive.
///
/// # Errors
/// The TLS backend cannot be initialised.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(BenchError::http("building the HTTP client"))
}

/// The sandbox's `/_sandbox/stats` (the fields the harness reads).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SandboxStats {
    /// Requests by endpoint.
    pub requests: BTreeMap<String, u64>,
    /// Codes exchanged for tokens.
    pub codes_redeemed: u64,
    /// Successful rotations.
    pub refreshes_ok: u64,
    /// Spent refresh tokens accepted inside the grace window.
    pub refresh_grace_hits: u64,
    /// Presentations of a spent refresh token (in grace or not).
    pub refresh_reuse_attempts: u64,
    /// Under revoke-on-use: previous refresh tokens accepted because their successor's access
    /// token was never used (a resend after a lost answer).
    pub refresh_reuse_accepted: u64,
    /// `invalid_grant` answers by cause.
    pub invalid_grant: BTreeMap<String, u64>,
    /// Sum of `invalid_grant`.
    pub invalid_grant_total: u64,
    /// Grants created by a first code exchange.
    pub grants_created: u64,
    /// Grants revoked.
    pub grants_revoked: u64,
    /// Grants alive (a gauge).
    pub grants_alive: u64,
    /// API calls answered 2xx.
    pub api_ok: u64,
    /// Responses altered by an injected fault.
    pub faults_injected: u64,
}

impl SandboxStats {
    /// Token endpoint requests.
    #[must_use]
    pub fn token_requests(&self) -> u64 {
        self.requests.get("token").copied().unwrap_or(0)
    }

    /// Reuse attempts the grace window did not absorb (each one kills a grant at a strict Kit).
    #[must_use]
    pub fn reuse_outside_grace(&self) -> u64 {
        self.refresh_reuse_attempts
            .saturating_sub(self.refresh_grace_hits)
    }
}

/// One grant of `/_sandbox/grants`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SandboxGrant {
    /// Kit's account id.
    pub account_id: u64,
    /// Whether it still works.
    pub alive: bool,
    /// Rotations so far.
    pub refreshes: u64,
    /// SHA-256 (hex) of its current access token.
    pub access_token_sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GrantList {
    grants: Vec<SandboxGrant>,
}

/// The sandbox's control API and its `/v4/account`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: reqwest::Client,
}

impl Sandbox {
    /// A client of the sandbox at `base`.
    #[must_use]
    pub fn new(base: String, http: reqwest::Client) -> Self {
        Self { base, http }
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(BenchError::http(format!("GET sandbox {path}")))?
            .json()
            .await
            .map_err(BenchError::http(format!("reading sandbox {path}")))
    }

    async fn post(&self, path: &str, body: Option<serde_json::Value>) -> Result<()> {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(BenchError::http(format!("POST sandbox {path}")))?;
        Ok(())
    }

    /// `GET /_sandbox/stats`.
    ///
    /// # Errors
    /// The sandbox does not answer.
    pub async fn stats(&self) -> Result<SandboxStats> {
        self.get_json("/_sandbox/stats").await
    }

    /// `POST /_sandbox/stats/reset`.
    ///
    /// # Errors
    /// The sandbox does not answer.
    pub async fn reset_stats(&self) -> Result<()> {
        self.post("/_sandbox/stats/reset", None).await
    }

    /// `GET /_sandbox/grants`.
    ///
    /// # Errors
    /// The sandbox does not answer.
    pub async fn grants(&self) -> Result<Vec<SandboxGrant>> {
        Ok(self.get_json::<GrantList>("/_sandbox/grants").await?.grants)
    }

    /// `POST /_sandbox/faults` with one fault object.
    ///
    /// # Errors
    /// The sandbox refuses it.
    pub async fn add_fault(&self, fault: serde_json::Value) -> Result<()> {
        self.post("/_sandbox/faults", Some(fault)).await
    }

    /// How many faults are still queued.
    ///
    /// # Errors
    /// The sandbox does not answer.
    pub async fn pending_faults(&self) -> Result<usize> {
        let list: serde_json::Value = self.get_json("/_sandbox/faults").await?;
        Ok(list
            .get("faults")
            .and_then(serde_json::Value::as_array)
            .map_or(0, Vec::len))
    }

    /// `DELETE /_sandbox/faults`.
    ///
    /// # Errors
    /// The sandbox does not answer.
    pub async fn clear_faults(&self) -> Result<()> {
        self.http
            .delete(format!("{}/_sandbox/faults", self.base))
            .send()
            .await
            .map_err(BenchError::http("DELETE sandbox faults"))?;
        Ok(())
    }

    /// Whether Kit accepts `token` (`GET /v4/account` answers 200).
    ///
    /// # Errors
    /// The sandbox does not answer.
    pub async fn token_works(&self, token: &str) -> Result<bool> {
        let response = self
            .http
            .get(format!("{}/v4/account", self.base))
            .bearer_auth(token)
            .send()
            .await
            .map_err(BenchError::http("GET sandbox /v4/account"))?;
        Ok(response.status().is_success())
    }
}

/// A connection as `GET /v1/connections` lists it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConnectionView {
    /// Connection id.
    pub id: String,
    /// Kit account id.
    pub account_id: String,
    /// `authorized`, `expired` or `unauthorized`.
    pub state: String,
    /// Why it ended.
    pub ended_reason: Option<String>,
    /// Last refresh error.
    pub last_error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ConnectionPage {
    connections: Vec<ConnectionView>,
    next_cursor: Option<String>,
}

/// The token endpoint's answer.
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    /// The bearer token.
    pub access_token: String,
}

/// What one broker token request returned.
#[derive(Debug)]
pub enum TokenOutcome {
    /// 200 with a token.
    Token(String),
    /// Another status (with the body, for messages).
    Status(u16, String),
    /// No HTTP answer at all (connection refused or reset: the process is down).
    NoAnswer(String),
}

/// The broker API of one server, as an app calls it.
#[derive(Debug, Clone)]
pub struct Broker {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    key: String,
    http: reqwest::Client,
}

impl Broker {
    /// A client of the server at `base` with API key `key`.
    #[must_use]
    pub fn new(base: String, key: String, http: reqwest::Client) -> Self {
        Self { base, key, http }
    }

    /// `POST /v1/connections/{id}/token`.
    pub async fn token(&self, id: &str) -> TokenOutcome {
        let sent = self
            .http
            .post(format!("{}/v1/connections/{id}/token", self.base))
            .bearer_auth(&self.key)
            .send()
            .await;
        match sent {
            Err(e) => TokenOutcome::NoAnswer(e.to_string()),
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Err(e) => TokenOutcome::NoAnswer(e.to_string()),
                    Ok(body) if status == 200 => {
                        match serde_json::from_slice::<TokenAnswer>(&body) {
                            Ok(answer) => TokenOutcome::Token(answer.access_token),
                            Err(e) => TokenOutcome::Status(status, format!("bad JSON: {e}")),
                        }
                    }
                    Ok(body) => {
                        TokenOutcome::Status(status, String::from_utf8_lossy(&body).into_owned())
                    }
                }
            }
        }
    }

    /// The raw body of one token answer (its size is what the bare handler mimics).
    ///
    /// # Errors
    /// The server does not answer 200.
    pub async fn token_body(&self, id: &str) -> Result<String> {
        let response = self
            .http
            .post(format!("{}/v1/connections/{id}/token", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(BenchError::http("POST token"))?;
        response
            .text()
            .await
            .map_err(BenchError::http("reading a token answer"))
    }

    /// Every connection, page by page.
    ///
    /// # Errors
    /// A page cannot be read.
    pub async fn connections(&self) -> Result<Vec<ConnectionView>> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("{}/v1/connections?limit=200", self.base);
            if let Some(c) = &cursor {
                url.push_str("&cursor=");
                url.push_str(c);
            }
            let page: ConnectionPage = self
                .http
                .get(url)
                .bearer_auth(&self.key)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(BenchError::http("GET /v1/connections"))?
                .json()
                .await
                .map_err(BenchError::http("reading /v1/connections"))?;
            all.extend(page.connections);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// `GET /readyz` status code (0 when the process does not answer).
    pub async fn ready_status(&self) -> u16 {
        self.http
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }
}

/// SHA-256 hex, as the sandbox shows token fingerprints.
#[must_use]
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Installs one connection as a browser would: the server's `/kit/oauth` (cookie), the
/// sandbox's authorize (auto-approved for `account`), the server's callback with the cookie.
///
/// # Errors
/// Any step answers something other than the expected redirect.
pub async fn install(
    http: &reqwest::Client,
    server: &str,
    sandbox: &str,
    account: &str,
) -> Result<()> {
    let redirect = format!("{sandbox}/apps/1?success=true");
    let mut begin = url::Url::parse(&format!("{server}/kit/oauth"))
        .map_err(|e| BenchError::setup(format!("server URL: {e}")))?;
    begin.query_pairs_mut().append_pair("redirect", &redirect);
    let response = http
        .get(begin)
        .send()
        .await
        .map_err(BenchError::http("GET /kit/oauth"))?;
    let cookies: Vec<String> = response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_owned))
        .collect();
    let authorize = location(&response, "GET /kit/oauth")?;
    let mut authorize = url::Url::parse(&authorize)
        .map_err(|e| BenchError::setup(format!("authorize URL: {e}")))?;
    authorize
        .query_pairs_mut()
        .append_pair("sandbox_account", account);
    let response = http
        .get(authorize)
        .send()
        .await
        .map_err(BenchError::http("GET sandbox authorize"))?;
    let callback = location(&response, "sandbox authorize")?;
    let response = http
        .get(callback)
        .header(reqwest::header::COOKIE, cookies.join("; "))
        .send()
        .await
        .map_err(BenchError::http("GET /kit/oauth/callback"))?;
    let back = location(&response, "callback")?;
    if back.starts_with(&redirect) {
        Ok(())
    } else {
        Err(BenchError::setup(format!(
            "the callback sent the browser to {back}, not back to Kit"
        )))
    }
}

fn location(response: &reqwest::Response, step: &str) -> Result<String> {
    if !response.status().is_redirection() {
        return Err(BenchError::setup(format!(
            "{step} answered {} instead of a redirect",
            response.status()
        )));
    }
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| BenchError::setup(format!("{step}: redirect without Location")))
}
