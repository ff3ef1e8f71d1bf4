//! `ANY /v1/connections/{id}/kit/{path}`: Kit's API v4 with the connection's token injected,
//! so that apps in other languages never hold a token.
//!
//! Kit's rules are not repeated here: the call goes through `kit-oauth-http`'s
//! [`KitClient::forward`], the copy the library uses. A 401 with Kit's expiry message forces
//! one refresh and one retry; any other 401 is checked against the stored token
//! (`GET /v4/account`) before the grant is called dead, with one retry when that token works; a
//! 429 is retried after its `Retry-After` (seconds or an HTTP date) or a jittered backoff, and a
//! 5xx or timeout too for idempotent methods, within [`PROXY_RETRIES`]. Whatever Kit answers
//! last is passed through.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit_oauth::core::{AccessToken, ConnectionId, Url};
use kit_oauth::http::kit_api::RateBudget;
use kit_oauth::http::{
    ApiError as KitError, ConfigError, KitClient, KitRequest, ReauthReason, RetryPolicy,
    TokenSource, TokenSourceError,
};
use kit_oauth::{Manager, ManagerError};

use crate::AppState;
use crate::api::manager_error;
use crate::extract::{ApiPath, Visible};
use crate::web::ApiError;

/// The largest request body forwarded.
pub const MAX_BODY: usize = 1024 * 1024;

/// How long the proxy holds a caller for Kit's 429s and 5xx: two retries, ten seconds of
/// waiting at most (a longer `Retry-After` goes back to the caller at once).
pub const PROXY_RETRIES: RetryPolicy = RetryPolicy {
    max_retries: 2,
    base_delay: Duration::from_millis(250),
    max_delay: Duration::from_secs(4),
    max_total_wait: Duration::from_secs(10),
};

/// One attempt's time limit (a slow Kit export can take a while).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Kit's API v4, as the proxy calls it: a [`KitClient`] bound to each request's connection.
#[derive(Debug, Clone)]
pub struct KitApi {
    client: KitClient<()>,
}

impl KitApi {
    /// Calls under `base` (e.g. `https://api.kit.com`), API v4 paths appended.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(base: Url) -> Result<Self, ConfigError> {
        let client = KitClient::for_base_url(base, ())?
            .with_retry_policy(PROXY_RETRIES)
            .with_timeout(ATTEMPT_TIMEOUT);
        Ok(Self { client })
    }

    /// Takes Kit's rate budget from `budget` before every call, so the proxy and the library's
    /// client of one process share each connection's 600 requests a minute.
    #[must_use]
    pub fn with_rate_budget(mut self, budget: RateBudget) -> Self {
        self.client = self.client.with_rate_budget(budget);
        self
    }

    /// The API path for the caller's `path`: under `/v4/`, no empty, `.` or `..` segment, and
    /// only unreserved characters, so that nothing reaches Kit's OAuth endpoints.
    fn path(path: &str) -> Option<String> {
        let path = path.trim_start_matches('/');
        let path = path.strip_prefix("v4/").unwrap_or(path);
        let safe = !path.is_empty()
            && path
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
            && path.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~')
            });
        safe.then(|| format!("/v4/{path}"))
    }
}

/// The broker's manager as `KitClient`'s token source. Keeps the manager's own error, so the
/// caller gets the broker's usual answer for it (404, 409 `reauth_required`, 503).
struct BrokerTokens<'a> {
    manager: &'a Manager,
    failure: Mutex<Option<ManagerError>>,
}

impl BrokerTokens<'_> {
    fn keep(&self, error: ManagerError) -> TokenSourceError {
        let reported = match &error {
            ManagerError::ReauthRequired { reason, .. } => TokenSourceError::ReauthRequired {
                reason: reason.clone(),
            },
            other => TokenSourceError::Unavailable {
                reason: other.to_string(),
                retry_after: None,
            },
        };
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
        reported
    }

    fn failure(&self) -> Option<ManagerError> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl TokenSource for BrokerTokens<'_> {
    async fn access_token(
        &self,
        connection: &ConnectionId,
    ) -> Result<AccessToken, TokenSourceError> {
        self.manager
            .access_token(connection)
            .await
            .map_err(|e| self.keep(e))
    }

    async fn force_refresh(
        &self,
        connection: &ConnectionId,
        stale: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        self.manager
            .force_refresh(connection, Some(stale))
            .await
            .map_err(|e| self.keep(e))
    }

    async fn token_refused(
        &self,
        connection: &ConnectionId,
        refused: &AccessToken,
        reason: &ReauthReason,
    ) -> Result<AccessToken, TokenSourceError> {
        match self
            .manager
            .verify_refused(connection, refused, &reason.message)
            .await
        {
            Ok(true) => Err(TokenSourceError::ReauthRequired {
                reason: reason.message.clone(),
            }),
            Ok(false) => self.access_token(connection).await,
            Err(error) => Err(self.keep(error)),
        }
    }
}

/// The proxy handler.
pub async fn handle(
    State(state): State<AppState>,
    Visible { id, .. }: Visible,
    ApiPath((_, path)): ApiPath<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let Some(kit) = state.options.kit_api.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "proxy_disabled",
            "this server has no Kit API base configured",
        ));
    };
    let Some(path) = KitApi::path(&path) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the Kit API path is not valid",
        ));
    };
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the request body is larger than 1 MiB",
        )
    })?;
    let request = kit_request(
        &parts.method,
        &path,
        parts.uri.query(),
        &parts.headers,
        body,
    );
    let answer = send(&state, &kit, &id, &request).await?;
    Ok(passthrough(answer.status, &answer.headers, answer.body))
}

/// Sends `request` for connection `id` through Kit's rules with the broker's tokens; the
/// errors are the broker's (the bulk route calls Kit this way too).
pub(crate) async fn send(
    state: &AppState,
    kit: &KitApi,
    id: &ConnectionId,
    request: &KitRequest,
) -> Result<kit_oauth::http::KitResponse, ApiError> {
    let tokens = BrokerTokens {
        manager: &state.engine.manager,
        failure: Mutex::new(None),
    };
    let client = kit.client.with_source(tokens);
    match client.forward(id, request).await {
        Ok(answer) => Ok(answer),
        Err(KitError::TokenSource(error)) => Err(client.source().failure().map_or_else(
            || {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    format!("no token available right now: {error}"),
                )
            },
            |e| manager_error(&e),
        )),
        Err(KitError::InvalidRequest(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the Kit API path is not valid",
        )),
        Err(error) => {
            tracing::warn!(connection = %id, %error, "Kit API call failed");
            Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "kit_unreachable",
                "Kit's API could not be reached",
            ))
        }
    }
}

/// The caller's method, query, body and the safe headers (`Content-Type`, `Accept`); never its
/// `Authorization` (the broker key) or cookies.
fn kit_request(
    method: &axum::http::Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> KitRequest {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let mut request = KitRequest::new(method.clone(), path).raw_query(query.unwrap_or(""));
    if let Some(accept) = header(header::ACCEPT) {
        request = request.accept(accept);
    }
    if !body.is_empty() {
        let content_type = header(header::CONTENT_TYPE).unwrap_or("application/json");
        request = request.body(body, content_type);
    }
    request
}

fn passthrough(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(value) = headers.get(&name) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_under_api_v4() {
        assert_eq!(KitApi::path("account").as_deref(), Some("/v4/account"));
        assert_eq!(
            KitApi::path("v4/subscribers").as_deref(),
            Some("/v4/subscribers")
        );
        for bad in [
            "",
            "../oauth/token",
            "a/../../x",
            "a//b",
            "%2e%2e/x",
            "http://evil",
        ] {
            assert!(KitApi::path(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_safe_parts_of_the_call_are_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer key"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/csv"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let request = kit_request(
            &axum::http::Method::POST,
            "/v4/tags",
            Some("per_page=5&after=a%2Bb"),
            &headers,
            Bytes::from_static(b"{}"),
        );
        let debug = format!("{request:?}");
        assert!(
            debug.contains("per_page") && debug.contains("a+b"),
            "{debug}"
        );
        assert!(debug.contains("text/csv"), "{debug}");
        assert!(!debug.contains("Bearer key"), "{debug}");
        assert_eq!(request.method(), axum::http::Method::POST);
        assert_eq!(request.path(), "/v4/tags");
    }
}
