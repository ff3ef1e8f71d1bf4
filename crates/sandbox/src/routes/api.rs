//! API v4: bearer authentication, rate limiting and `GET /v4/account`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::model::{self, ApiRefusal};
use crate::server::Shared;

use super::AppState;

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"errors": [message]}))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticates and rate-limits an API call, counting the outcome.
pub(crate) fn api_auth(
    s: &Shared,
    headers: &HeaderMap,
) -> Result<(model::Account, Option<String>), ApiRefusal> {
    let now = s.now_ms();
    let mut m = s.model();
    let result = match bearer(headers) {
        Some(token) => m.authenticate_api(token, now, s.config.rate_limit, s.config.rate_window),
        None => Err(ApiRefusal::Invalid),
    };
    match result {
        Ok(_) => m.stats.api_ok += 1,
        Err(ApiRefusal::RateLimited) => m.stats.rate_limited_429 += 1,
        Err(_) => m.stats.unauthorized_401 += 1,
    }
    result
}

/// The exact response Kit gives for a refused API call.
pub(crate) fn refusal_response(refusal: ApiRefusal) -> Response {
    let msg = match refusal {
        // Kit's documented 429: plain text, and no Retry-After (docs/kit-api-v4.md §0).
        ApiRefusal::RateLimited => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(CONTENT_TYPE, "text/plain; charset=utf-8")],
                "Retry later",
            )
                .into_response();
        }
        ApiRefusal::Expired => "The access token expired",
        ApiRefusal::Revoked => "The access token was revoked",
        ApiRefusal::Invalid => "The access token is invalid",
    };
    api_error(StatusCode::UNAUTHORIZED, msg)
}

pub(super) async fn account(State(s): AppState, headers: HeaderMap) -> Response {
    let (acct, _tenant) = match api_auth(&s, &headers) {
        Ok(a) => a,
        Err(refusal) => return refusal_response(refusal),
    };
    let email = acct.email();
    Json(json!({
        "user": {"email": email, "id": acct.user_id},
        "account": {
            "id": acct.id,
            "name": acct.name,
            "plan_type": "creator",
            "primary_email_address": email,
            "created_at": "2023-02-17T11:43:55Z",
            "timezone": {
                "name": "America/New_York",
                "friendly_name": "Eastern Time (US & Canada)",
                "utc_offset": "-05:00"
            }
        }
    }))
    .into_response()
}

pub(super) async fn api_other(State(s): AppState, headers: HeaderMap) -> Response {
    match api_auth(&s, &headers) {
        Ok(_) => api_error(StatusCode::NOT_FOUND, "Not Found"),
        Err(refusal) => refusal_response(refusal),
    }
}
