//! `/healthz`, `/readyz`, `/metrics`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit_oauth::core::{ListQuery, StateName};
use serde_json::json;

use crate::AppState;

/// Connections counted per scrape at most (the gauges say "at least" beyond it).
const GAUGE_SCAN_LIMIT: usize = 20_000;
const PAGE: u32 = 200;

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
    update_connection_gauges(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

async fn update_connection_gauges(state: &AppState) {
    let mut by_state: BTreeMap<&'static str, u32> = BTreeMap::new();
    for name in [
        StateName::Authorized,
        StateName::Expired,
        StateName::Unauthorized,
    ] {
        by_state.insert(name.as_str(), 0);
    }
    let mut query = ListQuery {
        limit: PAGE,
        ..ListQuery::default()
    };
    let mut seen = 0usize;
    loop {
        let page = match state.engine.manager.list(&query).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "could not count connections for metrics");
                return;
            }
        };
        seen += page.len();
        for status in &page {
            *by_state.entry(status.state.as_str()).or_default() += 1;
        }
        let full = page.len() == PAGE as usize;
        match page.last() {
            Some(last) if full && seen < GAUGE_SCAN_LIMIT => query.after = Some(last.id.clone()),
            _ => break,
        }
    }
    for (name, count) in &by_state {
        metrics::gauge!("kit_oauth_connections", "state" => *name).set(f64::from(*count));
    }
    // `expired` is the manager's name for "inside the refresh margin or past expiry".
    let due = by_state.get("expired").copied().unwrap_or(0);
    metrics::gauge!("kit_oauth_tokens_due").set(f64::from(due));
}
