//! The revoke endpoint (RFC 7009).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use crate::model::OAuthError;

use super::AppState;
use super::client_auth::authenticate_client;
use super::support::{no_store, oauth_error_response, read_params};

pub(super) async fn revoke(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
    let p = match read_params(&headers, body, s.config.max_body_bytes, true).await {
        Ok(p) => p,
        Err(msg) => return oauth_error_response(&s, &OAuthError::invalid_request(msg)),
    };
    let Some(token) = p.get("token") else {
        return oauth_error_response(&s, &OAuthError::invalid_request("token is required."));
    };
    // Kit answers 200 with an empty body whatever happens; only an authenticated client's own
    // current token revokes anything.
    let client = authenticate_client(&s, &headers, &p).ok();
    let now = s.now_ms();
    {
        let mut m = s.model();
        m.stats.revocations += 1;
        if let Some(client_id) = client {
            m.revoke_token(&client_id, token, now);
        }
    }
    no_store(StatusCode::OK.into_response())
}
