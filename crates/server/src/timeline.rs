//! `GET /connections/{id}`: one connection and its event timeline from the audit trail
//! (installed, refreshed, failed with its cause, reinstall required, revoked), newest first, a
//! keyset page at a time (`before` = the last event shown).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use kit_oauth::ManagerError;
use kit_oauth::core::{ConnectionId, Timestamp};
use kit_oauth::store::{EventCursor, StoredEvent};
use maud::{Markup, html};
use serde::Deserialize;

use crate::dashboard::{disabled, html as page, reconnect_href, session};
use crate::pages::{Script, connection_card, layout};
use crate::web::{relative, see_other};
use crate::{AppState, DashboardAccess};

/// Events per page.
const EVENTS: u32 = 50;

/// Where the timeline page starts.
#[derive(Debug, Default, Deserialize)]
pub struct TimelineParams {
    /// `at.id` of the last event of the previous page.
    #[serde(default)]
    before: Option<String>,
}

/// What an event says in the timeline, and whether it is good or bad news.
fn describe(event: &StoredEvent) -> (String, &'static str) {
    let detail: serde_json::Value = serde_json::from_str(&event.detail).unwrap_or_default();
    let text = |key: &str| detail[key].as_str().unwrap_or("no detail").to_owned();
    match event.kind.as_str() {
        "authorized" => ("Installed (the creator allowed access)".to_owned(), "good"),
        "refreshed" => ("Token refreshed".to_owned(), "good"),
        "refresh_failed" => (format!("Refresh failed: {}", text("reason")), "bad"),
        "reauth_required" => (format!("Reinstall required: {}", text("reason")), "bad"),
        "revoked" => ("Revoked by the app".to_owned(), "bad"),
        "removed_without_revoke" => (
            format!("Removed without revoking at Kit: {}", text("reason")),
            "bad",
        ),
        other => (other.replace('_', " "), ""),
    }
}

fn timeline(events: &[StoredEvent], now: Timestamp) -> Markup {
    html! {
        @if events.is_empty() {
            p id="no-events" { "No events recorded (events older than the retention are deleted)." }
        }
        ol.timeline aria-label="Events, newest first" {
            @for event in events {
                @let (text, class) = describe(event);
                li class=(class) data-kind=(event.kind) {
                    time datetime=(crate::web::rfc3339(event.at)) title=(crate::web::rfc3339(event.at)) {
                        (relative(event.at, now))
                    }
                    ": " (text)
                }
            }
        }
    }
}

fn parse_before(raw: &str) -> Option<EventCursor> {
    let (at, id) = raw.split_once('.')?;
    if id.is_empty() || id.len() > 64 || at.len() > 18 || !at.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(EventCursor {
        at: Timestamp::from_unix_millis(at.parse().ok()?),
        id: id.to_owned(),
    })
}

/// The connection page.
pub async fn page_of(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(params): Query<TimelineParams>,
) -> Response {
    if matches!(state.options.dashboard, DashboardAccess::Disabled) {
        return disabled();
    }
    let Some(view) = session(&state, &headers).await else {
        return see_other("/");
    };
    let not_found = || (StatusCode::NOT_FOUND, "No such connection.\n").into_response();
    let Ok(id) = ConnectionId::parse(&id) else {
        return not_found();
    };
    let before = match params.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(raw) => match parse_before(raw) {
            Some(cursor) => Some(cursor),
            None => {
                return (StatusCode::BAD_REQUEST, "That page link is not valid.\n").into_response();
            }
        },
    };
    let manager = &state.engine.manager;
    let status = match manager.status(&id).await {
        Ok(status) => status,
        Err(ManagerError::NotFound(_)) => return not_found(),
        Err(error) => return unavailable(&error),
    };
    let mut events = match manager.events(&id, before.as_ref(), EVENTS + 1).await {
        Ok(events) => events,
        Err(error) => return unavailable(&error),
    };
    let more = events.len() > EVENTS as usize;
    events.truncate(EVENTS as usize);
    let older = more
        .then(|| events.last())
        .flatten()
        .map(|e| format!("/connections/{id}?before={}.{}", e.at.unix_millis(), e.id));
    let now = Timestamp::from_unix_millis(time::OffsetDateTime::now_utc().unix_timestamp() * 1000);
    let reconnect = reconnect_href(&state, &status);
    let markup = layout(
        &status.account.name,
        &html! {
            h1 { "Connection of " (status.account.name) }
            (connection_card(&status, reconnect.as_deref(), now, &view.csrf))
            h2 { "Timeline" }
            (timeline(&events, now))
            nav.pager aria-label="Pages" {
                @if before.is_some() { a href={"/connections/" (id)} { "Newest events" } }
                @if let Some(older) = older { a id="older" href=(older) rel="next" { "Older events" } }
            }
        },
        Script::Live(state.options.dashboard_reload),
    );
    page(StatusCode::OK, &markup)
}

fn unavailable(error: &ManagerError) -> Response {
    tracing::error!(%error, "dashboard could not read a connection");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The connection could not be read; try again in a moment.\n",
    )
        .into_response()
}
