//! `GET /v1/connections/{id}/events`: a connection's audit trail, newest first, a page at a
//! time with a keyset cursor (the last event's instant and id), so a connection refreshed for
//! years pages as fast as a new one.

use axum::Json;
use axum::extract::State;
use kit_oauth::core::Timestamp;
use kit_oauth::store::EventCursor;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::{DEFAULT_PAGE, MAX_PAGE, bad_request, manager_error};
use crate::extract::{ApiQuery, Visible};
use crate::web::{ApiError, rfc3339};

/// The pattern of an events cursor: the last event's Unix milliseconds, a dot, its id.
pub const CURSOR_PATTERN: &str = "^[0-9]{1,18}\\.[A-Za-z0-9_-]{1,64}$";

/// One event of the audit trail. Never carries a token.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// The event id (the same id webhook deliveries carry).
    pub id: String,
    /// `authorized`, `refreshed`, `refresh_failed`, `reauth_required`, `revoked` or
    /// `removed_without_revoke`.
    pub kind: String,
    /// The event's fields (for example a failure's cause).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// When it happened (RFC 3339).
    pub at: String,
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events.
    pub events: Vec<EventView>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// Cursor and page size of `GET /v1/connections/{id}/events`. A value outside its schema is a
/// 400, as on the connection list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}\\.[A-Za-z0-9_-]{1,64}$")]
    pub cursor: Option<String>,
    /// Page size, 1–200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
}

/// Reads a `next_cursor` back.
fn parse_cursor(raw: &str) -> Option<EventCursor> {
    let (at, id) = raw.split_once('.')?;
    let valid_id = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let digits = (1..=18).contains(&at.len()) && at.bytes().all(|b| b.is_ascii_digit());
    if !valid_id || !digits {
        return None;
    }
    Some(EventCursor {
        at: Timestamp::from_unix_millis(at.parse().ok()?),
        id: id.to_owned(),
    })
}

/// A connection's audit trail.
#[utoipa::path(
    get, path = "/v1/connections/{id}/events", tag = "connections",
    params(crate::api::IdParam, EventParams),
    responses(
        (status = 200, description = "A page of events, newest first", body = EventPage),
        (status = 400, description = "A parameter outside its schema", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such connection (or not visible to this key)", body = ApiError),
        (status = 503, description = "The database is temporarily unavailable, or the request timed out", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn list(
    State(state): State<AppState>,
    Visible { id, .. }: Visible,
    ApiQuery(params): ApiQuery<EventParams>,
) -> Result<Json<EventPage>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(bad_request(format!("limit must be 1 to {MAX_PAGE}")));
    }
    let after = params
        .cursor
        .as_deref()
        .map(|raw| {
            parse_cursor(raw).ok_or_else(|| bad_request("cursor is not a next_cursor of this API"))
        })
        .transpose()?;
    // One more than asked says whether another page exists without a second query.
    let mut rows = state
        .engine
        .manager
        .events(&id, after.as_ref(), limit + 1)
        .await
        .map_err(|e| manager_error(&e))?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|e| format!("{}.{}", e.at.unix_millis(), e.id))
        })
        .flatten();
    let events = rows
        .into_iter()
        .map(|e| EventView {
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
            at: rfc3339(e.at),
            id: e.id,
            kind: e.kind,
        })
        .collect();
    Ok(Json(EventPage {
        events,
        next_cursor,
    }))
}
