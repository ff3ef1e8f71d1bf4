//! Request handlers: OAuth endpoints, API v4, App Store simulation and the control API.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use http_body_util::{BodyExt as _, Limited};
use serde::Deserialize;
use serde_json::json;

use crate::faults::{Fault, FaultEndpoint, FaultKind};
use crate::html;
use crate::model::{self, ApiRefusal, CodeRequest, OAuthError, TokenResponse};
use crate::params::{self, Params};
use crate::server::{ConnKill, Shared};

type AppState = State<Arc<Shared>>;

/// Builds the sandbox's router.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/v4/oauth/authorize",
            get(authorize_get).post(authorize_post),
        )
        .route("/oauth/authorize", get(authorize_get).post(authorize_post))
        .route("/v4/oauth/token", post(token))
        .route("/oauth/token", post(token))
        .route("/v4/oauth/revoke", post(revoke))
        .route("/oauth/revoke", post(revoke))
        .route("/v4/account", get(account))
        .route("/v4/{*rest}", any(api_other))
        .merge(crate::kit_api::router(shared.clone()))
        .route("/apps/{id}/install", get(app_install))
        .route("/apps/{id}", get(app_page))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/stats/reset", post(stats_reset))
        .route(
            "/_sandbox/faults",
            get(faults_list).post(faults_add).delete(faults_clear),
        )
        .route("/_sandbox/clock", get(clock_get).post(clock_advance))
        .route("/_sandbox/grants", get(grants))
        .route("/_sandbox/grants/{id}/revoke", post(grant_revoke))
        .route("/_sandbox/config", get(config))
        .route("/_sandbox/sizes", get(sizes))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), front))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// Front middleware: request counting and fault injection.

fn classify(path: &str, is_post: bool) -> (&'static str, Option<FaultEndpoint>) {
    match path {
        "/v4/oauth/authorize" | "/oauth/authorize" => (
            if is_post { "consent" } else { "authorize" },
            Some(FaultEndpoint::Authorize),
        ),
        "/v4/oauth/token" | "/oauth/token" => ("token", Some(FaultEndpoint::Token)),
        "/v4/oauth/revoke" | "/oauth/revoke" => ("revoke", Some(FaultEndpoint::Revoke)),
        "/v4/account" => ("account", Some(FaultEndpoint::Account)),
        p if p.starts_with("/v4/") => ("api", Some(FaultEndpoint::Api)),
        p if p.starts_with("/apps/") => ("apps", None),
        p if p.starts_with("/_sandbox/") => ("control", None),
        _ => ("other", None),
    }
}

async fn front(State(s): AppState, req: Request, next: Next) -> Response {
    let (name, target) = classify(req.uri().path(), req.method() == http::Method::POST);
    s.model().stats.count_request(name);
    let fault = match target {
        Some(t) if s.faults_armed.load(Ordering::Relaxed) => {
            let mut faults = s.faults();
            let f = faults.take(t);
            s.faults_armed.store(!faults.is_empty(), Ordering::Relaxed);
            f
        }
        _ => None,
    };
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    s.model().stats.faults_injected += 1;
    match fault {
        FaultKind::Status {
            status,
            body,
            retry_after,
        } => status_fault(status, body, retry_after),
        FaultKind::Latency { ms } => {
            // Processed first, answered late: a client that times out has still changed the
            // server's state, as with a slow real server.
            let resp = next.run(req).await;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            resp
        }
        FaultKind::Drop => {
            let kill = req.extensions().get::<ConnKill>().cloned();
            drop_connection(kill).await
        }
        FaultKind::MalformedJson => malformed_json(target),
        FaultKind::RotateThenDrop => {
            let kill = req.extensions().get::<ConnKill>().cloned();
            let processed = next.run(req).await;
            drop(processed);
            drop_connection(kill).await
        }
    }
}

fn status_fault(status: u16, body: Option<String>, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut resp = match body {
        Some(b) => {
            let ct = if serde_json::from_str::<serde_json::Value>(&b).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            (status, [(CONTENT_TYPE, ct)], b).into_response()
        }
        None => status.into_response(),
    };
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn malformed_json(target: Option<FaultEndpoint>) -> Response {
    let body = match target {
        Some(FaultEndpoint::Token) => {
            r#"{"access_token":"sandbox-malformed","token_type":"Bearer","expires_in":72"#
        }
        Some(FaultEndpoint::Account | FaultEndpoint::Api) => r#"{"user":{"email":"sandbox@exam"#,
        _ => r#"{"error":"#,
    };
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Closes the connection without a response. The connection task drops the connection (and
/// this future with it) as soon as it is notified.
async fn drop_connection(kill: Option<ConnKill>) -> Response {
    match kill {
        Some(ConnKill(notify)) => {
            notify.notify_one();
            std::future::pending::<Response>().await
        }
        // Only reachable if the router is served by something other than `server::serve`.
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers.

enum BodyError {
    TooLarge,
    Unreadable,
}

async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Reads an OAuth request body: form-encoded or JSON, capped, strict.
async fn read_params(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    allow_json: bool,
) -> Result<Params, String> {
    let bytes = read_body(body, limit).await.map_err(|e| match e {
        BodyError::TooLarge => format!("The request body is larger than {limit} bytes."),
        BodyError::Unreadable => "The request body could not be read.".to_owned(),
    })?;
    let media = media_type(headers);
    let parsed = match media.as_deref() {
        Some("application/x-www-form-urlencoded") => params::parse_form(&bytes),
        Some(m) if allow_json && (m == "application/json" || m.ends_with("+json")) => {
            params::parse_json(&bytes)
        }
        None if bytes.is_empty() => Ok(Params::default()),
        _ => {
            return Err(if allow_json {
                "Content-Type must be application/x-www-form-urlencoded or application/json."
                    .to_owned()
            } else {
                "Content-Type must be application/x-www-form-urlencoded.".to_owned()
            });
        }
    };
    parsed.map_err(|e| format!("Malformed parameters: {e}."))
}

fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

fn oauth_error_response(s: &Shared, err: &OAuthError) -> Response {
    {
        let mut m = s.model();
        match err.error {
            "invalid_request" => m.stats.invalid_request += 1,
            "invalid_client" => m.stats.invalid_client += 1,
            "unsupported_grant_type" => m.stats.unsupported_grant_type += 1,
            _ => {}
        }
    }
    let mut resp = (
        err.status,
        Json(json!({"error": err.error, "error_description": err.description})),
    )
        .into_response();
    if err.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"kit-sandbox\""),
        );
    }
    no_store(resp)
}

fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(LOCATION, v)]).into_response(),
        Err(_) => html_response(
            StatusCode::BAD_REQUEST,
            html::error_page("The redirect location is not a valid header value."),
        ),
    }
}

fn html_response(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// `uri` plus `pairs` in its query, percent-encoded.
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", ser.finish())
}

async fn index(State(s): AppState) -> Response {
    html_response(
        StatusCode::OK,
        html::index_page(&s.config.app_name, &s.config.client_id),
    )
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"errors": ["Not Found"]})),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Authorize and consent.

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

enum AuthFailure {
    /// Shown on the page: the client or redirect URI cannot be trusted (RFC 6749 §4.1.2.1).
    Page(String),
    /// Sent back to the (trusted) redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

impl AuthFailure {
    fn into_response(self) -> Response {
        match self {
            AuthFailure::Page(msg) => {
                html_response(StatusCode::BAD_REQUEST, html::error_page(&msg))
            }
            AuthFailure::Redirect {
                redirect_uri,
                state,
                error,
                description,
            } => {
                let mut pairs = vec![
                    ("error", error),
                    ("error_description", description.as_str()),
                ];
                if let Some(st) = &state {
                    pairs.push(("state", st));
                }
                found(&with_query(&redirect_uri, &pairs))
            }
        }
    }
}

fn validate_authorize(
    s: &Shared,
    parsed: Result<Params, params::ParamError>,
) -> Result<AuthRequest, AuthFailure> {
    let cfg = &s.config;
    let p = parsed
        .map_err(|e| AuthFailure::Page(format!("The authorization request is malformed: {e}.")))?;
    let client_id = p
        .get("client_id")
        .ok_or_else(|| AuthFailure::Page("The request has no client_id.".into()))?;
    if client_id != cfg.client_id {
        return Err(AuthFailure::Page(format!(
            "Unknown client_id {client_id:?}."
        )));
    }
    let redirect_uri = p
        .get("redirect_uri")
        .ok_or_else(|| AuthFailure::Page("The request has no redirect_uri.".into()))?;
    if !cfg.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(AuthFailure::Page(format!(
            "The redirect_uri {redirect_uri:?} is not registered for this app."
        )));
    }
    let state = p.get("state").map(str::to_owned);
    let fail = |error: &'static str, description: &str| AuthFailure::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    let response_type = match p.get("response_type") {
        None => return Err(fail("invalid_request", "response_type is required.")),
        Some("code") => "code",
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "Only response_type=code is supported.",
            ));
        }
    };
    if let Some(scope) = p.get("scope")
        && scope.split(' ').any(|s| !s.is_empty() && s != "public")
    {
        return Err(fail("invalid_scope", "The only scope is public."));
    }
    let challenge = p.get("code_challenge");
    let method = p.get("code_challenge_method");
    match (challenge, method) {
        (_, Some("plain")) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method plain is not supported; use S256.",
            ));
        }
        (_, Some(m)) if m != "S256" => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256.",
            ));
        }
        (None, Some(_)) => return Err(fail("invalid_request", "code_challenge is required.")),
        (Some(_), None) => {
            return Err(fail(
                "invalid_request",
                "code_challenge_method must be S256 (plain is not supported).",
            ));
        }
        (Some(c), Some(_)) if !model::valid_challenge(c) => {
            return Err(fail(
                "invalid_request",
                "code_challenge must be base64url(SHA-256(code_verifier)) without padding.",
            ));
        }
        (None, None) if cfg.client_secret.is_none() => {
            return Err(fail(
                "invalid_request",
                "PKCE is required: send code_challenge and code_challenge_method=S256.",
            ));
        }
        _ => {}
    }
    if let Some(t) = p.get("tenant_name")
        && t.chars().count() > 200
    {
        return Err(fail(
            "invalid_request",
            "tenant_name is longer than 200 characters.",
        ));
    }
    Ok(AuthRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        response_type: response_type.to_owned(),
        scope: p.get("scope").map(str::to_owned),
        state,
        tenant_name: p.get("tenant_name").map(str::to_owned),
        code_challenge: challenge.map(str::to_owned),
        code_challenge_method: method.map(str::to_owned),
        account_hint: p.get("sandbox_account").map(str::to_owned),
    })
}

fn approve(s: &Shared, req: &AuthRequest, account: &str) -> Response {
    let code = s.model().issue_code(
        &s.config,
        &CodeRequest {
            client_id: &req.client_id,
            redirect_uri: &req.redirect_uri,
            challenge: req.code_challenge.as_deref(),
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

async fn authorize_get(State(s): AppState, uri: Uri) -> Response {
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

async fn authorize_post(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
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
            req.redirect_error(
                "access_denied",
                "The user denied the authorization request.",
            )
        }
        _ => html_response(
            StatusCode::BAD_REQUEST,
            html::error_page("Choose Allow or Deny."),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Token and revoke.

/// Client authentication (RFC 6749 §2.3.1): HTTP Basic or body parameters, never both.
fn authenticate_client(s: &Shared, headers: &HeaderMap, p: &Params) -> Result<String, OAuthError> {
    let basic = match headers.get(AUTHORIZATION) {
        Some(v) => Some(parse_basic(v).ok_or_else(|| {
            OAuthError::invalid_client("The Authorization header is not valid Basic credentials.")
        })?),
        None => None,
    };
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if p.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "Use one client authentication method, not both Basic and client_secret.",
                ));
            }
            if p.get("client_id").is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials.",
                ));
            }
            (Some(id), Some(secret).filter(|s| !s.is_empty()))
        }
        None => (
            p.get("client_id").map(str::to_owned),
            p.get("client_secret").map(str::to_owned),
        ),
    };
    let Some(client_id) = client_id else {
        return Err(OAuthError::invalid_client("client_id is required."));
    };
    if client_id != s.config.client_id {
        return Err(OAuthError::invalid_client(
            "Client authentication failed: unknown client.",
        ));
    }
    match (&s.config.client_secret, secret) {
        (Some(expected), Some(given)) if *expected == given => Ok(client_id),
        (Some(_), Some(_)) => Err(OAuthError::invalid_client(
            "Client authentication failed: wrong client_secret.",
        )),
        (Some(_), None) => Err(OAuthError::invalid_client(
            "Client authentication failed: client_secret is required.",
        )),
        (None, None) => Ok(client_id),
        (None, Some(_)) => Err(OAuthError::invalid_client(
            "This is a public client; it has no client_secret.",
        )),
    }
}

fn parse_basic(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    let p = params::parse_form(format!("i={id}&s={secret}").as_bytes()).ok()?;
    Some((
        p.get("i").unwrap_or_default().to_owned(),
        p.get("s").unwrap_or_default().to_owned(),
    ))
}

fn token_ok(t: &TokenResponse) -> Response {
    no_store((StatusCode::OK, Json(t)).into_response())
}

async fn token(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
    match token_inner(&s, &headers, body).await {
        Ok(t) => token_ok(&t),
        Err(e) => oauth_error_response(&s, &e),
    }
}

async fn token_inner(
    s: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<TokenResponse, OAuthError> {
    let p = read_params(headers, body, s.config.max_body_bytes, true)
        .await
        .map_err(OAuthError::invalid_request)?;
    let grant_type = p
        .get("grant_type")
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required."))?;
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return Err(OAuthError::unsupported_grant_type(
            "grant_type must be authorization_code or refresh_token.",
        ));
    }
    let client_id = authenticate_client(s, headers, &p)?;
    if grant_type == "authorization_code" {
        let code = p
            .get("code")
            .ok_or_else(|| OAuthError::invalid_request("code is required."))?;
        let redirect_uri = p
            .get("redirect_uri")
            .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required."))?;
        let verifier = p.get("code_verifier");
        let now = s.now_ms();
        s.model()
            .exchange_code(&s.config, &client_id, code, redirect_uri, verifier, now)
    } else {
        let refresh = p
            .get("refresh_token")
            .ok_or_else(|| OAuthError::invalid_request("refresh_token is required."))?;
        if let Some(scope) = p.get("scope")
            && scope.split(' ').any(|x| !x.is_empty() && x != "public")
        {
            return Err(OAuthError {
                status: StatusCode::BAD_REQUEST,
                error: "invalid_scope",
                description: "The only scope is public.".to_owned(),
            });
        }
        let now = s.now_ms();
        s.model().refresh(&s.config, &client_id, refresh, now)
    }
}

async fn revoke(State(s): AppState, headers: HeaderMap, body: Body) -> Response {
    let p = match read_params(&headers, body, s.config.max_body_bytes, true).await {
        Ok(p) => p,
        Err(msg) => return oauth_error_response(&s, &OAuthError::invalid_request(msg)),
    };
    let Some(token) = p.get("token") else {
        return oauth_error_response(&s, &OAuthError::invalid_request("token is required."));
    };
    // Kit answers 200 with an empty body whatever happens; only an authenticated client's own
    // current token revokes anything.
    let client = authenticate_client(&s, &headers, &p).ok();
    let now = s.now_ms();
    {
        let mut m = s.model();
        m.stats.revocations += 1;
        if let Some(client_id) = client {
            m.revoke_token(&client_id, token, now);
        }
    }
    no_store(StatusCode::OK.into_response())
}

// ---------------------------------------------------------------------------------------------
// API v4.

fn api_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"errors": [message]}))).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Authenticates and rate-limits an API call, counting the outcome.
fn api_auth(
    s: &Shared,
    headers: &HeaderMap,
) -> Result<(model::Account, Option<String>), ApiRefusal> {
    let now = s.now_ms();
    let mut m = s.model();
    let result = match bearer(headers) {
        Some(token) => m.authenticate_api(token, now, s.config.rate_limit),
        None => Err(ApiRefusal::Invalid),
    };
    match result {
        Ok(_) => m.stats.api_ok += 1,
        Err(ApiRefusal::RateLimited) => m.stats.rate_limited_429 += 1,
        Err(_) => m.stats.unauthorized_401 += 1,
    }
    result
}

/// The exact response Kit gives for a refused API call.
fn refusal_response(refusal: ApiRefusal) -> Response {
    let msg = match refusal {
        // Kit's 429 may come without a body and without Retry-After: the hardest case.
        ApiRefusal::RateLimited => return StatusCode::TOO_MANY_REQUESTS.into_response(),
        ApiRefusal::Expired => "The access token expired",
        ApiRefusal::Revoked => "The access token was revoked",
        ApiRefusal::Invalid => "The access token is invalid",
    };
    api_error(StatusCode::UNAUTHORIZED, msg)
}

async fn account(State(s): AppState, headers: HeaderMap) -> Response {
    let (acct, _tenant) = match api_auth(&s, &headers) {
        Ok(a) => a,
        Err(refusal) => return refusal_response(refusal),
    };
    let email = acct.email();
    Json(json!({
        "user": {"email": email, "id": acct.user_id},
        "account": {
            "id": acct.id,
            "name": acct.name,
            "plan_type": "creator",
            "primary_email_address": email,
            "created_at": "2023-02-17T11:43:55Z",
            "timezone": {
                "name": "America/New_York",
                "friendly_name": "Eastern Time (US & Canada)",
                "utc_offset": "-05:00"
            }
        }
    }))
    .into_response()
}

async fn api_other(State(s): AppState, headers: HeaderMap) -> Response {
    match api_auth(&s, &headers) {
        Ok(_) => api_error(StatusCode::NOT_FOUND, "Not Found"),
        Err(refusal) => refusal_response(refusal),
    }
}

// ---------------------------------------------------------------------------------------------
// App Store simulation.

fn valid_app_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn app_install(State(s): AppState, Path(id): Path<String>) -> Response {
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
    s.model().record_install(&id, s.now_ms());
    // Kit's documented example is not percent-encoded; neither is this.
    let sep = if app_url.contains('?') { '&' } else { '?' };
    found(&format!(
        "{app_url}{sep}redirect={}/apps/{id}?success=true",
        s.base_url
    ))
}

async fn app_page(State(s): AppState, Path(id): Path<String>, uri: Uri) -> Response {
    if !valid_app_id(&id) {
        return html_response(StatusCode::NOT_FOUND, html::error_page("No such app."));
    }
    let success = params::parse_form(uri.query().unwrap_or_default().as_bytes())
        .ok()
        .is_some_and(|p| p.get("success") == Some("true"));
    let (clicks, grants) = {
        let m = s.model();
        (
            m.installs
                .get(&id)
                .map(|i| (i.clicks, i.first_at, i.last_at)),
            m.grants_info(),
        )
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
        html::installed_page(&id, &s.config.app_name, installed, clicks, &rows),
    )
}

// ---------------------------------------------------------------------------------------------
// Control API.

fn control_error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

async fn stats(State(s): AppState) -> Response {
    Json(crate::current_stats(&s)).into_response()
}

async fn stats_reset(State(s): AppState) -> Response {
    crate::reset_stats(&s);
    StatusCode::NO_CONTENT.into_response()
}

async fn faults_list(State(s): AppState) -> Response {
    Json(json!({"faults": s.faults().list()})).into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Fault),
    Many(Vec<Fault>),
}

async fn faults_add(State(s): AppState, body: Body) -> Response {
    let Ok(bytes) = read_body(body, 64 * 1024).await else {
        return control_error(StatusCode::BAD_REQUEST, "body too large or unreadable");
    };
    let faults = match serde_json::from_slice::<OneOrMany>(&bytes) {
        Ok(OneOrMany::One(f)) => vec![f],
        Ok(OneOrMany::Many(v)) => v,
        Err(_) => {
            return control_error(
                StatusCode::BAD_REQUEST,
                "expected a fault object or an array of them, e.g. {\"endpoint\":\"token\",\"kind\":\"status\",\"status\":503,\"count\":1}",
            );
        }
    };
    if let Some(msg) = faults.iter().find_map(|f| f.validate().err()) {
        return control_error(StatusCode::BAD_REQUEST, &msg);
    }
    let list = crate::add_faults(&s, faults);
    (StatusCode::CREATED, Json(json!({"faults": list}))).into_response()
}

async fn faults_clear(State(s): AppState) -> Response {
    crate::clear_faults(&s);
    StatusCode::NO_CONTENT.into_response()
}

fn clock_json(s: &Shared) -> Response {
    let now = s.now_ms();
    Json(json!({
        "now": now.div_euclid(1000),
        "now_ms": now,
        "offset_secs": s.clock_offset_secs(),
    }))
    .into_response()
}

async fn clock_get(State(s): AppState) -> Response {
    clock_json(&s)
}

#[derive(Deserialize)]
struct Advance {
    advance_secs: u64,
}

async fn clock_advance(State(s): AppState, body: Body) -> Response {
    let Ok(bytes) = read_body(body, 4096).await else {
        return control_error(StatusCode::BAD_REQUEST, "body too large or unreadable");
    };
    match serde_json::from_slice::<Advance>(&bytes) {
        Ok(a) if a.advance_secs <= 100 * 365 * 86_400 => {
            s.advance_clock(a.advance_secs);
            clock_json(&s)
        }
        _ => control_error(
            StatusCode::BAD_REQUEST,
            "expected {\"advance_secs\": N} with 0 <= N <= 3153600000",
        ),
    }
}

async fn grants(State(s): AppState) -> Response {
    let list = s.model().grants_info();
    Json(json!({"grants": list})).into_response()
}

async fn grant_revoke(State(s): AppState, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return control_error(StatusCode::NOT_FOUND, "no alive grant with that id");
    };
    let now = s.now_ms();
    if s.model().revoke_grant(id, now) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        control_error(StatusCode::NOT_FOUND, "no alive grant with that id")
    }
}

async fn config(State(s): AppState) -> Response {
    Json(s.config.public_view()).into_response()
}

async fn sizes(State(s): AppState) -> Response {
    Json(s.model().sizes()).into_response()
}
