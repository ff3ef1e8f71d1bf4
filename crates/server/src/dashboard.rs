//! `GET /`: the operator dashboard, with CSRF-protected Refresh and Revoke buttons, a search
//! and state filter over the whole fleet, and keyset pages (`after` = the last id shown).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kit_oauth::ConnectionStatus;
use kit_oauth::core::{ConnectionId, StateName, UnauthorizedReason, constant_time_eq};
use kit_oauth::store::{FleetFilter, FleetQuery};
use serde::Deserialize;

use std::time::Duration;

use crate::client_addr::ClientAddr;
use crate::pages;
use crate::sessions::{SESSION_COOKIE, SESSION_TTL, SessionView};
use crate::web::{cookie, see_other};
use crate::{AppState, DashboardAccess};

/// Connections per page.
const SHOWN: u32 = 50;
/// How long a reconnect link's signed tenant stays valid.
const RECONNECT_LINK_SECS: i64 = 7 * 24 * 3600;

/// The list page's search (all optional; unknown values are a 400 page).
#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    /// Account name (part of it), connection id, Kit account id or tenant.
    #[serde(default)]
    q: Option<String>,
    /// A [`FleetFilter`] name, or empty for any.
    #[serde(default)]
    state: Option<String>,
    /// The last connection id of the previous page.
    #[serde(default)]
    after: Option<String>,
}

/// A dashboard form: every POST carries the session's CSRF token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    key: String,
}

pub(crate) fn html(status: StatusCode, markup: &maud::Markup) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(markup.clone().into_string()),
    )
        .into_response()
}

pub(crate) fn disabled() -> Response {
    (
        StatusCode::NOT_FOUND,
        "The dashboard is off: set KIT_OAUTH_ADMIN_KEY (or an unscoped key in KIT_OAUTH_API_KEYS) to sign in.\n",
    )
        .into_response()
}

/// The visitor's session, if it may see the dashboard.
pub(crate) async fn session(state: &AppState, headers: &HeaderMap) -> Option<SessionView> {
    let value = cookie(headers, SESSION_COOKIE)?;
    let view = state
        .sessions
        .get(state.engine.manager.store(), value)
        .await?;
    let allowed = match state.options.dashboard {
        DashboardAccess::Open => true,
        DashboardAccess::Key(_) => view.signed_in,
        DashboardAccess::Disabled => false,
    };
    allowed.then_some(view)
}

/// The dashboard (or the sign-in form).
pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<ListParams>,
) -> Response {
    render(&state, &headers, &params, None).await
}

/// The reconnect link of a connection whose grant ended (not revoked by the app): the broker's
/// install start, with Kit's page to come back to and, for a tenant, the tenant signed as the
/// app's own install links are.
pub(crate) fn reconnect_href(state: &AppState, row: &ConnectionStatus) -> Option<String> {
    if row.state != StateName::Unauthorized || row.ended == Some(UnauthorizedReason::Revoked) {
        return None;
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("redirect", &state.options.start_again_url);
    if let Some(tenant) = &row.tenant {
        let links = state.options.install_links.as_ref()?;
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + RECONNECT_LINK_SECS;
        query.append_pair("tenant", &links.sign(tenant.as_str(), expires));
    }
    Some(format!("/kit/oauth?{}", query.finish()))
}

fn bad_search(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}

async fn render(
    state: &AppState,
    headers: &HeaderMap,
    params: &ListParams,
    notice: Option<&str>,
) -> Response {
    let (set_cookie, view) = match (&state.options.dashboard, session(state, headers).await) {
        (DashboardAccess::Disabled, _) => return disabled(),
        (_, Some(view)) => (None, view),
        (DashboardAccess::Open, None) => {
            let (value, view) = state.sessions.create(false);
            (Some(value), view)
        }
        (DashboardAccess::Key(_), None) => {
            return html(StatusCode::OK, &pages::login_page(None));
        }
    };
    let filter = match params.state.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => match FleetFilter::parse(name) {
            Some(filter) => Some(filter),
            None => return bad_search("Unknown state filter."),
        },
    };
    let after = match params.after.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => match ConnectionId::parse(raw) {
            Ok(id) => Some(id),
            Err(_) => return bad_search("That page link is not valid."),
        },
    };
    let q = params.q.as_deref().map(str::trim).unwrap_or_default();
    if q.len() > 255 {
        return bad_search("The search is longer than 255 bytes.");
    }
    let query = FleetQuery {
        text: (!q.is_empty()).then(|| q.to_owned()),
        filter,
        after: after.clone(),
        limit: SHOWN + 1,
    };
    let mut rows = match state.engine.manager.search(&query).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "dashboard could not list connections");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "The connections could not be read; try again in a moment.\n",
            )
                .into_response();
        }
    };
    let now = kit_oauth::core::Timestamp::from_unix_millis(
        time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
    );
    let more = rows.len() > SHOWN as usize;
    rows.truncate(SHOWN as usize);
    let mut list = pages::ListView {
        q: q.to_owned(),
        filter,
        next: None,
        paged: after.is_some(),
        reload: state.options.dashboard_reload,
    };
    list.next = more
        .then(|| {
            rows.last()
                .map(|r| pages::list_href(&list, Some(r.id.as_str())))
        })
        .flatten();
    let rows: Vec<_> = rows
        .into_iter()
        .map(|row| {
            let reconnect = reconnect_href(state, &row);
            (row, reconnect)
        })
        .collect();
    let markup = pages::dashboard(
        &rows,
        &list,
        now,
        &view.csrf,
        view.signed_in,
        state.options.demo.as_ref(),
        notice,
    );
    let mut response = html(StatusCode::OK, &markup);
    if let Some(value) = set_cookie {
        response.headers_mut().append(
            header::SET_COOKIE,
            state
                .options
                .cookies
                .set(SESSION_COOKIE, &value, "Strict", SESSION_TTL.as_secs()),
        );
    }
    response
}

/// Signs in with the admin key.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    Form(form): Form<LoginForm>,
) -> Response {
    let DashboardAccess::Key(keys) = &state.options.dashboard else {
        return see_other("/");
    };
    if let Err(wait) = state.sign_in_throttle.attempt(address, form.key.trim()) {
        return throttled(wait);
    }
    if !keys.is_unscoped_key(form.key.trim()) {
        tracing::warn!("dashboard sign-in refused");
        return html(
            StatusCode::UNAUTHORIZED,
            &pages::login_page(Some("That key is not valid.")),
        );
    }
    let (value, _) = state.sessions.create(true);
    let mut response = see_other("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        state
            .options
            .cookies
            .set(SESSION_COOKIE, &value, "Strict", SESSION_TTL.as_secs()),
    );
    tracing::info!("dashboard sign-in");
    response
}

/// 429 with `Retry-After` and, on the page, when to try again.
fn throttled(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let at = time::OffsetDateTime::now_utc() + Duration::from_secs(secs);
    let at = at
        .format(time::macros::format_description!(
            "[hour]:[minute]:[second]"
        ))
        .unwrap_or_default();
    tracing::warn!(retry_after_secs = secs, "dashboard sign-in throttled");
    let mut response = html(
        StatusCode::TOO_MANY_REQUESTS,
        &pages::login_page(Some(&format!(
            "Too many sign-in attempts. Try again in {secs} s (at {at} UTC)."
        ))),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    response
}

/// Signs out.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(view) = session(&state, &headers).await
        && constant_time_eq(&view.csrf, &form.csrf)
        && let Err(error) = state.sessions.end_all(state.engine.manager.store()).await
    {
        tracing::error!(%error, "dashboard sign-out could not be recorded");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "The sign-out could not be recorded, so the session may still work elsewhere. Try again in a moment.\n",
        )
            .into_response();
    }
    let mut response = see_other("/");
    response.headers_mut().append(
        header::SET_COOKIE,
        state.options.cookies.clear(SESSION_COOKIE),
    );
    response
}

async fn checked(
    state: &AppState,
    headers: &HeaderMap,
    form: &CsrfForm,
) -> Result<(), Box<Response>> {
    if matches!(state.options.dashboard, DashboardAccess::Disabled) {
        return Err(Box::new(disabled()));
    }
    match session(state, headers).await {
        Some(view) if constant_time_eq(&view.csrf, &form.csrf) => Ok(()),
        Some(_) => {
            tracing::warn!("dashboard POST refused: CSRF token missing or wrong");
            Err(Box::new(
                (
                    StatusCode::FORBIDDEN,
                    "This form is out of date or did not come from the dashboard. Reload the page and try again.\n",
                )
                    .into_response(),
            ))
        }
        None => Err(Box::new(
            (StatusCode::FORBIDDEN, "Sign in first.\n").into_response(),
        )),
    }
}

/// Forces a refresh.
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(response) = checked(&state, &headers, &form).await {
        return *response;
    }
    let Ok(id) = ConnectionId::parse(&id) else {
        return (StatusCode::NOT_FOUND, "No such connection.\n").into_response();
    };
    match state.engine.manager.force_refresh(&id, None).await {
        Ok(_) => {
            tracing::info!(connection = %id, "refreshed from the dashboard");
            see_other("/")
        }
        Err(error) => {
            tracing::warn!(connection = %id, %error, "dashboard refresh failed");
            let notice = format!("Refresh failed: {error}");
            render(&state, &headers, &ListParams::default(), Some(&notice)).await
        }
    }
}

/// Revokes the grant at Kit (the connection stays, marked revoked).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(response) = checked(&state, &headers, &form).await {
        return *response;
    }
    let Ok(id) = ConnectionId::parse(&id) else {
        return (StatusCode::NOT_FOUND, "No such connection.\n").into_response();
    };
    match state.engine.manager.revoke(&id).await {
        Ok(()) => {
            tracing::info!(connection = %id, "revoked from the dashboard");
            see_other("/")
        }
        Err(error) => {
            tracing::warn!(connection = %id, %error, "dashboard revoke failed");
            let notice = format!("Revoke failed: {error}");
            render(&state, &headers, &ListParams::default(), Some(&notice)).await
        }
    }
}
