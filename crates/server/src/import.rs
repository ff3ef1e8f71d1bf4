//! `POST /v1/connections`: import a grant an app obtained with its own OAuth (issue 15.1), and
//! the record format `kit-oauth import` reads (the same fields, one JSON object per line or a
//! CSV row).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit_oauth::core::{AccessToken, RefreshToken, TenantName, Timestamp};
use kit_oauth::{ImportError, ImportOutcome, ImportRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::{ConnectionView, bad_request, manager_error};
use crate::extract::Caller;
use crate::web::ApiError;
use crate::{AppState, Scope};

/// The longest token accepted (Kit's are 43 characters; Doorkeeper's column is unbounded).
const MAX_TOKEN: usize = 4096;

/// One grant to import.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// The app's current refresh token (RFC 6750 `b64token` characters).
    #[schema(min_length = 1, max_length = 4096, pattern = "^[A-Za-z0-9._~+/=-]+$")]
    pub refresh_token: String,
    /// The app's current access token: tried first (`GET /v4/account`), so no refresh is spent.
    #[schema(min_length = 1, max_length = 4096, pattern = "^[A-Za-z0-9._~+/=-]+$")]
    pub access_token: Option<String>,
    /// When the access token expires: RFC 3339, or Unix seconds. Without it the connection is
    /// stored as due, and its first use refreshes it.
    pub expires_at: Option<ExpiresAt>,
    /// The tenant to import into. A tenant-scoped key imports into its own tenant only.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]+$"
    )]
    pub tenant: Option<String>,
}

/// An expiry as apps store it.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ExpiresAt {
    /// Unix seconds (to 2106). A JSON number with no fraction, whatever its spelling (`5`, `5.0`).
    #[schema(value_type = u32)]
    Seconds(f64),
    /// RFC 3339.
    #[schema(format = DateTime)]
    Text(String),
}

impl ExpiresAt {
    /// The instant, or why it is not one.
    ///
    /// # Errors
    /// A message for a value that is neither RFC 3339 nor Unix seconds.
    pub fn timestamp(&self) -> Result<Timestamp, String> {
        match self {
            Self::Seconds(s) => {
                if s.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(s) {
                    return Err(
                        "expires_at in Unix seconds must be a whole number, 0 to 2^32-1".into(),
                    );
                }
                // In range and whole: the conversion is exact.
                #[allow(clippy::cast_possible_truncation)]
                let seconds = *s as i64;
                Ok(Timestamp::from_unix_millis(seconds * 1000))
            }
            Self::Text(text) => {
                if let Ok(seconds) = text.trim().parse::<i64>() {
                    return Ok(Timestamp::from_unix_millis(seconds.saturating_mul(1000)));
                }
                let at = time::OffsetDateTime::parse(
                    text.trim(),
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| format!("expires_at is neither RFC 3339 nor Unix seconds: {e}"))?;
                let millis = at.unix_timestamp_nanos() / 1_000_000;
                i64::try_from(millis)
                    .map(Timestamp::from_unix_millis)
                    .map_err(|_| "expires_at is out of range".to_owned())
            }
        }
    }
}

impl std::fmt::Debug for ImportBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportBody")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl ImportBody {
    /// The manager's request, for a tenant already decided by [`tenant_for`].
    ///
    /// # Errors
    /// A message for an empty token or an unreadable expiry.
    pub fn into_request(self, tenant: Option<TenantName>) -> Result<ImportRequest, String> {
        let malformed = |t: &str| {
            t.is_empty()
                || t.len() > MAX_TOKEN
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b))
        };
        if malformed(&self.refresh_token) || self.access_token.as_deref().is_some_and(malformed) {
            return Err(format!(
                "a token is 1 to {MAX_TOKEN} characters of A-Z a-z 0-9 . _ ~ + / = - \
                 (RFC 6750's b64token): Kit issues no other"
            ));
        }
        let expires_at = self
            .expires_at
            .as_ref()
            .map(ExpiresAt::timestamp)
            .transpose()?;
        Ok(ImportRequest {
            refresh_token: RefreshToken::new(self.refresh_token),
            access_token: self.access_token.map(AccessToken::new),
            expires_at,
            tenant,
        })
    }
}

/// The tenant an import goes into: the named one if the key may use it; a key scoped to one
/// tenant imports there when none is named.
///
/// # Errors
/// 400 for an invalid name or a key of several tenants naming none; 403 for a tenant outside
/// the key's scope.
pub fn tenant_for(scope: &Scope, named: Option<&str>) -> Result<Option<TenantName>, ApiError> {
    let named = named
        .map(TenantName::parse)
        .transpose()
        .map_err(|e| bad_request(format!("tenant: {e}")))?;
    match (scope, named) {
        (Scope::All, named) => Ok(named),
        (Scope::Tenants(set), Some(t)) if set.contains(&t) => Ok(Some(t)),
        (Scope::Tenants(_), Some(_)) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "tenant_not_allowed",
            "this API key may not import into that tenant",
        )),
        (Scope::Tenants(set), None) if set.len() == 1 => Ok(set.iter().next().cloned()),
        (Scope::Tenants(_), None) => Err(bad_request(
            "this API key covers several tenants: name one in `tenant`",
        )),
    }
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    /// `created`, `already_present` (the stored tokens were kept) or `replaced` (the stored
    /// tokens were replaced by the imported grant).
    pub outcome: String,
    /// Whether a refresh was spent to identify the account.
    pub refreshed: bool,
    /// The connection.
    pub connection: ConnectionView,
}

/// The API error of an import that stored nothing.
pub fn import_error(error: &ImportError) -> ApiError {
    match error {
        ImportError::Spent { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "refresh_token_spent",
            format!("{error}: a spent token would only make Kit revoke its live successor"),
        ),
        ImportError::HeldElsewhere { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "refresh_token_held",
            error.to_string(),
        ),
        ImportError::SuccessorToHolder { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "refresh_token_held_successor_stored",
            error.to_string(),
        ),
        ImportError::Refused { reason } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "kit_refused",
            format!("Kit refused the tokens; nothing was stored: {reason}"),
        ),
        ImportError::InvalidClient(reason) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "invalid_client",
            format!("Kit refused the app's client credentials: {reason}"),
        ),
        ImportError::Unavailable(reason) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("Kit is temporarily unavailable, try again: {reason}"),
        ),
        ImportError::AccountAfterRefresh(_) | ImportError::Token(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "kit_error", error.to_string())
        }
        ImportError::Store(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "the connection could not be stored",
        ),
    }
}

/// Imports a grant made outside the broker.
#[utoipa::path(
    post, path = "/v1/connections", tag = "connections",
    request_body(content = ImportBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Imported: a new connection", body = ImportView),
        (status = 200, description = "The account was already connected in this tenant: `already_present` (its stored tokens kept) or `replaced` (its tokens replaced: it had ended, or identifying the account spent a refresh)", body = ImportView),
        (status = 400, description = "A malformed body, an invalid tenant, or a key of several tenants naming none", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 403, description = "The key may not import into that tenant", body = ApiError),
        (status = 409, description = "`refresh_token_spent`: the refresh token was already spent by this broker; it was not sent to Kit. `refresh_token_held`: a live connection in another tenant (named in the message) holds this refresh token; nothing was stored. `refresh_token_held_successor_stored`: such a connection held it and identifying the account spent it; the new tokens went into that connection", body = ApiError),
        (status = 422, description = "Kit refused the tokens (its reason); nothing was stored", body = ApiError),
        (status = 502, description = "Kit refused the app's client credentials, or answered unusably", body = ApiError),
        (status = 503, description = "Kit or the database is temporarily unavailable, or the request timed out", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(scope): Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: ImportBody = serde_json::from_slice(&body)
        .map_err(|e| bad_request(format!("the body is not an import: {e}")))?;
    let tenant = tenant_for(&scope, body.tenant.as_deref())?;
    let request = body.into_request(tenant).map_err(bad_request)?;
    let manager = &state.engine.manager;
    let imported = manager
        .import(request, false)
        .await
        .map_err(|e| import_error(&e))?;
    let id = imported.connection_id.ok_or_else(|| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", "no id")
    })?;
    let status = manager.status(&id).await.map_err(|e| manager_error(&e))?;
    let (code, outcome) = match imported.outcome {
        ImportOutcome::Created => (StatusCode::CREATED, "created"),
        ImportOutcome::Replaced => (StatusCode::OK, "replaced"),
        _ => (StatusCode::OK, "already_present"),
    };
    tracing::info!(connection = %id, outcome, "grant imported through the API");
    Ok((
        code,
        Json(ImportView {
            outcome: outcome.to_owned(),
            refreshed: imported.refreshed,
            connection: ConnectionView::from(&status),
        }),
    )
        .into_response())
}
