//! `ANY /v1/connections/{id}/kit/{path}`: Kit's API v4 with the connection's token injected,
//! so that apps in other languages never hold a token.
//!
//! Retry rules (kit-protocol.md §6): a 401 "The access token expired" forces one refresh and
//! one retry; another 401 tells the manager the token was refused (the grant is dead unless the
//! token moved on meanwhile, then one retry with the new token); a 429 is retried after
//! `Retry-After` (or a short jittered backoff), twice at most. Everything else passes through.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit_oauth::core::{AccessToken, ConnectionId, Url};
use rand::Rng as _;

use crate::AppState;
use crate::api::manager_error;
use crate::extract::{ApiPath, Visible};
use crate::web::ApiError;

/// The largest request body forwarded.
pub const MAX_BODY: usize = 1024 * 1024;
/// 429 retries at most.
const RATE_LIMIT_RETRIES: u32 = 2;
/// The longest `Retry-After` honoured inline; beyond it the 429 goes back to the caller.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(5);

/// Kit's API v4, as the proxy calls it.
#[derive(Debug, Clone)]
pub struct KitApi {
    client: reqwest::Client,
    base: Url,
}

impl KitApi {
    /// Calls under `base` (e.g. `https://api.kit.com`), API v4 paths appended.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS roots).
    pub fn new(base: Url) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        Ok(Self { client, base })
    }

    fn url(&self, path: &str, query: Option<&str>) -> Option<Url> {
        let path = path.trim_start_matches('/');
        let path = path.strip_prefix("v4/").unwrap_or(path);
        let safe = !path.is_empty()
            && path
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
            && path.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~')
            });
        if !safe {
            return None;
        }
        let mut url = self.base.join(&format!("/v4/{path}")).ok()?;
        url.set_query(query.filter(|q| !q.is_empty()));
        Some(url)
    }

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: &Bytes,
        token: &AccessToken,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .bearer_auth(token.expose_secret())
            .body(body.clone());
        for name in [header::CONTENT_TYPE, header::ACCEPT] {
            if let Some(value) = headers.get(&name) {
                request = request.header(name, value);
            }
        }
        request.send().await
    }
}

enum Unauthorized {
    Expired,
    Refused(String),
}

fn classify_401(body: &[u8]) -> Unauthorized {
    let text = String::from_utf8_lossy(body);
    if text.contains("expired") {
        Unauthorized::Expired
    } else {
        let message: String = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| {
                v.get("errors")
                    .and_then(|e| e.get(0))
                    .and_then(|e| e.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "Kit refused the access token".to_owned());
        Unauthorized::Refused(message.chars().take(200).collect())
    }
}

fn retry_after(response: &reqwest::Response, attempt: u32) -> Duration {
    response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or_else(
            || {
                let base = 250u64 << attempt.min(4);
                Duration::from_millis(rand::rngs::OsRng.gen_range(base / 2..=base))
            },
            Duration::from_secs,
        )
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
    let Some(url) = kit.url(&path, parts.uri.query()) else {
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
    forward(
        &state,
        &kit,
        &id,
        &parts.method,
        &url,
        &parts.headers,
        &body,
    )
    .await
}

async fn forward(
    state: &AppState,
    kit: &KitApi,
    id: &ConnectionId,
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let mut token = state
        .engine
        .manager
        .access_token(id)
        .await
        .map_err(|e| manager_error(&e))?;
    let mut token_retry_used = false;
    let mut rate_retries = 0;
    loop {
        let response = kit
            .send(method, url, headers, body, &token)
            .await
            .map_err(|e| {
                tracing::warn!(connection = %id, error = %e.without_url(), "Kit API call failed");
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "kit_unreachable",
                    "Kit's API could not be reached",
                )
            })?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS && rate_retries < RATE_LIMIT_RETRIES {
            let wait = retry_after(&response, rate_retries);
            if wait <= MAX_INLINE_WAIT {
                rate_retries += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
        }
        if status == StatusCode::UNAUTHORIZED && !token_retry_used {
            let response_headers = response.headers().clone();
            let bytes = response.bytes().await.unwrap_or_default();
            token_retry_used = true;
            match classify_401(&bytes) {
                Unauthorized::Expired => {
                    token = state
                        .engine
                        .manager
                        .force_refresh(id, Some(&token))
                        .await
                        .map_err(|e| manager_error(&e))?;
                    continue;
                }
                Unauthorized::Refused(reason) => {
                    let dead = state
                        .engine
                        .manager
                        .report_rejected(id, &token, &reason)
                        .await
                        .map_err(|e| manager_error(&e))?;
                    if !dead {
                        token = state
                            .engine
                            .manager
                            .access_token(id)
                            .await
                            .map_err(|e| manager_error(&e))?;
                        continue;
                    }
                    return Ok(passthrough(status, &response_headers, bytes));
                }
            }
        }
        let response_headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|_| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "kit_unreachable",
                "Kit's answer was cut off",
            )
        })?;
        return Ok(passthrough(status, &response_headers, bytes));
    }
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
        let kit = KitApi::new(Url::parse("https://api.kit.com").unwrap()).unwrap();
        assert_eq!(
            kit.url("account", None).unwrap().as_str(),
            "https://api.kit.com/v4/account"
        );
        assert_eq!(
            kit.url("v4/subscribers", Some("per_page=5"))
                .unwrap()
                .as_str(),
            "https://api.kit.com/v4/subscribers?per_page=5"
        );
        for bad in [
            "",
            "../oauth/token",
            "a/../../x",
            "a//b",
            "%2e%2e/x",
            "http://evil",
        ] {
            assert!(kit.url(bad, None).is_none(), "{bad}");
        }
    }

    #[test]
    fn expired_is_told_apart_from_revoked() {
        assert!(matches!(
            classify_401(br#"{"errors":["The access token expired"]}"#),
            Unauthorized::Expired
        ));
        let Unauthorized::Refused(reason) =
            classify_401(br#"{"errors":["The access token was revoked"]}"#)
        else {
            panic!("revoked classified as expired");
        };
        assert_eq!(reason, "The access token was revoked");
    }
}
