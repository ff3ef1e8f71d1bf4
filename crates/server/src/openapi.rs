//! The OpenAPI 3 document of the broker API, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api;
use crate::web::ApiError;

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

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kit-oauth broker API",
        description = "Fresh Kit access tokens, connection management and a proxy to Kit's API v4 for apps in any language. `ANY /v1/connections/{id}/kit/{path}` forwards to Kit's `/v4/{path}` with the connection's token."
    ),
    paths(api::list, api::show, api::token, api::refresh, api::delete),
    components(schemas(api::ConnectionView, api::ConnectionPage, api::TokenView, ApiError)),
    modifiers(&BearerKey),
    tags((name = "connections"), (name = "tokens"))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
