//! [`KitClient`]: how apps call Kit's API v4 — bearer injection and the 401/429/5xx retry
//! rules of kit-protocol.md §6.

use std::time::Duration;

use http::StatusCode;
use kit_oauth_core::{AccessToken, ConnectionId, KitAccount};
use url::Url;

use crate::account::parse_account;
use crate::api_error::ApiError;
use crate::config::{ConfigError, KitEndpoints, join_path};
use crate::kit_errors::{TokenRejection, classify_401, messages};
use crate::request::{KitRequest, KitResponse};
use crate::retry::RetryPolicy;
use crate::token_source::{ReauthReason, TokenSource};
use crate::transport::{RawResponse, TransportError, execute, shared_client};

/// Default cap on an API response body (a page of 1,000 subscribers fits comfortably).
pub const DEFAULT_MAX_API_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Kit's API v4 for apps: tokens from a [`TokenSource`], `Authorization: Bearer` on every
/// call, and the retry rules:
///
/// - 401 `The access token expired` → [`TokenSource::force_refresh`], then exactly one retry;
/// - 401 invalid / revoked / anything else → [`TokenSource::reauth_required`] and
///   [`ApiError::ReauthRequired`], no retry;
/// - 429 → wait `Retry-After`, or jittered exponential backoff, within [`RetryPolicy`];
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
        }
    }

    /// Replaces the retry policy.
    #[must_use]
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
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
        let mut builder = self
            .http
            .request(request.method.clone(), url.clone())
            .bearer_auth(token.expose_secret())
            .header(http::header::ACCEPT, "application/json");
        if let Some(body) = &request.body {
            builder = builder
                .header(http::header::CONTENT_TYPE, "application/json")
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
        let url = self.url_for(request)?;
        let may_repeat = request.is_idempotent() || request.retry_ambiguous;
        let mut token = self.source.access_token(connection).await?;
        let mut forced_refresh = false;
        let mut retries = 0u32;
        let mut waited = Duration::ZERO;
        loop {
            let outcome = self.attempt(&url, request, &token).await;
            // Each arm returns, continues, or yields (error if we give up, server's wait hint).
            let (error, hint) = match outcome {
                Ok(raw) if raw.status.is_success() => {
                    return Ok(KitResponse {
                        status: raw.status,
                        headers: raw.headers,
                        body: raw.body,
                    });
                }
                Ok(raw) if raw.status == StatusCode::UNAUTHORIZED => {
                    let known = [token.expose_secret()];
                    match classify_401(&raw.body, &known) {
                        TokenRejection::Expired if !forced_refresh => {
                            forced_refresh = true;
                            tracing::debug!(%connection, "access token expired; forcing a refresh");
                            token = self.source.force_refresh(connection, &token).await?;
                            continue;
                        }
                        TokenRejection::Expired => return Err(ApiError::TokenExpired),
                        TokenRejection::Dead(message) => {
                            let reason = ReauthReason { message };
                            tracing::warn!(%connection, reason = %reason.message, "Kit refused the access token");
                            self.source.reauth_required(connection, &reason).await;
                            return Err(ApiError::ReauthRequired { reason });
                        }
                    }
                }
                Ok(raw) if raw.status == StatusCode::TOO_MANY_REQUESTS => {
                    // Refused before processing: safe to repeat whatever the method.
                    let retry_after = raw.retry_after();
                    (ApiError::RateLimited { retry_after }, retry_after)
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
                        return Err(error);
                    }
                    (error, raw.retry_after())
                }
                Err(transport) => {
                    if !(transport.certainly_not_sent() || may_repeat) {
                        return Err(ApiError::Transport(transport));
                    }
                    (ApiError::Transport(transport), None)
                }
            };
            let delay = hint.unwrap_or_else(|| self.policy.backoff(retries));
            if retries >= self.policy.max_retries
                || waited.saturating_add(delay) > self.policy.max_total_wait
            {
                return Err(error);
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
