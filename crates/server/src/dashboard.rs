//! `GET /`: the operator dashboard, with CSRF-protected Refresh and Revoke buttons.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use kit_oauth::core::{ConnectionId, ListQuery, constant_time_eq};
use serde::Deserialize;

use std::time::Duration;

use crate::extract::ClientAddr;
use crate::pages;
use crate::sessions::{SESSION_COOKIE, SESSION_TTL, SessionView};
use crate::web::{cookie, see_other};
use crate::{AppState, DashboardAccess};

/// Connections shown at most.
const SHOWN: u32 = 500;

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

fn html(status: StatusCode, markup: &maud::Markup) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(markup.clone().into_string()),
    )
        .into_response()
}

fn disabled() -> Response {
    (
        StatusCode::NOT_FOUND,
        "The dashboard is off: set KIT_OAUTH_ADMIN_KEY (or an unscoped key in KIT_OAUTH_API_KEYS) to sign in.\n",
    )
        .into_response()
}

/// The visitor's session, if it may see the dashboard.
async fn session(state: &AppState, headers: &HeaderMap) -> Option<SessionView> {
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
pub async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    render(&state, &headers, None).await
}

async fn render(state: &AppState, headers: &HeaderMap, notice: Option<&str>) -> Response {
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
    let rows = match state
        .engine
        .manager
        .list(&ListQuery {
            limit: SHOWN,
            ..ListQuery::default()
        })
        .await
    {
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
    let markup = pages::dashboard(
        &rows,
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
            render(&state, &headers, Some(&format!("Refresh failed: {error}"))).await
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
            render(&state, &headers, Some(&format!("Revoke failed: {error}"))).await
        }
    }
}
