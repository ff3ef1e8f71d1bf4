//! The token endpoint: `authorization_code` and `refresh_token` grants.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use crate::model::{OAuthError, TokenResponse};
use crate::server::Shared;

use super::AppState;
use super::client_auth::authenticate_client;
use super::support::{no_store, oauth_error_response, read_params};

fn token_ok(t: &TokenResponse) -> Response {
    no_store((StatusCode::OK, Json(t)).into_response())
}

pub(super) async fn token(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
    match token_inner(&s, &headers, body).await {
        Ok(t) => token_ok(&t),
        Err(e) => oauth_error_response(&s, &e),
    }
}

async fn token_inner(
    s: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenResponse, OAuthError> {
    let p = read_params(headers, body, s.config.max_body_bytes, true)
        .await
        .map_err(OAuthError::invalid_request)?;
    let grant_type = p
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required."))?;
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err(OAuthError::unsupported_grant_type(
            "grant_type must be authorization_code or refresh_token.",
        ));
    }
    let client_id = authenticate_client(s, headers, &p)?;
    if grant_type == "authorization_code" {
        let code = p
            .get("code")
            .ok_or_else(|| OAuthError::invalid_request("code is required."))?;
        let redirect_uri = p
            .get("redirect_uri")
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required."))?;
        let verifier = p.get("code_verifier");
        let now = s.now_ms();
        s.model()
            .exchange_code(&s.config, &client_id, code, redirect_uri, verifier, now)
    } else {
        let refresh = p
            .get("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required."))?;
        if let Some(scope) = p.get("scope")
            && scope.split(' ').any(|x| !x.is_empty() && x != "public")
        {
            return Err(OAuthError {
                status: StatusCode::BAD_REQUEST,
                error: "invalid_scope",
                description: "The only scope is public.".to_owned(),
            });
        }
        let now = s.now_ms();
        s.model().refresh(&s.config, &client_id, refresh, now)
    }
}
