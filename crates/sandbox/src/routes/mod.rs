//! Request handlers, one module per topic: OAuth authorize/token/revoke, API v4, the App Store
//! simulation and the control API; `front` counts requests and injects faults before them.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::routing::{any, get, post};

use crate::server::Shared;

mod api;
mod app_store;
mod authorize;
mod client_auth;
mod control;
mod front;
mod revoke;
mod support;
mod token;

type AppState = State<Arc<Shared>>;

/// Builds the sandbox's router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(support::index))
        .route(
            "/v4/oauth/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(
            "/oauth/authorize",
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route("/v4/oauth/token", post(token::token))
        .route("/oauth/token", post(token::token))
        .route("/v4/oauth/revoke", post(revoke::revoke))
        .route("/oauth/revoke", post(revoke::revoke))
        .route("/v4/account", get(api::account))
        .route("/v4/{*rest}", any(api::api_other))
        .route("/apps/{id}/install", get(app_store::app_install))
        .route("/apps/{id}", get(app_store::app_page))
        .route("/_sandbox/stats", get(control::stats))
        .route("/_sandbox/stats/reset", post(control::stats_reset))
        .route(
            "/_sandbox/faults",
            get(control::faults_list)
                .post(control::faults_add)
                .delete(control::faults_clear),
        )
        .route(
            "/_sandbox/clock",
            get(control::clock_get).post(control::clock_advance),
        )
        .route("/_sandbox/grants", get(control::grants))
        .route("/_sandbox/grants/{id}/revoke", post(control::grant_revoke))
        .route("/_sandbox/config", get(control::config))
        .route("/_sandbox/sizes", get(control::sizes))
        .fallback(support::not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), front::front))
        .with_state(shared)
}
