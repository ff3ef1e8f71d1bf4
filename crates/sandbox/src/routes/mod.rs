//! Request handlers, one module per topic: OAuth authorize/token/revoke, API v4, the App Store
//! simulation and the control API; `front` counts requests and injects faults before them.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::middleware;
use axum::routing::{any, get, post};

use crate::server::Shared;

/// Bearer authentication, rate limiting and Kit's 401/429 answers (`api_auth`,
/// `refusal_response`), for every API v4 route, `kit_api`'s included.
pub(crate) mod api;
mod app_store;
mod authorize;
mod client_auth;
mod control;
mod front;
mod revoke;
mod support;
mod token;

type AppState = State<Arc<Shared>>;

/// Builds the sandbox's router: one part per topic, merged.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(oauth_routes())
        .merge(api_routes())
        // Kit API v4 resources, with state per account: their static paths take precedence
        // over the `/v4/{*rest}` catch-all of `api_routes`.
        .merge(crate::kit_api::router(shared.clone()))
        .merge(app_store_routes())
        .merge(control_routes())
        .fallback(support::not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), front::front))
        .with_state(shared)
}

fn oauth_routes() -> Router<Arc<Shared>> {
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
}

fn api_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v4/account", get(api::account))
        .route("/v4/{*rest}", any(api::api_other))
}

fn app_store_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/apps/{id}/install", get(app_store::app_install))
        .route("/apps/{id}", get(app_store::app_page))
}

fn control_routes() -> Router<Arc<Shared>> {
    Router::new()
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
}
