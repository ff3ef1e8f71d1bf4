//! [`KitClient`]: how apps call Kit's API v4 — bearer injection and the 401/429/5xx retry
//! rules of docs/kit-protocol.md §6.

use std::time::Duration;

use http::StatusCode;
use kit_oauth_core::{AccessToken, ConnectionId, KitAccount};
use url::Url;

use crate::account::parse_account;
use crate::api_error::ApiError;
use crate::config::{
    ConfigError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, KitEndpoints, join_path,
};
use crate::kit_api::RateBudget;
use crate::kit_errors::{TokenRejection, classify_401, messages};
use crate::request::{KitRequest, KitResponse};
use crate::retry::RetryPolicy;
use crate::token_source::{ReauthReason, TokenSource, TokenSourceError};
use crate::transport::{RawResponse, TransportError, execute, shared_client};

/// Default cap on an API response body (a page of 1,000 subscribers fits comfortably).
pub const DEFAULT_MAX_API_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Kit's API v4 for apps: tokens from a [`TokenSource`], `Authorization: Bearer` on every
/// call, and the retry rules (the only copy of them: the broker's proxy goes through
/// [`KitClient::forward`]):
///
/// - 401 with Kit's exact `The access token expired` (any case) → [`TokenSource::force_refresh`],
///   then one retry;
/// - any other 401 (`… was revoked`, `… is invalid`, or text we do not know, even if it
///   mentions "expired") → [`TokenSource::token_refused`], which verifies the stored token with
///   Kit: one retry when it works, [`ApiError::ReauthRequired`] when Kit refuses it too;
/// - 429 → wait `Retry-After` (seconds or an HTTP date), or jittered exponential backoff,
///   within [`RetryPolicy`];
/// - 5xx, timeouts, dropped connections → retried only for idempotent methods or requests
///   marked [`KitRequest::retry_ambiguous`]; connect failures (nothing was sent) always.
#[derive(Debug, Clone)]
pub struct KitClient<S> {
    base_url: Url,
    http: reqwest::Client,
    source: S,
    policy: RetryPolicy,
    timeout: Duration,
    max_body: usize,
    /// Kit's rate limit as a budget: taken before every attempt, shared by every clone.
    budget: Option<RateBudget>,
}

/// Why [`KitClient::run`] gave up, and Kit's last answer when there was one (the proxy
/// passes that answer on; [`KitClient::send`] reports the error).
struct Failure {
    error: ApiError,
    response: Option<RawResponse>,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            response: None,
        }
    }
}

impl From<TokenSourceError> for Failure {
    fn from(error: TokenSourceError) -> Self {
        ApiError::TokenSource(error).into()
    }
}

impl<S> KitClient<S> {
    /// A client for Kit's API under `base_url` on the process-wide HTTP client, with the
    /// default timeouts (for callers without OAuth endpoints, such as the broker's proxy).
    ///
    /// # Errors
    /// [`ConfigError::HttpClient`] when TLS cannot be initialised.
    pub fn for_base_url(base_url: Url, source: S) -> Result<Self, ConfigError> {
        Ok(Self {
            base_url,
            http: shared_client(DEFAULT_CONNECT_TIMEOUT)?,
            source,
            policy: RetryPolicy::default(),
            timeout: DEFAULT_REQUEST_TIMEOUT,
            max_body: DEFAULT_MAX_API_RESPONSE_BYTES,
            budget: None,
        })
    }

    /// The same client (base URL, HTTP client, policy, limits) with another token source:
    /// cheap, so a caller can bind a source per request.
    #[must_use]
    pub fn with_source<T>(&self, source: T) -> KitClient<T> {
        KitClient {
            base_url: self.base_url.clone(),
            http: self.http.clone(),
            source,
            policy: self.policy,
            timeout: self.timeout,
            max_body: self.max_body,
            budget: self.budget.clone(),
        }
    }

    /// Takes one request from `budget` before every attempt (retries included), so this
    /// client and every clone of it — every task of the process, and a proxy given the same
    /// budget — stay within Kit's limit per connection instead of learning it from 429s. A 429
    /// without `Retry-After` (Kit sends none) then backs off as
    /// [`RateBudget::backoff_after_429`] says, within the retry policy.
    #[must_use]
    pub fn with_rate_budget(mut self, budget: RateBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The rate budget, to share with another client of the same process.
    #[must_use]
    pub fn rate_budget(&self) -> Option<&RateBudget> {
        self.budget.as_ref()
    }

    /// Replaces the retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Replaces the per-attempt timeout (default: the endpoints' request timeout).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Replaces the response body cap (default 8 MiB).
    #[must_use]
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The token source.
    #[must_use]
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The base URL API paths are joined to.
    #[must_use]
    pub fn base_url(&self) -> &Url {
        &self.base_url
    }
}

impl<S: TokenSource> KitClient<S> {
    /// A client for the endpoints' base URL on the process-wide HTTP client.
    ///
    /// # Errors
    /// [`ConfigError::HttpClient`] when TLS cannot be initialised.
    pub fn new(endpoints: &KitEndpoints, source: S) -> Result<Self, ConfigError> {
        let http = shared_client(endpoints.connect_timeout())?;
        Ok(Self::with_http_client(endpoints, http, source))
    }

    /// A client on a caller-provided `reqwest` client.
    #[must_use]
    pub fn with_http_client(endpoints: &KitEndpoints, http: reqwest::Client, source: S) -> Self {
        Self {
            base_url: endpoints.base_url().clone(),
            http,
            source,
            policy: RetryPolicy::default(),
            timeout: endpoints.request_timeout(),
            max_body: DEFAULT_MAX_API_RESPONSE_BYTES,
            budget: None,
        }
    }

    fn url_for(&self, request: &KitRequest) -> Result<Url, ApiError> {
        let path = request.path.as_str();
        if !path.starts_with('/') || path.starts_with("//") || path.contains(['?', '#']) {
            return Err(ApiError::InvalidRequest(
                "the path must be absolute (start with one `/`) and carry no query or fragment"
                    .into(),
            ));
        }
        let mut url = join_path(&self.base_url, path);
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(request.query.iter());
        }
        Ok(url)
    }

    async fn attempt(
        &self,
        url: &Url,
        request: &KitRequest,
        token: &AccessToken,
    ) -> Result<RawResponse, TransportError> {
        let accept = request.accept.as_deref().unwrap_or("application/json");
        let mut builder = self
            .http
            .request(request.method.clone(), url.clone())
            .bearer_auth(token.expose_secret())
            .header(http::header::ACCEPT, accept);
        if let Some(body) = &request.body {
            let content_type = request
                .content_type
                .as_deref()
                .unwrap_or("application/json");
            builder = builder
                .header(http::header::CONTENT_TYPE, content_type)
                .body(body.clone());
        }
        execute(builder, self.timeout, self.max_body).await
    }

    /// Sends `request` for `connection` with the retry rules above.
    ///
    /// # Errors
    /// [`ApiError`]; none of them carries a token.
    pub async fn send(
        &self,
        connection: &ConnectionId,
        request: &KitRequest,
    ) -> Result<KitResponse, ApiError> {
        self.run(connection, request)
            .await
            .map(KitResponse::from)
            .map_err(|failure| failure.error)
    }

    /// Sends `request` with the same rules as [`KitClient::send`], but returns Kit's final
    /// answer whatever its status: the 4xx, the 429 or 5xx left after the retries, and the 401
    /// of a grant the token source confirmed dead. Errors only when there is no answer to pass
    /// on (transport failures, the token source failing). For proxies.
    ///
    /// # Errors
    /// [`ApiError::Transport`], [`ApiError::TokenSource`], [`ApiError::InvalidRequest`].
    pub async fn forward(
        &self,
        connection: &ConnectionId,
        request: &KitRequest,
    ) -> Result<KitResponse, ApiError> {
        match self.run(connection, request).await {
            Ok(raw)
            | Err(Failure {
                response: Some(raw),
                ..
            }) => Ok(KitResponse::from(raw)),
            Err(Failure { error, .. }) => Err(error),
        }
    }

    /// The retry loop: a 2xx, or why it stopped with Kit's last answer.
    async fn run(
        &self,
        connection: &ConnectionId,
        request: &KitRequest,
    ) -> Result<RawResponse, Failure> {
        let url = self.url_for(request)?;
        let may_repeat = request.is_idempotent() || request.retry_ambiguous;
        let mut token = self.source.access_token(connection).await?;
        let mut refreshed = false;
        let mut verified = false;
        let mut retries = 0u32;
        let mut throttled = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            if let Some(budget) = &self.budget {
                budget.acquire(connection).await;
            }
            let outcome = self.attempt(&url, request, &token).await;
            // Each arm returns, continues, or yields (error if we give up, server's wait hint,
            // Kit's answer).
            let (error, hint, response) = match outcome {
                Ok(raw) if raw.status.is_success() => return Ok(raw),
                Ok(raw) if raw.status == StatusCode::UNAUTHORIZED => {
                    let known = [token.expose_secret()];
                    match classify_401(&raw.body, &known) {
                        TokenRejection::Expired if !refreshed => {
                            refreshed = true;
                            tracing::debug!(%connection, "access token expired; forcing a refresh");
                            token = self.source.force_refresh(connection, &token).await?;
                            continue;
                        }
                        TokenRejection::Expired => {
                            return Err(Failure {
                                error: ApiError::TokenExpired,
                                response: Some(raw),
                            });
                        }
                        TokenRejection::Refused(message) if !verified => {
                            verified = true;
                            let reason = ReauthReason { message };
                            tracing::info!(%connection, reason = %reason.message,
                                "Kit refused the access token; verifying the stored one");
                            match self.source.token_refused(connection, &token, &reason).await {
                                Ok(next) => {
                                    token = next;
                                    continue;
                                }
                                Err(TokenSourceError::ReauthRequired { .. }) => {
                                    tracing::warn!(%connection, reason = %reason.message,
                                        "Kit refused the stored access token too: the grant is dead");
                                    return Err(Failure {
                                        error: ApiError::ReauthRequired { reason },
                                        response: Some(raw),
                                    });
                                }
                                Err(error) => return Err(error.into()),
                            }
                        }
                        TokenRejection::Refused(message) => {
                            // Refused again right after the stored token was verified: report
                            // it, without calling the grant dead on one more answer.
                            return Err(Failure {
                                error: ApiError::Status {
                                    status: 401,
                                    messages: vec![message],
                                },
                                response: Some(raw),
                            });
                        }
                    }
                }
                Ok(raw) if raw.status == StatusCode::TOO_MANY_REQUESTS => {
                    // Refused before processing: safe to repeat whatever the method.
                    let retry_after = raw.retry_after();
                    // Kit sends no `Retry-After`: with a budget, wait as Kit's window asks.
                    let wait = retry_after.or_else(|| {
                        self.budget
                            .as_ref()
                            .map(|_| RateBudget::backoff_after_429(throttled))
                    });
                    throttled += 1;
                    (ApiError::RateLimited { retry_after }, wait, Some(raw))
                }
                Ok(raw) => {
                    let status = raw.status.as_u16();
                    let error = ApiError::Status {
                        status,
                        messages: messages(&raw.body, &[token.expose_secret()]),
                    };
                    let retryable =
                        raw.status.is_server_error() || raw.status == StatusCode::REQUEST_TIMEOUT;
                    if !(retryable && may_repeat) {
                        return Err(Failure {
                            error,
                            response: Some(raw),
                        });
                    }
                    (error, raw.retry_after(), Some(raw))
                }
                Err(transport) => {
                    if !(transport.certainly_not_sent() || may_repeat) {
                        return Err(ApiError::Transport(transport).into());
                    }
                    (ApiError::Transport(transport), None, None)
                }
            };
            let delay = hint.unwrap_or_else(|| self.policy.backoff(retries));
            if retries >= self.policy.max_retries
                || waited.saturating_add(delay) > self.policy.max_total_wait
            {
                return Err(Failure { error, response });
            }
            tracing::debug!(%connection, retry = retries + 1, ?delay, %error, "retrying Kit API call");
            tokio::time::sleep(delay).await;
            waited += delay;
            retries += 1;
        }
    }

    /// `GET /v4/account`: the account behind the connection.
    ///
    /// # Errors
    /// [`ApiError`] as for [`KitClient::send`]; [`ApiError::Protocol`] for an unexpected shape.
    pub async fn account(&self, connection: &ConnectionId) -> Result<KitAccount, ApiError> {
        let response = self
            .send(connection, &KitRequest::get("/v4/account"))
            .await?;
        parse_account(&response.body, &[]).map_err(|excerpt| ApiError::Protocol {
            status: response.status.as_u16(),
            excerpt,
        })
    }
}
