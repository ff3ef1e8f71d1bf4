//! The revoke endpoint (RFC 7009).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::model::{Caller, RevokeOutcome, sentences};
use crate::server::Shared;

use super::AppState;
use super::client_auth::authenticate_client;
use super::support::{no_store, read_params};

/// Doorkeeper's answers: a client that does not authenticate gets 403 `unauthorized_client`
/// and nothing is revoked; an authenticated one gets 200 `{}` whether or not the token was
/// known, live or already dead.
pub(super) async fn revoke(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
    let p = match read_params(&headers, body, s.config.max_body_bytes, true).await {
        Ok(p) => p,
        Err(bad) => return bad.into_response(&s),
    };
    let Caller::Client(client_id) = authenticate_client(&s, &headers, &p) else {
        return refused(&s);
    };
    let now = s.now_ms();
    let outcome = {
        let mut m = s.model();
        m.stats.revocations += 1;
        match p.get("token") {
            Some(token) => m.revoke_token(&s.config, &client_id, token, now),
            None => RevokeOutcome::Ignored,
        }
    };
    if outcome == RevokeOutcome::Forbidden {
        return refused(&s);
    }
    no_store((StatusCode::OK, Json(json!({}))).into_response())
}

fn refused(s: &Shared) -> Response {
    s.model().stats.revocations_refused += 1;
    no_store(
        (
            StatusCode::FORBIDDEN,
            Json(json!({
                "error": "unauthorized_client",
                "error_description": sentences::UNAUTHORIZED_REVOKE,
            })),
        )
            .into_response(),
    )
}
