//! [`KitClient`]: how apps call Kit's API v4 — bearer injection, the 401/429 retry rules of
//! kit-protocol.md §6, and cursor pagination.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use kit_oauth_core::{AccessToken, ConnectionId, KitAccount};
use rand::Rng as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use url::Url;

use crate::config::{ConfigError, KitEndpoints, join_path};
use crate::kit_errors::{Unauthorized, classify_401, messages};
use crate::oauth::parse_account;
use crate::redact::excerpt;
use crate::transport::{RawResponse, TransportError, execute, shared_client};

/// Default cap on an API response body (a page of 1,000 subscribers fits comfortably).
pub const DEFAULT_MAX_API_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// Why a connection needs the creator to install the app again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReauthReason {
    /// What Kit said (`The access token is invalid`, `… was revoked`, or another message).
    pub message: String,
}

/// Where [`KitClient`] gets access tokens. The manager implements it; tests use a simple one.
pub trait TokenSource: Send + Sync {
    /// A currently valid access token for `connection`.
    fn access_token(
        &self,
        connection: &ConnectionId,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send;

    /// Kit said `stale` expired: refresh now (unless someone already replaced `stale`) and
    /// return the new access token.
    fn force_refresh(
        &self,
        connection: &ConnectionId,
        stale: &AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send;

    /// Kit refused the token as invalid or revoked: the grant is dead.
    fn reauth_required(
        &self,
        connection: &ConnectionId,
        reason: &ReauthReason,
    ) -> impl Future<Output = ()> + Send;
}

impl<T: TokenSource> TokenSource for Arc<T> {
    fn access_token(
        &self,
        connection: &ConnectionId,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send {
        (**self).access_token(connection)
    }
    fn force_refresh(
        &self,
        connection: &ConnectionId,
        stale: &AccessToken,
    ) -> impl Future<Output = Result<AccessToken, TokenSourceError>> + Send {
        (**self).force_refresh(connection, stale)
    }
    fn reauth_required(
        &self,
        connection: &ConnectionId,
        reason: &ReauthReason,
    ) -> impl Future<Output = ()> + Send {
        (**self).reauth_required(connection, reason)
    }
}

/// Why a [`TokenSource`] has no token to give.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenSourceError {
    /// The connection needs a reinstall.
    #[error("the connection needs to be re-authorized: {reason}")]
    ReauthRequired {
        /// Why.
        reason: String,
    },
    /// A temporary failure (refresh failed transiently, storage unavailable, …).
    #[error("no token available right now: {reason}")]
    Unavailable {
        /// What happened.
        reason: String,
        /// When to try again, if known.
        retry_after: Option<Duration>,
    },
}

/// Why an API call failed. Secret-free: safe to log.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// Kit refused the access token as invalid or revoked (the token source was told).
    #[error("the connection needs to be re-authorized: {}", reason.message)]
    ReauthRequired {
        /// What Kit said.
        reason: ReauthReason,
    },
    /// Kit still said "expired" after one forced refresh and one retry.
    #[error("the access token was still expired after a forced refresh")]
    TokenExpired,
    /// 429 after the retry budget was spent.
    #[error("rate limited by Kit{}", retry_after.map(|d| format!(" (retry after {d:?})")).unwrap_or_default())]
    RateLimited {
        /// The last `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Any other non-success answer, with Kit's `errors` messages.
    #[error("Kit answered HTTP {status}: {}", messages.join("; "))]
    Status {
        /// The HTTP status.
        status: u16,
        /// Kit's error messages (excerpted).
        messages: Vec<String>,
    },
    /// No complete response (after retries, when the request allowed them).
    #[error("request to Kit failed: {0}")]
    Transport(#[from] TransportError),
    /// The token source failed.
    #[error(transparent)]
    TokenSource(#[from] TokenSourceError),
    /// A success answer without the expected shape.
    #[error("unexpected answer from Kit (status {status}): {excerpt}")]
    Protocol {
        /// The HTTP status.
        status: u16,
        /// A secret-free excerpt.
        excerpt: String,
    },
    /// The request itself is unusable (absolute URL, query in the path, unserializable body).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl ApiError {
    /// Whether trying again later may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. }
            | Self::Transport(_)
            | Self::TokenSource(TokenSourceError::Unavailable { .. }) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }
}

/// A call to Kit's API v4, relative to the base URL.
#[derive(Debug, Clone)]
#[must_use]
pub struct KitRequest {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Bytes>,
    retry_ambiguous: bool,
}

impl KitRequest {
    /// A request with `method` to `path` (e.g. `/v4/subscribers`).
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            retry_ambiguous: false,
        }
    }
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    /// `POST path`.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }
    /// `PUT path`.
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }
    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }
    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
    /// Sets a parameter, replacing any with the same name.
    fn set_query(mut self, name: &str, value: String) -> Self {
        self.query.retain(|(n, _)| n != name);
        self.query.push((name.to_owned(), value));
        self
    }
    /// A JSON body.
    ///
    /// # Errors
    /// [`ApiError::InvalidRequest`] when `body` does not serialize.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, ApiError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ApiError::InvalidRequest(format!("body does not serialize: {e}")))?;
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }
    /// Allow retrying this non-idempotent request after an ambiguous failure (a timeout, a
    /// dropped connection, a 5xx): only when the caller knows a duplicate is harmless.
    pub fn retry_ambiguous(mut self, allow: bool) -> Self {
        self.retry_ambiguous = allow;
        self
    }
    /// Whether the method is idempotent (RFC 9110 §9.2.2).
    #[must_use]
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        )
    }
    /// The method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// The path.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A successful API answer.
#[derive(Debug, Clone)]
pub struct KitResponse {
    /// The status (2xx).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (within the cap).
    pub body: Bytes,
}

impl KitResponse {
    /// The body as JSON.
    ///
    /// # Errors
    /// [`ApiError::Protocol`] with a secret-free excerpt when it does not parse as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Protocol {
            status: self.status.as_u16(),
            excerpt: format!(
                "{} ({})",
                excerpt(&self.body, &[]),
                excerpt(e.to_string().as_bytes(), &[])
            ),
        })
    }
}

/// How hard [`KitClient`] tries on 429, 5xx and network failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (the forced-refresh retry on 401 is extra, and single).
    pub max_retries: u32,
    /// First backoff step when the server gave no `Retry-After`.
    pub base_delay: Duration,
    /// Largest single backoff step.
    pub max_delay: Duration,
    /// The total time spent waiting between attempts never exceeds this; a `Retry-After`
    /// beyond what is left ends the retries at once.
    pub max_total_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_total_wait: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all (the forced refresh on an expired token still happens).
    #[must_use]
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Exponential backoff with jitter: uniform in `[step/2, step]`, `step = base · 2^retry`
    /// capped at `max_delay`.
    fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        let step = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let hi = u64::try_from(step.as_micros()).unwrap_or(u64::MAX);
        let micros = if hi == 0 {
            0
        } else {
            rand::thread_rng().gen_range(hi / 2..=hi)
        };
        Duration::from_micros(micros)
    }
}

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
                        Unauthorized::Expired if !forced_refresh => {
                            forced_refresh = true;
                            tracing::debug!(%connection, "access token expired; forcing a refresh");
                            token = self.source.force_refresh(connection, &token).await?;
                            continue;
                        }
                        Unauthorized::Expired => return Err(ApiError::TokenExpired),
                        Unauthorized::Dead(message) => {
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

    /// Walks a cursor-paginated list (`after`, `per_page`, `pagination.end_cursor`,
    /// `pagination.has_next_page`); `items_key` names the array (`subscribers`, `tags`, …).
    pub fn paginate<T: DeserializeOwned>(
        &self,
        connection: ConnectionId,
        request: KitRequest,
        items_key: impl Into<String>,
        per_page: Option<u32>,
    ) -> Paginator<'_, S, T> {
        Paginator {
            client: self,
            connection,
            request,
            items_key: items_key.into(),
            per_page,
            after: None,
            done: false,
            _items: PhantomData,
        }
    }
}

/// Kit's `pagination` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct Pagination {
    /// Whether an earlier page exists.
    pub has_previous_page: bool,
    /// Whether a later page exists.
    pub has_next_page: bool,
    /// Cursor of the first item.
    pub start_cursor: Option<String>,
    /// Cursor of the last item: the next page's `after`.
    pub end_cursor: Option<String>,
    /// Page size.
    pub per_page: Option<u32>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursors.
    pub pagination: Pagination,
}

/// Iterates the pages of a list; see [`KitClient::paginate`].
#[derive(Debug)]
pub struct Paginator<'a, S, T> {
    client: &'a KitClient<S>,
    connection: ConnectionId,
    request: KitRequest,
    items_key: String,
    per_page: Option<u32>,
    after: Option<String>,
    done: bool,
    _items: PhantomData<fn() -> T>,
}

impl<S: TokenSource, T: DeserializeOwned> Paginator<'_, S, T> {
    /// The next page, or `None` after the last one.
    ///
    /// # Errors
    /// [`ApiError`] from the call; [`ApiError::Protocol`] when the body lacks the items or
    /// the pagination, or a server claims a next page without a new cursor (which would
    /// otherwise loop forever).
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let mut request = self.request.clone();
        if let Some(n) = self.per_page {
            request = request.set_query("per_page", n.to_string());
        }
        if let Some(after) = &self.after {
            request = request.set_query("after", after.clone());
        }
        let response = self.client.send(&self.connection, &request).await;
        let response = response.inspect_err(|_| self.done = true)?;
        let mut value: serde_json::Value = response.json()?;
        let protocol = |what: &str| ApiError::Protocol {
            status: response.status.as_u16(),
            excerpt: what.to_owned(),
        };
        let items = value
            .get_mut(&self.items_key)
            .map(serde_json::Value::take)
            .ok_or_else(|| protocol("the list is missing from the page"))?;
        let items: Vec<T> = serde_json::from_value(items).map_err(|e| ApiError::Protocol {
            status: response.status.as_u16(),
            excerpt: excerpt(e.to_string().as_bytes(), &[]),
        })?;
        let pagination: Pagination = value
            .get_mut("pagination")
            .map(serde_json::Value::take)
            .map(serde_json::from_value)
            .transpose()
            .map_err(|_| protocol("the pagination object is malformed"))?
            .unwrap_or_default();
        if pagination.has_next_page {
            match &pagination.end_cursor {
                Some(cursor) if Some(cursor) != self.after.as_ref() => {
                    self.after = Some(cursor.clone());
                }
                _ => {
                    self.done = true;
                    return Err(protocol(
                        "has_next_page without a new end_cursor; stopping to avoid a loop",
                    ));
                }
            }
        } else {
            self.done = true;
        }
        Ok(Some(Page { items, pagination }))
    }

    /// Every remaining item, stopping with an error past `max_items`.
    ///
    /// # Errors
    /// As [`Paginator::next_page`], and [`ApiError::InvalidRequest`] past `max_items`.
    pub async fn collect_all(mut self, max_items: usize) -> Result<Vec<T>, ApiError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page.items);
            if all.len() > max_items {
                return Err(ApiError::InvalidRequest(format!(
                    "the list has more than {max_items} items"
                )));
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_within_bounds() {
        let p = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            max_total_wait: Duration::from_secs(10),
        };
        for retry in 0..40 {
            let step = Duration::from_millis(100)
                .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
                .min(Duration::from_secs(1));
            let d = p.backoff(retry);
            assert!(
                d >= step / 2 && d <= step,
                "retry {retry}: {d:?} vs {step:?}"
            );
        }
    }

    #[test]
    fn idempotency_and_opt_in() {
        assert!(KitRequest::get("/v4/x").is_idempotent());
        assert!(KitRequest::put("/v4/x").is_idempotent());
        assert!(!KitRequest::post("/v4/x").is_idempotent());
        assert!(
            KitRequest::post("/v4/x")
                .retry_ambiguous(true)
                .retry_ambiguous
        );
    }

    #[test]
    fn transient_classification() {
        assert!(ApiError::RateLimited { retry_after: None }.is_transient());
        assert!(
            ApiError::Status {
                status: 503,
                messages: vec![]
            }
            .is_transient()
        );
        assert!(
            !ApiError::Status {
                status: 404,
                messages: vec![]
            }
            .is_transient()
        );
        assert!(!ApiError::TokenExpired.is_transient());
    }
}
