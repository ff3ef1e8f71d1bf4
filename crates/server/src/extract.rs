//! The broker API's extractors: who is calling (the bearer key's [`Scope`]), which connection
//! the path names, and path or query values whose rejection is the API's JSON error.
//!
//! Handlers list them in this order, caller first: axum runs extractors left to right, so a
//! request without a valid key is refused before anything it sent is read or reported on.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use kit_oauth::ConnectionStatus;
use kit_oauth::core::ConnectionId;

use crate::api::{bad_request, manager_error};
use crate::web::ApiError;
use crate::{ApiKeys, AppState, Scope};

/// The authenticated caller: what its bearer key may see.
#[derive(Debug, Clone)]
pub struct Caller(pub Scope);

/// Checks the bearer key.
///
/// # Errors
/// 401 `unauthorized` without a valid key.
pub fn authenticate(keys: &ApiKeys, headers: &HeaderMap) -> Result<Scope, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send an API key as `Authorization: Bearer <key>`",
        ));
    };
    keys.authenticate(presented).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the API key is not valid",
        )
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(&state.options.api_keys, &parts.headers).map(Self)
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        bad_request(rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        bad_request(rejection.body_text())
    }
}

/// [`Path`], rejected with the API's JSON error.
#[derive(Debug, FromRequestParts)]
#[from_request(via(Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// [`Query`], rejected with the API's JSON error.
#[derive(Debug, FromRequestParts)]
#[from_request(via(Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The connection named by the path's `{id}` that the caller's key may see: its id and status.
/// Anything else (no such id, a malformed one, another tenant's) is the same 404, so a key
/// learns nothing about connections outside its scope.
#[derive(Debug, Clone)]
pub struct Visible {
    /// The connection.
    pub id: ConnectionId,
    /// Its state when the request arrived.
    pub status: ConnectionStatus,
}

impl FromRequestParts<AppState> for Visible {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(scope) = Caller::from_request_parts(parts, state).await?;
        let ApiPath(params) =
            ApiPath::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let raw = params.get("id").ok_or_else(ApiError::not_found)?;
        let id = ConnectionId::parse(raw).map_err(|_| ApiError::not_found())?;
        let status = state
            .engine
            .manager
            .status(&id)
            .await
            .map_err(|e| manager_error(&e))?;
        if scope.allows(status.tenant.as_ref()) {
            Ok(Self { id, status })
        } else {
            Err(ApiError::not_found())
        }
    }
}

/// The path's `{id}` as a connection id, without reading the connection (the token route
/// checks the tenant inside the manager's cached read). A malformed id is a 404.
#[derive(Debug, Clone)]
pub struct ConnectionParam(pub ConnectionId);

impl FromRequestParts<AppState> for ConnectionParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ApiPath(params) =
            ApiPath::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let raw = params.get("id").ok_or_else(ApiError::not_found)?;
        ConnectionId::parse(raw)
            .map(Self)
            .map_err(|_| ApiError::not_found())
    }
}
