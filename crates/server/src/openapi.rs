//! The OpenAPI 3 document of the broker API, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::web::ApiError;
use crate::{api, import};

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A key from KIT_OAUTH_API_KEYS"))
                    .build(),
            ),
        );
    }
}

/// `ANY /v1/connections/{id}/kit/{path}`, served by [`crate::proxy::handle`]; described here
/// because one handler answers every method.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/v1/connections/{id}/kit/{path}", tag = "proxy",
    params(
        api::IdParam,
        ("path" = String, Path, description = "Kit API v4 path, e.g. `account` or `subscribers` (forwarded to `/v4/{path}`, with the query string)"),
    ),
    request_body(content = Option<serde_json::Value>, description = "Forwarded as is (at most 1 MiB)", content_type = "application/json"),
    // Kit's own answers pass through with their status, so every status may also carry
    // Kit's body rather than the broker's error: any JSON.
    responses(
        (status = 400, description = "The Kit API path is not valid (the broker's error), or Kit's 400", body = serde_json::Value),
        (status = 401, description = "Missing or invalid API key (the broker's error), or Kit refused a dead grant", body = serde_json::Value),
        (status = 404, description = "No such connection (the broker's error), or Kit's 404", body = serde_json::Value),
        (status = 409, description = "The grant is dead: the creator must reinstall", body = ApiError),
        (status = 413, description = "The request body is larger than 1 MiB", body = ApiError),
        (status = 501, description = "This broker has no Kit API base configured", body = ApiError),
        (status = 502, description = "Kit could not be reached", body = ApiError),
        (status = 503, description = "Kit or the database is temporarily unavailable, or the request timed out", body = serde_json::Value),
        (status = "default", description = "Kit's own answer, passed through (status, `Content-Type`, `Retry-After`, body)", body = serde_json::Value),
    ),
    security(("api_key" = []))
)]
#[allow(dead_code)]
fn kit_proxy() {}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kit-oauth broker API",
        description = "Fresh Kit access tokens, connection management and a proxy to Kit's API v4 for apps in any language. `ANY /v1/connections/{id}/kit/{path}` forwards to Kit's `/v4/{path}` with the connection's token."
    ),
    paths(
        api::list,
        import::create,
        api::show,
        api::token,
        api::refresh,
        api::delete,
        kit_proxy,
        crate::events::list,
        crate::bulk::start,
        crate::bulk::show
    ),
    components(schemas(
        crate::bulk::BulkView,
        api::ConnectionView,
        api::ConnectionPage,
        api::TokenView,
        api::StateFilter,
        crate::events::EventView,
        crate::events::EventPage,
        api::RemovalView,
        import::ImportBody,
        import::ExpiresAt,
        import::ImportView,
        ApiError
    )),
    modifiers(&BearerKey),
    tags((name = "connections"), (name = "tokens"), (name = "proxy"))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
