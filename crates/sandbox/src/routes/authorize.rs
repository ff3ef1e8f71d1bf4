//! The authorize endpoint and the consent page (Allow / Deny).

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};

use crate::html;
use crate::model::{CodeRequest, sentences};
use crate::params::{self, Params};
use crate::server::Shared;

use super::AppState;
use super::support::{found, html_response, media_type, read_body, with_query};

struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    response_type: String,
    scope: Option<String>,
    state: Option<String>,
    tenant_name: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    account_hint: Option<String>,
}

impl AuthRequest {
    fn hidden_fields(&self) -> Vec<(&str, &str)> {
        let mut v = vec![
            ("client_id", self.client_id.as_str()),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("response_type", self.response_type.as_str()),
        ];
        let optional = [
            ("scope", &self.scope),
            ("state", &self.state),
            ("tenant_name", &self.tenant_name),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
        ];
        for (k, val) in optional {
            if let Some(val) = val {
                v.push((k, val.as_str()));
            }
        }
        v
    }

    fn redirect_error(&self, error: &str, description: &str) -> Response {
        let mut pairs = vec![("error", error), ("error_description", description)];
        if let Some(st) = &self.state {
            pairs.push(("state", st));
        }
        found(&with_query(&self.redirect_uri, &pairs))
    }
}

/// The longest `tenant_name` accepted, in bytes: the same limit as the client's `TenantName`
/// (`crates/core/src/ids.rs`), so a name one side takes the other takes too.
pub(crate) const TENANT_NAME_MAX_BYTES: usize = 255;

/// A refused authorization request. Doorkeeper (Kit's server) shows every such error on its
/// own page, answered 200, and never redirects it to the app: the sentence is Doorkeeper's.
struct AuthFailure(String);

impl AuthFailure {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }

    fn into_response(self) -> Response {
        html_response(StatusCode::OK, html::error_page(&self.0))
    }
}

/// The checks of Doorkeeper's pre-authorization, in its order.
fn validate_authorize(
    s: &Shared,
    parsed: Result<Params, params::ParamError>,
) -> Result<AuthRequest, AuthFailure> {
    let cfg = &s.config;
    let p = parsed
        .map_err(|e| AuthFailure::new(format!("The authorization request is malformed: {e}.")))?;
    let client_id = p
        .get("client_id")
        .ok_or_else(|| AuthFailure::new(sentences::missing("client_id")))?;
    if client_id != cfg.client_id {
        return Err(AuthFailure::new(sentences::INVALID_CLIENT));
    }
    let redirect_uri = p
        .get("redirect_uri")
        .filter(|r| cfg.redirect_uris.iter().any(|x| x == r))
        .ok_or_else(|| AuthFailure::new(sentences::INVALID_REDIRECT_URI))?;
    let response_type = match p.get("response_type") {
        None => return Err(AuthFailure::new(sentences::missing("response_type"))),
        Some("code") => "code",
        Some(_) => return Err(AuthFailure::new(sentences::UNSUPPORTED_RESPONSE_TYPE)),
    };
    if let Some(scope) = p.get("scope")
        && scope.split(' ').any(|s| !s.is_empty() && s != "public")
    {
        return Err(AuthFailure::new(sentences::INVALID_SCOPE));
    }
    let challenge = p.get("code_challenge");
    let method = p.get("code_challenge_method");
    if challenge.is_some() && !matches!(method, Some("S256" | "plain")) {
        return Err(AuthFailure::new(sentences::INVALID_CODE_CHALLENGE_METHOD));
    }
    if challenge.is_none() && cfg.client_secret.is_none() {
        // A public client has nothing else binding the code to it (sandbox rule, stricter
        // than Doorkeeper 5.5, which has no `force_pkce`).
        return Err(AuthFailure::new(sentences::missing("code_challenge")));
    }
    if let Some(t) = p.get("tenant_name")
        && t.len() > TENANT_NAME_MAX_BYTES
    {
        return Err(AuthFailure::new(format!(
            "tenant_name is longer than {TENANT_NAME_MAX_BYTES} bytes."
        )));
    }
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        response_type: response_type.to_owned(),
        scope: p.get("scope").map(str::to_owned),
        state: p.get("state").map(str::to_owned),
        tenant_name: p.get("tenant_name").map(str::to_owned),
        code_challenge: challenge.map(str::to_owned),
        code_challenge_method: method.map(str::to_owned).filter(|_| challenge.is_some()),
        account_hint: p.get("sandbox_account").map(str::to_owned),
    })
}

fn approve(s: &Shared, req: &AuthRequest, account: &str) -> Response {
    let code = s.model().issue_code(
        &s.config,
        &CodeRequest {
            client_id: &req.client_id,
            redirect_uri: &req.redirect_uri,
            challenge: req
                .code_challenge
                .as_deref()
                .zip(req.code_challenge_method.as_deref()),
            account,
            tenant_name: req.tenant_name.as_deref(),
        },
        s.now_ms(),
    );
    let mut pairs = vec![("code", code.as_str())];
    if let Some(st) = &req.state {
        pairs.push(("state", st));
    }
    found(&with_query(&req.redirect_uri, &pairs))
}

fn account_name(typed: Option<&str>, default: &str) -> String {
    let name: String = typed.unwrap_or(default).trim().chars().take(100).collect();
    if name.is_empty() {
        default.to_owned()
    } else {
        name
    }
}

pub(super) async fn authorize_get(State(s): AppState, uri: Uri) -> Response {
    let query = uri.query().unwrap_or_default();
    let req = match validate_authorize(&s, params::parse_form(query.as_bytes())) {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
    let account = account_name(req.account_hint.as_deref(), &s.config.default_account);
    if s.config.auto_approve {
        return approve(&s, &req, &account);
    }
    let known = s.model().accounts_seen().to_vec();
    let page = html::consent_page(&html::Consent {
        action: uri.path(),
        app_name: &s.config.app_name,
        tenant_name: req.tenant_name.as_deref(),
        hidden: req.hidden_fields(),
        default_account: &account,
        known_accounts: &known,
    });
    let mut resp = html_response(StatusCode::OK, page);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub(super) async fn authorize_post(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
    let Ok(bytes) = read_body(body, s.config.max_body_bytes).await else {
        return html_response(
            StatusCode::BAD_REQUEST,
            html::error_page("The form could not be read (too large or interrupted)."),
        );
    };
    if media_type(&headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return html_response(
            StatusCode::BAD_REQUEST,
            html::error_page(
                "The consent form must be submitted as application/x-www-form-urlencoded.",
            ),
        );
    }
    let parsed = params::parse_form(&bytes);
    let decision = parsed
        .as_ref()
        .ok()
        .and_then(|p| p.get("decision").map(str::to_owned));
    let typed = parsed
        .as_ref()
        .ok()
        .and_then(|p| p.get("account").map(str::to_owned));
    let req = match validate_authorize(&s, parsed) {
        Ok(r) => r,
        Err(f) => return f.into_response(),
    };
    match decision.as_deref() {
        Some("allow") => {
            s.model().stats.consents_allowed += 1;
            let account = account_name(typed.as_deref(), &s.config.default_account);
            approve(&s, &req, &account)
        }
        Some("deny") => {
            s.model().stats.consents_denied += 1;
            req.redirect_error("access_denied", sentences::ACCESS_DENIED)
        }
        _ => html_response(
            StatusCode::BAD_REQUEST,
            html::error_page("Choose Allow or Deny."),
        ),
    }
}
