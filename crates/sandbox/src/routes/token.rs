//! The token endpoint: `authorization_code` and `refresh_token` grants.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use crate::model::{Caller, OAuthError, TokenResponse};
use crate::params::Params;
use crate::server::Shared;

use super::AppState;
use super::client_auth::authenticate_client;
use super::support::{no_store, oauth_error_response, read_params};

fn token_ok(t: &TokenResponse) -> Response {
    no_store((StatusCode::OK, Json(t)).into_response())
}

pub(super) async fn token(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
    let p = match read_params(&headers, body, s.config.max_body_bytes, true).await {
        Ok(p) => p,
        Err(bad) => return bad.into_response(&s),
    };
    match grant(&s, &headers, &p) {
        Ok(t) => token_ok(&t),
        Err(e) => oauth_error_response(&s, &e),
    }
}

/// The grant types, each checked in Doorkeeper's order so that a request with several faults
/// gets the answer Kit would give.
fn grant(s: &Shared, headers: &HeaderMap, p: &Params) -> Result<TokenResponse, OAuthError> {
    let grant_type = p
        .get("grant_type")
        .ok_or_else(|| OAuthError::missing("grant_type"))?;
    match grant_type {
        "authorization_code" => authorization_code(s, headers, p),
        "refresh_token" => refresh_token(s, headers, p),
        _ => Err(OAuthError::unsupported_grant_type()),
    }
}

fn authorization_code(
    s: &Shared,
    headers: &HeaderMap,
    p: &Params,
) -> Result<TokenResponse, OAuthError> {
    let code = p.get("code");
    let verifier = p.get("code_verifier");
    if verifier.is_none() && code.is_some_and(|c| s.model().code_wants_verifier(c)) {
        return Err(OAuthError::missing("code_verifier"));
    }
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::missing("redirect_uri"))?;
    let Caller::Client(client_id) = authenticate_client(s, headers, p) else {
        return Err(OAuthError::invalid_client());
    };
    let now = s.now_ms();
    let mut m = s.model();
    let Some(code) = code else {
        m.stats.count_invalid_grant("code_missing");
        return Err(OAuthError::invalid_grant());
    };
    m.exchange_code(&s.config, &client_id, code, redirect_uri, verifier, now)
}

fn refresh_token(s: &Shared, headers: &HeaderMap, p: &Params) -> Result<TokenResponse, OAuthError> {
    let refresh = p
        .get("refresh_token")
        .ok_or_else(|| OAuthError::missing("refresh_token"))?;
    if let Some(scope) = p.get("scope")
        && scope.split(' ').any(|x| !x.is_empty() && x != "public")
    {
        return Err(OAuthError::invalid_scope());
    }
    let caller = authenticate_client(s, headers, p);
    let now = s.now_ms();
    s.model().refresh(&s.config, &caller, refresh, now)
}
