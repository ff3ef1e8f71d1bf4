//! The App Store simulation: the install link and the app's page after install.

use axum::extract::{Path, State};
use axum::response::Response;
use http::{StatusCode, Uri};

use crate::html;
use crate::params;

use super::AppState;
use super::support::{found, html_response};

fn valid_app_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Kit's install link, `/apps/{id}/install` (optionally `?k_app_id=k_{id}` for attribution),
/// sends the creator to the app's Authorization URL with one parameter, `redirect`, exactly as
/// Kit documents it: `redirect=https://app.kit.com/apps/{id}?success=true`, not
/// percent-encoded. Kit documents nothing else on that request; the app id is in the
/// `redirect` path.
pub(super) async fn app_install(State(s): AppState, Path(id): Path<String>, uri: Uri) -> Response {
    if !valid_app_id(&id) {
        return html_response(StatusCode::NOT_FOUND, html::error_page("No such app."));
    }
    let Some(app_url) = &s.config.app_authorization_url else {
        return html_response(
            StatusCode::NOT_FOUND,
            html::error_page(
                "This sandbox has no app Authorization URL: start it with --app-authorization-url.",
            ),
        );
    };
    let attributed = params::parse_form(uri.query().unwrap_or_default().as_bytes())
        .ok()
        .is_some_and(|p| p.get("k_app_id") == Some(format!("k_{id}").as_str()));
    s.model().record_install(&id, attributed, s.now_ms());
    let sep = if app_url.contains('?') { '&' } else { '?' };
    found(&format!(
        "{app_url}{sep}redirect={}/apps/{id}?success=true",
        s.base_url
    ))
}

/// The app's page on Kit. Reached with `?success=true` it shows the app installed: that is
/// how Kit registers an install, so an app must not send a creator who pressed Deny there.
pub(super) async fn app_page(State(s): AppState, Path(id): Path<String>, uri: Uri) -> Response {
    if !valid_app_id(&id) {
        return html_response(StatusCode::NOT_FOUND, html::error_page("No such app."));
    }
    let success = params::parse_form(uri.query().unwrap_or_default().as_bytes())
        .ok()
        .is_some_and(|p| p.get("success") == Some("true"));
    let (clicks, grants) = {
        let m = s.model();
        (m.installs.get(&id).cloned(), m.grants_info())
    };
    let rows: Vec<html::InstallRow> = grants
        .into_iter()
        .filter(|g| g.client_id == s.config.client_id)
        .map(|g| html::InstallRow {
            account: g.account_name,
            account_id: g.account_id,
            tenant: g.tenant_name,
            alive: g.alive,
            created_at: g.created_at,
        })
        .collect();
    let installed = success || rows.iter().any(|r| r.alive);
    html_response(
        StatusCode::OK,
        html::installed_page(&id, &s.config.app_name, installed, clicks.as_ref(), &rows),
    )
}
