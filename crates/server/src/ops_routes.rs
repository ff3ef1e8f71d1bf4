//! `/healthz`, `/readyz`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit_oauth::core::ListQuery;
use serde_json::json;

use crate::AppState;

/// The process is up.
pub async fn healthz() -> Response {
    (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
}

/// The database is reachable and migrated.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let result = match &state.options.ready {
        Some(check) => check().await,
        None => state
            .engine
            .manager
            .list(&ListQuery {
                limit: 1,
                ..ListQuery::default()
            })
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready", "reason": reason})),
            )
                .into_response()
        }
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = crate::metrics::handle() else {
        return (
            StatusCode::NOT_IMPLEMENTED,
            "another metrics recorder is installed in this process\n",
        )
            .into_response();
    };
    state.counts.update_gauges(&state.engine.manager).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
