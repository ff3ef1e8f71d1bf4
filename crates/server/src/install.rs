//! `GET /kit/oauth` (the app's Authorization URL) and `GET /kit/oauth/callback` (its
//! Redirect URI).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use kit_oauth::core::{Callback, CallbackError};
use kit_oauth::{Declined, InstallError};

use crate::AppState;
use crate::install_link::{TenantRefused, tenant_of};
use crate::pages::error_page;
use crate::sign_in::{InstalledBy, SignInError, USER_COOKIE, USER_PARAM};
use crate::web::{cookie, found};

/// The browser-binding cookie.
pub const BINDING_COOKIE: &str = "kit_oauth_install";
/// The binding lives as long as a pending install (10 minutes).
const BINDING_MAX_AGE: u64 = 600;

/// The parameters of the Authorization URL, parsed leniently: Kit's documented example puts an
/// un-encoded URL (with its own `?`) in `redirect`, so unknown parameters after `redirect` are
/// taken to be part of it. The result is checked against the allowlist by the library.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BeginQuery {
    /// Kit's `redirect`.
    pub redirect: Option<String>,
    /// The app's tenant.
    pub tenant: Option<String>,
    /// The signed user (the sign-in hook).
    pub user: Option<String>,
}

impl BeginQuery {
    /// Parses a raw query string.
    #[must_use]
    pub fn parse(raw: &str) -> Self {
        let mut out = Self::default();
        let mut redirect_raw: Option<String> = None;
        for piece in raw.split('&') {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            match key {
                "redirect" if redirect_raw.is_none() => redirect_raw = Some(value.to_owned()),
                "tenant" | "tenant_name" => out.tenant = Some(decode(value)),
                USER_PARAM => out.user = Some(decode(value)),
                _ => {
                    if let Some(redirect) = redirect_raw.as_mut() {
                        redirect.push('&');
                        redirect.push_str(piece);
                    }
                }
            }
        }
        out.redirect = redirect_raw.map(|r| decode(&r));
        out.tenant = out.tenant.filter(|t| !t.is_empty());
        out
    }
}

/// Percent-decoding that leaves `+` alone (it is literal in a URL's path and query values that
/// Kit sends un-encoded) and keeps invalid sequences as they are.
fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(text) = std::str::from_utf8(hex)
            && let Ok(byte) = u8::from_str_radix(text, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn page(state: &AppState, status: StatusCode, title: &str, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(error_page(title, message, &state.options.start_again_url).into_string()),
    )
        .into_response()
}

/// Begins an install: binds a fresh `state` to this browser and sends it to Kit.
pub async fn begin(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let query = BeginQuery::parse(uri.query().unwrap_or_default());
    let Some(redirect) = query.redirect.as_deref() else {
        return page(
            &state,
            StatusCode::BAD_REQUEST,
            "Start the install from Kit",
            "This address is opened by Kit's App Store with a redirect parameter; it is missing here.",
        );
    };
    let signed = match &state.options.sign_in {
        None => None,
        Some(sign_in) => match sign_in.user_of(&headers, query.user.as_deref()) {
            Ok(signed) => Some(signed),
            Err(error) => return sign_in_refused(&state, &error),
        },
    };
    // The tenant decides which tenant-scoped keys see the connection: only the app may name
    // it, by a signed link or with the signed user, never a bare query parameter.
    let tenant = match tenant_of(
        state.options.install_links.as_ref(),
        query.tenant.as_deref(),
        signed.as_ref().and_then(|s| s.tenant.as_deref()),
    ) {
        Ok(tenant) => tenant,
        Err(refused) => return tenant_refused(&state, &refused),
    };
    let user = signed.map(|s| s.user);
    let binding = cookie(&headers, BINDING_COOKIE);
    match state
        .engine
        .install
        .begin(redirect, tenant.as_deref(), binding)
        .await
    {
        Ok(started) => {
            tracing::info!(
                tenant = tenant.as_deref(),
                signed_in = user.is_some(),
                "install started"
            );
            let mut response = found(started.authorize_url.as_str());
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                "no-store"
                    .parse()
                    .unwrap_or_else(|_| header::HeaderValue::from_static("no-store")),
            );
            response.headers_mut().append(
                header::SET_COOKIE,
                state.options.cookies.set(
                    BINDING_COOKIE,
                    started.browser_binding.expose_secret(),
                    "Lax",
                    BINDING_MAX_AGE,
                ),
            );
            if let (Some(sign_in), Some(user)) = (&state.options.sign_in, &user) {
                let install_state = started
                    .authorize_url
                    .query_pairs()
                    .find(|(k, _)| k == "state")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                response.headers_mut().append(
                    header::SET_COOKIE,
                    state.options.cookies.set(
                        USER_COOKIE,
                        &sign_in.bind(user, &install_state),
                        "Lax",
                        BINDING_MAX_AGE,
                    ),
                );
            }
            response
        }
        Err(InstallError::Redirect(error)) => {
            tracing::warn!(%error, "install refused: redirect is not Kit's");
            page(
                &state,
                StatusCode::BAD_REQUEST,
                "This install link is not from Kit",
                "The redirect address does not point back to Kit, so the install was refused.",
            )
        }
        Err(InstallError::Tenant(error)) => page(
            &state,
            StatusCode::BAD_REQUEST,
            "Invalid tenant",
            &format!("The tenant name is invalid: {error}."),
        ),
        Err(error) => {
            tracing::error!(%error, "install could not start");
            page(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "The install could not start",
                "A temporary problem stopped the install. Please try again in a moment.",
            )
        }
    }
}

/// Completes an install and sends the browser back to Kit.
pub async fn callback(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let binding = cookie(&headers, BINDING_COOKIE);
    // With the sign-in hook, the install must be the one the signed-in user started here; the
    // code is not redeemed otherwise.
    let user = match &state.options.sign_in {
        None => None,
        Some(sign_in) => {
            let callback_state = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned());
            match sign_in.bound_user(cookie(&headers, USER_COOKIE), callback_state.as_deref()) {
                Ok(user) => Some(user),
                Err(error) => {
                    metrics::counter!("kit_oauth_installs_total", "outcome" => "not_signed_in")
                        .increment(1);
                    return sign_in_refused(&state, &error);
                }
            }
        }
    };
    if let Some(response) = denied(&state, query, binding).await {
        return response;
    }
    match state.engine.install.complete(query, binding).await {
        Ok(installed) => {
            metrics::counter!("kit_oauth_installs_total", "outcome" => "ok").increment(1);
            if let (Some(sign_in), Some(user)) = (&state.options.sign_in, user) {
                tracing::info!(connection = %installed.connection_id, %user, "installed by a signed-in user");
                sign_in.installed(&InstalledBy {
                    user,
                    connection_id: installed.connection_id.clone(),
                    tenant: installed.tenant.clone(),
                    account: installed.account.clone(),
                });
            }
            tracing::info!(
                connection = %installed.connection_id,
                account = %installed.account.id,
                tenant = installed.tenant.as_ref().map(kit_oauth::core::TenantName::as_str),
                "install completed"
            );
            let mut response = found(installed.kit_redirect.as_str());
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            response
        }
        Err(error) => {
            let (status, outcome, title, message) = describe(&error);
            metrics::counter!("kit_oauth_installs_total", "outcome" => outcome).increment(1);
            tracing::warn!(%error, outcome, "install failed");
            page(&state, status, title, message)
        }
    }
}

/// Deny on Kit's consent page: the person goes back to the Kit page the install started from,
/// without `success=true`, so Kit shows the app as not installed (see the README's "After
/// Deny"). Only the browser that started the install is sent there; any other denial (a
/// stranger's, a replay) gets the explained page. `None` when the callback is not a denial.
async fn denied(state: &AppState, query: &str, binding: Option<&str>) -> Option<Response> {
    let Ok(Callback::Error {
        error,
        state: Some(csrf),
        ..
    }) = Callback::from_query(query)
    else {
        return None;
    };
    if error != "access_denied" {
        return None;
    }
    metrics::counter!("kit_oauth_installs_total", "outcome" => "denied").increment(1);
    let (status, title, message) = match state.engine.install.declined(&csrf, binding).await {
        Ok(Declined::BackToKit(to)) => {
            tracing::info!("install denied by the creator; back to Kit");
            let mut response = found(&to);
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            return Some(response);
        }
        Ok(Declined::OtherBrowser) => (
            StatusCode::FORBIDDEN,
            "Finish the install in the same browser",
            "The app was not given access to your Kit account, and this install was started in another browser.",
        ),
        Ok(Declined::Unknown) => (
            StatusCode::BAD_REQUEST,
            "Access was not granted",
            "The app was not given access to your Kit account. Nothing was saved.",
        ),
        Err(error) => {
            tracing::warn!(%error, "a denied install could not be cleared");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The install could not be cancelled",
                "The app was not given access, but a temporary problem stopped the broker from clearing the install. It expires by itself within 10 minutes.",
            )
        }
    };
    tracing::warn!(
        status = status.as_u16(),
        "denied install answered with a page"
    );
    Some(page(state, status, title, message))
}

/// The page for a tenant that does not come from the app (400; nothing is stored).
fn tenant_refused(state: &AppState, refused: &TenantRefused) -> Response {
    tracing::warn!(error = %refused, "install refused: the tenant is not the app's");
    metrics::counter!("kit_oauth_installs_total", "outcome" => "unsigned_tenant").increment(1);
    let message = match refused {
        TenantRefused::Unsigned => {
            "This link names the account it installs for, but the app did not sign it, so anyone could have chosen it. Start the install again from the app. Nothing was saved."
        }
        TenantRefused::Forged => {
            "This link was altered or not signed by the app. Start the install again from the app. Nothing was saved."
        }
        TenantRefused::Expired => {
            "This install link is too old. Ask the app for a new one. Nothing was saved."
        }
        TenantRefused::Invalid | TenantRefused::Conflict => {
            "This install link is not valid. Start the install again from the app. Nothing was saved."
        }
    };
    page(
        state,
        StatusCode::BAD_REQUEST,
        "This install link was not signed by the app",
        message,
    )
}

/// The page for a refused `user` parameter or binding: 401 when missing, 400 when expired or
/// malformed, 403 when forged or bound to another install.
fn sign_in_refused(state: &AppState, error: &SignInError) -> Response {
    tracing::warn!(%error, "install refused by the sign-in hook");
    let (status, title, message) = match error {
        SignInError::Missing => (
            StatusCode::UNAUTHORIZED,
            "Sign in to the app first",
            "This app installs for signed-in users only: open the app, sign in, and start the install from there.",
        ),
        SignInError::Expired | SignInError::TooLong => (
            StatusCode::BAD_REQUEST,
            "The sign-in link expired",
            "The link that started this install is too old. Go back to the app and start the install again.",
        ),
        SignInError::Malformed => (
            StatusCode::BAD_REQUEST,
            "The sign-in link is not valid",
            "The link that started this install is damaged. Go back to the app and start the install again.",
        ),
        SignInError::Forged => (
            StatusCode::FORBIDDEN,
            "The sign-in link is not valid",
            "The link that started this install was not signed by the app, so the install was refused.",
        ),
        SignInError::NotBound => (
            StatusCode::FORBIDDEN,
            "Finish the install where you signed in",
            "This install was not started by the signed-in user in this browser, so it was stopped. Nothing was saved.",
        ),
    };
    page(state, status, title, message)
}

fn describe(error: &InstallError) -> (StatusCode, &'static str, &'static str, &'static str) {
    match error {
        InstallError::Callback(CallbackError::ForeignBrowser) => (
            StatusCode::FORBIDDEN,
            "foreign_browser",
            "Finish the install in the same browser",
            "This install was started in another browser (or its cookie was lost). For your safety it was stopped.",
        ),
        InstallError::Callback(CallbackError::Expired) => (
            StatusCode::BAD_REQUEST,
            "expired",
            "The install link expired",
            "The install took more than 10 minutes to complete.",
        ),
        InstallError::Callback(CallbackError::AccessDenied { .. }) => (
            StatusCode::BAD_REQUEST,
            "denied",
            "Access was not granted",
            "The app was not given access to your Kit account.",
        ),
        InstallError::Callback(CallbackError::Provider { .. }) => (
            StatusCode::BAD_GATEWAY,
            "provider_error",
            "Kit reported an error",
            "Kit could not complete the authorization.",
        ),
        InstallError::Callback(
            CallbackError::Malformed(_)
            | CallbackError::StateMismatch
            | CallbackError::UnknownState,
        ) => (
            StatusCode::BAD_REQUEST,
            "bad_state",
            "This install link is not valid",
            "The link is unknown, was already used, or was altered.",
        ),
        InstallError::Exchange(_) | InstallError::Account(_) | InstallError::Token(_) => (
            StatusCode::BAD_GATEWAY,
            "kit_failed",
            "Kit did not complete the install",
            "Kit's token service failed or answered something unexpected.",
        ),
        InstallError::Redirect(_) | InstallError::Tenant(_) => (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "This install link is not valid",
            "The install request was invalid.",
        ),
        InstallError::Store(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The install could not be saved",
            "A temporary problem stopped the install. Please start again in a moment.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kits_unencoded_redirect_keeps_its_query() {
        let q =
            BeginQuery::parse("redirect=https://app.kit.com/apps/1?success=true&x=1&tenant=acme");
        assert_eq!(
            q.redirect.as_deref(),
            Some("https://app.kit.com/apps/1?success=true&x=1")
        );
        assert_eq!(q.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn an_encoded_redirect_is_decoded() {
        let q = BeginQuery::parse(
            "tenant=t1&redirect=https%3A%2F%2Fapp.kit.com%2Fapps%2F1%3Fsuccess%3Dtrue",
        );
        assert_eq!(
            q.redirect.as_deref(),
            Some("https://app.kit.com/apps/1?success=true")
        );
        assert_eq!(q.tenant.as_deref(), Some("t1"));
        assert_eq!(BeginQuery::parse("").redirect, None);
    }
}
