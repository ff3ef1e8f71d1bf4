//! The broker API under `/v1`: bearer API keys, JSON in and out.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit_oauth::core::{ConnectionId, ListQuery, StateName, TenantName};
use kit_oauth::{ConnectionStatus, ManagerError, Removal};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiQuery, Caller, ConnectionParam, Visible};
use crate::web::{ApiError, rfc3339};
use crate::{AppState, Scope};

/// Connections per page when the caller does not say.
pub const DEFAULT_PAGE: u32 = 50;
/// The largest page.
pub const MAX_PAGE: u32 = 200;

/// A connection as the API shows it. Never carries a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// The connection id.
    pub id: String,
    /// The app's tenant, or null for a single-tenant app.
    pub tenant: Option<String>,
    /// Kit's account id.
    pub account_id: String,
    /// Kit's account name.
    pub account_name: String,
    /// `authorized`, `expired` (refresh due) or `unauthorized` (needs reinstall).
    pub state: String,
    /// Why the grant ended, when it has.
    pub ended_reason: Option<String>,
    /// When the access token expires (RFC 3339).
    pub expires_at: Option<String>,
    /// When the background refresher renews it.
    pub next_refresh_at: Option<String>,
    /// The last successful refresh.
    pub last_refresh_at: Option<String>,
    /// The last refresh failure.
    pub last_error: Option<String>,
    /// Consecutive failed refreshes.
    pub consecutive_failures: u32,
    /// First installed.
    pub created_at: String,
    /// Last changed.
    pub updated_at: String,
}

impl From<&ConnectionStatus> for ConnectionView {
    fn from(s: &ConnectionStatus) -> Self {
        Self {
            id: s.id.as_str().to_owned(),
            tenant: s.tenant.as_ref().map(|t| t.as_str().to_owned()),
            account_id: s.account.id.as_str().to_owned(),
            account_name: s.account.name.clone(),
            state: s.state.as_str().to_owned(),
            ended_reason: s.ended.as_ref().map(|r| format!("{r:?}")),
            expires_at: s.expires_at.map(rfc3339),
            next_refresh_at: s.next_refresh_at.map(rfc3339),
            last_refresh_at: s.last_refresh_at.map(rfc3339),
            last_error: s.last_error.clone(),
            consecutive_failures: s.consecutive_failures,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// A page of connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionPage {
    /// The connections, ordered by id.
    pub connections: Vec<ConnectionView>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A fresh access token.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    /// The bearer token for Kit's API v4.
    pub access_token: String,
    /// When it expires (RFC 3339); it is renewed well before.
    pub expires_at: Option<String>,
}

/// The pattern of a connection id (and so of a cursor).
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// Filters and cursor of `GET /v1/connections`. A value outside its schema is a 400, never
/// clamped or ignored: a caller's mistake shows at once.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this tenant (1–255 bytes, no control characters).
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub tenant: Option<String>,
    /// Only active grants (`authorized`) or ended ones (`unauthorized`).
    #[param(inline)]
    pub state: Option<StateFilter>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// The `state` filter of `GET /v1/connections`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    /// Active grants.
    Authorized,
    /// Ended grants (the creator must reinstall).
    Unauthorized,
}

/// The `{id}` of a connection's routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdParam {
    /// The connection id.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
}

/// Maps a library error to the API's JSON error.
pub(crate) fn manager_error(error: &ManagerError) -> ApiError {
    match error {
        ManagerError::NotFound(_) => ApiError::not_found(),
        ManagerError::ReauthRequired { reason, .. } => ApiError::new(
            StatusCode::CONFLICT,
            "reauth_required",
            format!("the creator must reinstall the app: {reason}"),
        ),
        ManagerError::Unavailable { reason, .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("temporarily unavailable, try again: {reason}"),
        ),
        ManagerError::KitKeptGrant { reason, .. } => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "kit_kept_grant",
            format!("Kit did not revoke the grant, so the connection was kept: {reason}"),
        ),
        ManagerError::InvalidClient(reason) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "invalid_client",
            format!("Kit refused the app's client credentials: {reason}"),
        ),
        ManagerError::Store(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "the connection could not be read from storage",
        ),
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// Lists connections visible to the key.
#[utoipa::path(
    get, path = "/v1/connections", tag = "connections",
    params(ListParams),
    responses(
        (status = 200, description = "A page of connections", body = ConnectionPage),
        (status = 400, description = "A parameter outside its schema", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 503, description = "The database is temporarily unavailable, or the request timed out", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(scope): Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<ConnectionPage>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_request(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let tenant = params
        .tenant
        .as_deref()
        .map(TenantName::parse)
        .transpose()
        .map_err(|e| bad_request(format!("tenant: {e}")))?;
    let state_filter = params.state.map(|s| match s {
        StateFilter::Authorized => StateName::Authorized,
        StateFilter::Unauthorized => StateName::Unauthorized,
    });
    let after = params
        .cursor
        .as_deref()
        .map(ConnectionId::parse)
        .transpose()
        .map_err(|_| bad_request("cursor is not a next_cursor of this API"))?;
    if let (Some(t), Scope::Tenants(_)) = (&tenant, &scope)
        && !scope.allows(Some(t))
    {
        return Ok(Json(ConnectionPage {
            connections: Vec::new(),
            next_cursor: None,
        }));
    }
    // A key scoped to exactly one tenant lists that tenant; wider scopes filter page by page.
    let store_tenant = match (&tenant, &scope) {
        (Some(t), _) => Some(Some(t.clone())),
        (None, Scope::Tenants(set)) if set.len() == 1 => set.iter().next().cloned().map(Some),
        _ => None,
    };
    let mut query = ListQuery {
        tenant: store_tenant,
        state: state_filter,
        after,
        limit,
    };
    let mut connections = Vec::new();
    let mut last_seen = None;
    let mut exhausted = false;
    while connections.len() < limit as usize {
        let page = state
            .engine
            .manager
            .list(&query)
            .await
            .map_err(|e| manager_error(&e))?;
        let full = page.len() >= query.limit as usize;
        let mut consumed = 0;
        for status in &page {
            if connections.len() == limit as usize {
                break;
            }
            consumed += 1;
            last_seen = Some(status.id.clone());
            if scope.allows(status.tenant.as_ref()) {
                connections.push(ConnectionView::from(status));
            }
        }
        if !full && consumed == page.len() {
            exhausted = true;
            break;
        }
        query.after.clone_from(&last_seen);
    }
    let next_cursor = if exhausted {
        None
    } else {
        last_seen.map(|id| id.as_str().to_owned())
    };
    Ok(Json(ConnectionPage {
        connections,
        next_cursor,
    }))
}

/// One connection.
#[utoipa::path(
    get, path = "/v1/connections/{id}", tag = "connections",
    params(IdParam),
    responses(
        (status = 200, description = "The connection", body = ConnectionView),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such connection (or not visible to this key)", body = ApiError),
        (status = 503, description = "The database is temporarily unavailable, or the request timed out", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn show(Visible { status, .. }: Visible) -> Result<Json<ConnectionView>, ApiError> {
    Ok(Json(ConnectionView::from(&status)))
}

/// A fresh access token (refreshed first when due).
#[utoipa::path(
    post, path = "/v1/connections/{id}/token", tag = "tokens",
    params(IdParam),
    responses(
        (status = 200, description = "A token that is valid now", body = TokenView),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such connection", body = ApiError),
        (status = 409, description = "The grant is dead: the creator must reinstall", body = ApiError),
        (status = 502, description = "Kit refused the app's client credentials", body = ApiError),
        (status = 503, description = "Kit or the database is temporarily unavailable, or the request timed out", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn token(
    State(state): State<AppState>,
    Caller(scope): Caller,
    ConnectionParam(id): ConnectionParam,
) -> Result<Response, ApiError> {
    // One call: the tenant check, the token and its expiry — from the manager's cache when the
    // token is fresh (no database read), else from one read of the row.
    let visible = |tenant: Option<&TenantName>| scope.allows(tenant);
    let issued = state
        .engine
        .manager
        .access_token_for(&id, &visible)
        .await
        .map_err(|e| manager_error(&e))?;
    Ok(no_store(Json(TokenView {
        access_token: issued.access_token.expose_secret().to_owned(),
        expires_at: issued.expires_at.map(rfc3339),
    })))
}

/// Refreshes now, whatever the token's age.
#[utoipa::path(
    post, path = "/v1/connections/{id}/refresh", tag = "tokens",
    params(IdParam),
    responses(
        (status = 200, description = "Refreshed; the new token", body = TokenView),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such connection", body = ApiError),
        (status = 409, description = "The grant is dead: the creator must reinstall", body = ApiError),
        (status = 502, description = "Kit refused the app's client credentials", body = ApiError),
        (status = 503, description = "Kit or the database is temporarily unavailable, or the request timed out", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn refresh(
    State(state): State<AppState>,
    Visible { id, .. }: Visible,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let token = state
        .engine
        .manager
        .force_refresh(&id, None)
        .await
        .map_err(|e| manager_error(&e))?;
    metrics::histogram!("kit_oauth_api_refresh_duration_seconds")
        .record(started.elapsed().as_secs_f64());
    let expires_at = state
        .engine
        .manager
        .status(&id)
        .await
        .ok()
        .and_then(|s| s.expires_at)
        .map(rfc3339);
    Ok(no_store(Json(TokenView {
        access_token: token.expose_secret().to_owned(),
        expires_at,
    })))
}

/// `?force=true` of `DELETE /v1/connections/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// Remove the connection even when Kit will not revoke its grant (the removal is then
    /// recorded as `removed_without_revoke`: the grant lives at Kit until the creator uninstalls).
    pub force: Option<bool>,
}

/// What a forced removal did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RemovalView {
    /// Always true: the connection is gone.
    pub removed: bool,
    /// Whether Kit revoked the grant first.
    pub revoked_at_kit: bool,
    /// Why Kit did not revoke, when it did not.
    pub kit_reason: Option<String>,
}

/// Revokes the grant at Kit, then deletes the connection; with `force=true`, deletes it even
/// when Kit keeps the grant.
#[utoipa::path(
    delete, path = "/v1/connections/{id}", tag = "connections",
    params(IdParam, DeleteParams),
    responses(
        (status = 204, description = "Revoked and removed"),
        (status = 200, description = "`force=true`: removed; whether Kit revoked the grant", body = RemovalView),
        (status = 400, description = "`force` is not a boolean", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such connection", body = ApiError),
        (status = 502, description = "`kit_kept_grant`: Kit refused the revocation or could not be reached, so the connection was kept (retry, or pass `force=true`); or Kit refused the app's client credentials", body = ApiError),
        (status = 503, description = "The database is temporarily unavailable, or the request timed out; nothing was changed", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    Visible { id, .. }: Visible,
    ApiQuery(params): ApiQuery<DeleteParams>,
) -> Result<Response, ApiError> {
    let manager = &state.engine.manager;
    if params.force != Some(true) {
        manager.remove(&id).await.map_err(|e| manager_error(&e))?;
        tracing::info!(connection = %id, "connection revoked and removed through the API");
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let removal = manager
        .remove_forced(&id)
        .await
        .map_err(|e| manager_error(&e))?;
    let view = match removal {
        Removal::Revoked => RemovalView {
            removed: true,
            revoked_at_kit: true,
            kit_reason: None,
        },
        Removal::KitNotTold { reason } => RemovalView {
            removed: true,
            revoked_at_kit: false,
            kit_reason: Some(reason),
        },
    };
    tracing::info!(connection = %id, revoked = view.revoked_at_kit,
        "connection removed through the API (forced)");
    Ok(Json(view).into_response())
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}
