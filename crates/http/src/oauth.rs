//! [`KitOAuthClient`]: the core's [`TokenEndpoint`] and [`AccountLookup`] over the `oauth2`
//! crate's typed client, extended where Kit differs from RFC 6749.
//!
//! The extension points used:
//! - [`KitTokenResponse`], a custom `oauth2::TokenResponse` that reads Kit's `created_at`,
//!   accepts `token_type` in any case or absent, and an absent `scope`;
//! - an `oauth2::AsyncHttpClient` over the shared `reqwest` client that re-encodes the token
//!   request as JSON when so configured, caps the response body, and turns 429/5xx into
//!   transient failures with their `Retry-After` before `oauth2` parses anything.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use kit_oauth_core::{
    AccessToken, AccountLookup, AuthorizationCode, AuthorizeRequest, EndpointError, KitAccount,
    KitAccountId, LookupError, PkceChallenge, PkceVerifier, RefreshToken, RevocableToken,
    TokenEndpoint, TokenResponse,
};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, EndpointNotSet, EndpointSet, RedirectUrl,
    RequestTokenError, Scope, StandardRevocableToken, TokenUrl,
};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;
use url::Url;

use crate::config::{ConfigError, KitEndpoints, TokenBody};
use crate::kit_errors::{Unauthorized, classify_401};
use crate::redact::excerpt;
use crate::transport::{RawResponse, TransportError, execute, retry_after, shared_client};

/// Kit's token response, as an `oauth2` token response type.
///
/// Lenient where Kit and other servers vary (kit-protocol.md §4): `token_type` in any case or
/// absent (then `Bearer`), `scope` absent, `expires_in`/`created_at` as numbers or numeric
/// strings, unknown fields (`id_token`, …) ignored. Strict about the shape: the body must be a
/// JSON object (RFC 6749 §5.1); a derived `Deserialize` would also take an array of the fields
/// in order, so `["tok"]` would read as a token.
#[derive(Debug, Clone, Serialize)]
pub struct KitTokenResponse {
    access_token: oauth2::AccessToken,
    token_type: BasicTokenType,
    expires_in: Option<u64>,
    refresh_token: Option<oauth2::RefreshToken>,
    scope: Option<Vec<Scope>>,
    created_at: Option<i64>,
}

/// The fields of a token response, read from a map only (see [`KitTokenResponse`]).
#[derive(Deserialize)]
struct TokenFields {
    access_token: oauth2::AccessToken,
    #[serde(default = "bearer", deserialize_with = "lenient_token_type")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "lenient_u64")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<oauth2::RefreshToken>,
    #[serde(default, deserialize_with = "lenient_scopes")]
    scope: Option<Vec<Scope>>,
    #[serde(default, deserialize_with = "lenient_i64")]
    created_at: Option<i64>,
}

impl<'de> Deserialize<'de> for KitTokenResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectOnly;

        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = TokenFields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a token response object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TokenFields, A::Error> {
                TokenFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        let f = d.deserialize_map(ObjectOnly)?;
        Ok(Self {
            access_token: f.access_token,
            token_type: f.token_type,
            expires_in: f.expires_in,
            refresh_token: f.refresh_token,
            scope: f.scope,
            created_at: f.created_at,
        })
    }
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

fn lenient_token_type<'de, D: Deserializer<'de>>(d: D) -> Result<BasicTokenType, D::Error> {
    Ok(match Option::<String>::deserialize(d)? {
        None => BasicTokenType::Bearer,
        Some(s) if s.eq_ignore_ascii_case("bearer") => BasicTokenType::Bearer,
        Some(s) if s.eq_ignore_ascii_case("mac") => BasicTokenType::Mac,
        Some(s) => BasicTokenType::Extension(s),
    })
}

fn number_like<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Number>, D::Error> {
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(Some(n)),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse::<serde_json::Number>()
            .map(Some)
            .map_err(|_| D::Error::custom("expected a number")),
        Some(_) => Err(D::Error::custom("expected a number")),
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    number_like(d)?
        .map(|n| {
            n.as_u64()
                .ok_or_else(|| D::Error::custom("expected a non-negative integer"))
        })
        .transpose()
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    number_like(d)?
        .map(|n| {
            n.as_i64()
                .ok_or_else(|| D::Error::custom("expected an integer"))
        })
        .transpose()
}

fn lenient_scopes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Scope>>, D::Error> {
    use serde::de::Error as _;
    let scopes: Vec<String> = match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(D::Error::custom("expected scope strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(D::Error::custom("expected a scope string")),
    };
    Ok((!scopes.is_empty()).then(|| scopes.into_iter().map(Scope::new).collect()))
}

impl oauth2::TokenResponse for KitTokenResponse {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &oauth2::AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&oauth2::RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scope.as_ref()
    }
}

impl KitTokenResponse {
    /// Kit's `created_at` (Unix seconds), absent on other RFC 6749 servers.
    #[must_use]
    pub fn created_at(&self) -> Option<i64> {
        self.created_at
    }

    /// Into the core's token response. Only bearer tokens are usable with Kit's API.
    fn into_core(self) -> Result<TokenResponse, EndpointError> {
        if self.token_type != BasicTokenType::Bearer {
            return Err(EndpointError::Protocol {
                status: Some(200),
                excerpt: format!(
                    "unsupported token_type {:?}",
                    excerpt(self.token_type.as_ref().as_bytes(), &[])
                ),
            });
        }
        Ok(TokenResponse {
            access_token: AccessToken::new(self.access_token.into_secret()),
            refresh_token: self
                .refresh_token
                .map(|t| RefreshToken::new(t.into_secret())),
            expires_in: self.expires_in,
            created_at: self.created_at,
            scope: self
                .scope
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
        })
    }
}

/// The `oauth2` client with Kit's token response type; authorize and token URLs set.
type OAuth2Client = oauth2::Client<
    BasicErrorResponse,
    KitTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Why the HTTP layer under `oauth2` produced no usable response.
#[derive(Debug, Error)]
enum CallError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// 408, 429 or 5xx: the server is busy or failing; nothing to parse.
    #[error("HTTP {status}")]
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
}

/// One token-endpoint call's HTTP client for `oauth2`: remembers the status it saw, so that a
/// body `oauth2` cannot parse is reported with its status.
struct OAuthHttp<'a> {
    client: &'a reqwest::Client,
    timeout: Duration,
    max_body: usize,
    body: TokenBody,
    status: AtomicU16,
}

impl OAuthHttp<'_> {
    fn status(&self) -> Option<u16> {
        match self.status.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s),
        }
    }

    async fn send(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, CallError> {
        let (parts, body) = request.into_parts();
        let (body, content_type) = match self.body {
            TokenBody::Form => (body, "application/x-www-form-urlencoded"),
            TokenBody::Json => (form_to_json(&body), "application/json"),
        };
        let mut headers = parts.headers;
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        let builder = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(headers)
            .body(body);
        let raw = execute(builder, self.timeout, self.max_body)
            .await
            .inspect_err(|e| {
                if let TransportError::BodyTooLarge { status, .. } = e {
                    self.status.store(*status, Ordering::Relaxed);
                }
            })?;
        self.status.store(raw.status.as_u16(), Ordering::Relaxed);
        if is_busy(raw.status) {
            return Err(CallError::Busy {
                status: raw.status.as_u16(),
                retry_after: raw.retry_after(),
            });
        }
        let mut response = http::Response::new(raw.body.to_vec());
        *response.status_mut() = raw.status;
        *response.headers_mut() = raw.headers;
        Ok(response)
    }
}

impl<'c> AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = CallError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, CallError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

fn is_busy(status: http::StatusCode) -> bool {
    status == http::StatusCode::TOO_MANY_REQUESTS
        || status == http::StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// `oauth2` always builds a form body; Kit documents JSON. Same pairs, as a JSON object of
/// strings (the first of a repeated name wins; `oauth2` repeats none).
fn form_to_json(form: &[u8]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(form) {
        map.entry(k.into_owned())
            .or_insert_with(|| serde_json::Value::String(v.into_owned()));
    }
    serde_json::Value::Object(map).to_string().into_bytes()
}

/// Kit's OAuth 2.0 endpoints over the `oauth2` crate and the shared `reqwest` client.
///
/// Implements [`TokenEndpoint`] (authorize URL, code exchange, refresh, revoke) and
/// [`AccountLookup`] (`GET /v4/account`). Cheap to clone.
#[derive(Clone)]
pub struct KitOAuthClient {
    endpoints: KitEndpoints,
    oauth: OAuth2Client,
    http: reqwest::Client,
}

impl std::fmt::Debug for KitOAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KitOAuthClient")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl KitOAuthClient {
    /// A client on the process-wide HTTP client for the endpoints' connect timeout.
    ///
    /// # Errors
    /// [`ConfigError::HttpClient`] when TLS cannot be initialised.
    pub fn new(endpoints: KitEndpoints) -> Result<Self, ConfigError> {
        let http = shared_client(endpoints.connect_timeout())?;
        Ok(Self::with_http_client(endpoints, http))
    }

    /// A client on a caller-provided `reqwest` client (build it with redirects off).
    #[must_use]
    pub fn with_http_client(endpoints: KitEndpoints, http: reqwest::Client) -> Self {
        let mut oauth = oauth2::Client::new(oauth2::ClientId::new(
            endpoints.client_id().as_str().to_owned(),
        ))
        .set_auth_uri(AuthUrl::from_url(endpoints.authorize_url().clone()))
        .set_token_uri(TokenUrl::from_url(endpoints.token_url().clone()))
        .set_redirect_uri(RedirectUrl::from_url(endpoints.redirect_uri().clone()))
        // Kit reads the credentials from the body, not from HTTP Basic.
        .set_auth_type(AuthType::RequestBody);
        if let Some(secret) = endpoints.client_secret() {
            oauth = oauth
                .set_client_secret(oauth2::ClientSecret::new(secret.expose_secret().to_owned()));
        }
        Self {
            endpoints,
            oauth,
            http,
        }
    }

    /// The configuration.
    #[must_use]
    pub fn endpoints(&self) -> &KitEndpoints {
        &self.endpoints
    }

    /// The underlying `reqwest` client (shared with [`crate::KitClient`] when built from it).
    #[must_use]
    pub fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    fn call_client(&self) -> OAuthHttp<'_> {
        OAuthHttp {
            client: &self.http,
            timeout: self.endpoints.request_timeout(),
            max_body: self.endpoints.max_response_bytes(),
            body: self.endpoints.token_body(),
            status: AtomicU16::new(0),
        }
    }

    fn client_secret(&self) -> &str {
        self.endpoints
            .client_secret()
            .map_or("", |s| s.expose_secret())
    }

    fn finish(
        &self,
        grant: &'static str,
        started: Instant,
        result: Result<KitTokenResponse, RequestTokenError<CallError, BasicErrorResponse>>,
        status: Option<u16>,
        secrets: &[&str],
    ) -> Result<TokenResponse, EndpointError> {
        let outcome = result
            .map_err(|e| map_token_error(e, status, secrets))
            .and_then(KitTokenResponse::into_core);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok(_) => tracing::debug!(grant, status, elapsed_ms, "token endpoint answered"),
            Err(error) => {
                tracing::warn!(grant, status, elapsed_ms, %error, "token endpoint failed");
            }
        }
        outcome
    }
}

/// Maps everything `oauth2` can report into the core's classification.
fn map_token_error(
    error: RequestTokenError<CallError, BasicErrorResponse>,
    status: Option<u16>,
    secrets: &[&str],
) -> EndpointError {
    match error {
        RequestTokenError::Request(CallError::Busy {
            status,
            retry_after,
        }) => EndpointError::Transient {
            retry_after,
            reason: format!("the token endpoint answered HTTP {status}"),
        },
        RequestTokenError::Request(CallError::Transport(t)) => transport_to_endpoint(&t),
        RequestTokenError::ServerResponse(response) => {
            let description = response.error_description().map_or_else(
                || response.error().to_string(),
                |d| excerpt(d.as_bytes(), secrets),
            );
            classify_oauth_error(response.error(), description, status)
        }
        RequestTokenError::Parse(e, body) => EndpointError::Protocol {
            status,
            excerpt: format!(
                "{} (parse error at {})",
                excerpt(&body, secrets),
                excerpt(e.path().to_string().as_bytes(), secrets)
            ),
        },
        RequestTokenError::Other(message) if status == Some(401) => {
            // RFC 6749 §5.2: a 401 from the token endpoint is client authentication failing,
            // even when the server sends no body.
            EndpointError::InvalidClient {
                description: excerpt(message.as_bytes(), secrets),
            }
        }
        RequestTokenError::Other(message) => EndpointError::Protocol {
            status,
            excerpt: excerpt(message.as_bytes(), secrets),
        },
    }
}

fn classify_oauth_error(
    error: &BasicErrorResponseType,
    description: String,
    status: Option<u16>,
) -> EndpointError {
    match error {
        BasicErrorResponseType::InvalidGrant => EndpointError::InvalidGrant { description },
        BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
            EndpointError::InvalidClient { description }
        }
        BasicErrorResponseType::Extension(code)
            if code == "temporarily_unavailable" || code == "server_error" =>
        {
            EndpointError::Transient {
                retry_after: None,
                reason: format!("the token endpoint answered {code}: {description}"),
            }
        }
        other => EndpointError::Protocol {
            status,
            excerpt: format!("{}: {description}", excerpt(other.as_ref().as_bytes(), &[])),
        },
    }
}

fn transport_to_endpoint(error: &TransportError) -> EndpointError {
    match error {
        TransportError::BodyTooLarge { status, .. } => EndpointError::Protocol {
            status: Some(*status),
            excerpt: error.to_string(),
        },
        TransportError::Build(_) => EndpointError::Protocol {
            status: None,
            excerpt: error.to_string(),
        },
        TransportError::Timeout(_) | TransportError::Connect(_) | TransportError::Network(_) => {
            EndpointError::Transient {
                retry_after: None,
                reason: error.to_string(),
            }
        }
    }
}

/// A non-success answer from the revoke endpoint, classified.
fn classify_raw_error(raw: &RawResponse, secrets: &[&str]) -> EndpointError {
    let status = raw.status.as_u16();
    if is_busy(raw.status) {
        return EndpointError::Transient {
            retry_after: raw.retry_after(),
            reason: format!("the endpoint answered HTTP {status}"),
        };
    }
    if let Ok(response) = serde_json::from_slice::<BasicErrorResponse>(&raw.body) {
        let description = response.error_description().map_or_else(
            || response.error().to_string(),
            |d| excerpt(d.as_bytes(), secrets),
        );
        return classify_oauth_error(response.error(), description, Some(status));
    }
    if status == 401 {
        return EndpointError::InvalidClient {
            description: format!("HTTP 401: {}", excerpt(&raw.body, secrets)),
        };
    }
    EndpointError::Protocol {
        status: Some(status),
        excerpt: excerpt(&raw.body, secrets),
    }
}

impl TokenEndpoint for KitOAuthClient {
    /// Always PKCE `S256` (also for confidential clients), `state`, `redirect_uri`,
    /// `response_type=code`, `client_id`; `scope` only when asked; `tenant_name` when set.
    fn authorize_url(&self, request: &AuthorizeRequest<'_>) -> Url {
        let state = oauth2::CsrfToken::new(request.state.expose_secret().to_owned());
        let mut authorize = self
            .oauth
            .authorize_url(move || state)
            // oauth2's PkceCodeChallenge is built only from a verifier; the port hands us the
            // challenge (the verifier stays with the pending install), so it goes in as-is.
            .add_extra_param("code_challenge", request.challenge.as_str().to_owned())
            .add_extra_param("code_challenge_method", PkceChallenge::METHOD);
        if let Some(scope) = request.scope {
            authorize = authorize.add_scope(Scope::new(scope.to_owned()));
        }
        if let Some(tenant) = request.tenant {
            authorize = authorize.add_extra_param("tenant_name", tenant.as_str().to_owned());
        }
        authorize.url().0
    }

    async fn exchange_code(
        &self,
        code: &AuthorizationCode,
        verifier: &PkceVerifier,
    ) -> Result<TokenResponse, EndpointError> {
        let started = Instant::now();
        let http = self.call_client();
        let result = self
            .oauth
            .exchange_code(oauth2::AuthorizationCode::new(
                code.expose_secret().to_owned(),
            ))
            .set_pkce_verifier(oauth2::PkceCodeVerifier::new(
                verifier.expose_secret().to_owned(),
            ))
            .request_async(&http)
            .await;
        let secrets = [
            code.expose_secret(),
            verifier.expose_secret(),
            self.client_secret(),
        ];
        self.finish(
            "authorization_code",
            started,
            result,
            http.status(),
            &secrets,
        )
    }

    async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenResponse, EndpointError> {
        let started = Instant::now();
        let http = self.call_client();
        let token = oauth2::RefreshToken::new(refresh_token.expose_secret().to_owned());
        let result = self
            .oauth
            .exchange_refresh_token(&token)
            .request_async(&http)
            .await;
        let secrets = [refresh_token.expose_secret(), self.client_secret()];
        self.finish("refresh_token", started, result, http.status(), &secrets)
    }

    /// Form-encoded as Kit documents, with `token_type_hint`.
    ///
    /// Built here rather than through `oauth2::Client::revoke_token`, which refuses any
    /// revocation URL that is not `https` (and so any loopback test server).
    async fn revoke(&self, token: RevocableToken<'_>) -> Result<(), EndpointError> {
        let (value, hint) = match token {
            RevocableToken::Access(t) => (t.expose_secret(), "access_token"),
            RevocableToken::Refresh(t) => (t.expose_secret(), "refresh_token"),
        };
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", value)
                .append_pair("token_type_hint", hint)
                .append_pair("client_id", self.endpoints.client_id().as_str());
            if let Some(secret) = self.endpoints.client_secret() {
                form.append_pair("client_secret", secret.expose_secret());
            }
            form.finish()
        };
        let request = self
            .http
            .post(self.endpoints.revoke_url().clone())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let secrets = [value, self.client_secret()];
        let raw = execute(
            request,
            self.endpoints.request_timeout(),
            self.endpoints.max_response_bytes(),
        )
        .await
        .map_err(|e| transport_to_endpoint(&e))?;
        if raw.status.is_success() {
            tracing::debug!(hint, status = raw.status.as_u16(), "token revoked");
            Ok(())
        } else {
            let error = classify_raw_error(&raw, &secrets);
            tracing::warn!(hint, status = raw.status.as_u16(), %error, "revoke failed");
            Err(error)
        }
    }
}

#[derive(Deserialize)]
struct AccountEnvelope {
    account: AccountBody,
}

#[derive(Deserialize)]
struct AccountBody {
    id: serde_json::Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    primary_email_address: Option<String>,
}

/// Parses `GET /v4/account`'s body into the core's account.
pub(crate) fn parse_account(body: &[u8], known: &[&str]) -> Result<KitAccount, String> {
    let envelope: AccountEnvelope = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{} ({})",
            excerpt(body, known),
            excerpt(e.to_string().as_bytes(), known)
        )
    })?;
    let id = match &envelope.account.id {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(KitAccountId::from)
            .ok_or_else(|| "account.id is not a non-negative integer".to_owned())?,
        serde_json::Value::String(s) => {
            KitAccountId::parse(s).map_err(|e| format!("account.id: {e}"))?
        }
        _ => return Err("account.id is neither a number nor a string".to_owned()),
    };
    Ok(KitAccount {
        id,
        name: envelope.account.name.unwrap_or_default(),
        primary_email: envelope.account.primary_email_address,
    })
}

/// Classifies an answer of `GET /v4/account`.
pub(crate) fn account_from_raw(
    raw: &RawResponse,
    known: &[&str],
) -> Result<KitAccount, LookupError> {
    let status = raw.status.as_u16();
    if raw.status.is_success() {
        return parse_account(&raw.body, known).map_err(|excerpt| LookupError::Protocol {
            status: Some(status),
            excerpt,
        });
    }
    if status == 401 {
        return Err(match classify_401(&raw.body, known) {
            Unauthorized::Expired => LookupError::TokenExpired,
            Unauthorized::Dead(message) => LookupError::Unauthorized { message },
        });
    }
    if is_busy(raw.status) {
        return Err(LookupError::Transient {
            retry_after: retry_after(&raw.headers),
            reason: format!("the account endpoint answered HTTP {status}"),
        });
    }
    Err(LookupError::Protocol {
        status: Some(status),
        excerpt: excerpt(&raw.body, known),
    })
}

impl AccountLookup for KitOAuthClient {
    async fn account(&self, access_token: &AccessToken) -> Result<KitAccount, LookupError> {
        let request = self
            .http
            .get(self.endpoints.account_url())
            .bearer_auth(access_token.expose_secret())
            .header(http::header::ACCEPT, "application/json");
        let known = [access_token.expose_secret()];
        let raw = execute(
            request,
            self.endpoints.request_timeout(),
            crate::api::DEFAULT_MAX_API_RESPONSE_BYTES,
        )
        .await
        .map_err(|e| match e {
            TransportError::BodyTooLarge { status, .. } => LookupError::Protocol {
                status: Some(status),
                excerpt: e.to_string(),
            },
            other => LookupError::Transient {
                retry_after: None,
                reason: other.to_string(),
            },
        })?;
        account_from_raw(&raw, &known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<KitTokenResponse, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn kit_token_response_is_lenient() -> Result<(), Box<dyn std::error::Error>> {
        let full = parse(
            r#"{"access_token":"a","token_type":"Bearer","expires_in":172800,
                "refresh_token":"r","scope":"public","created_at":1710270147,"id_token":"x"}"#,
        )?;
        assert_eq!(full.created_at(), Some(1_710_270_147));
        let core = full.into_core()?;
        assert_eq!(core.expires_in, Some(172_800));
        assert_eq!(core.scope.as_deref(), Some("public"));
        assert_eq!(
            core.refresh_token
                .map(|r| r.expose_secret().to_owned())
                .as_deref(),
            Some("r")
        );

        let lower = parse(r#"{"access_token":"a","token_type":"bearer","expires_in":"7200"}"#)?;
        let core = lower.into_core()?;
        assert_eq!(core.expires_in, Some(7200));
        assert_eq!(core.scope, None);
        assert_eq!(core.created_at, None);

        let bare = parse(r#"{"access_token":"a","scope":null,"token_type":null}"#)?;
        assert!(bare.into_core().is_ok());

        let mac = parse(r#"{"access_token":"a","token_type":"mac"}"#)?;
        assert!(matches!(
            mac.into_core(),
            Err(EndpointError::Protocol { .. })
        ));

        assert!(parse(r#"{"token_type":"bearer"}"#).is_err());
        assert!(parse(r#"{"access_token":"a","expires_in":-5}"#).is_err());
        Ok(())
    }

    /// Found by the `token_response` fuzz target: a derived `Deserialize` reads a struct from a
    /// JSON array of its fields in order, so `["tok"]` was a token response.
    #[test]
    fn only_a_json_object_is_a_token_response() -> Result<(), Box<dyn std::error::Error>> {
        for body in [
            r#"["tok"]"#,
            r#"["tok","bearer",7200,"r","public",1710270147]"#,
            "[]",
            r#""tok""#,
            "7200",
            "null",
            "true",
        ] {
            let error = match parse(body) {
                Ok(parsed) => panic!("{body} was read as a token response: {parsed:?}"),
                Err(error) => error,
            };
            assert!(error.is_data(), "{body}: {error}");
            assert!(
                error.to_string().contains("token response object"),
                "{error}"
            );
        }
        // The object form is read as before, and what it serializes to reads back the same.
        let parsed = parse(r#"{"access_token":"tok","expires_in":7200,"scope":"public"}"#)?;
        let again: KitTokenResponse = serde_json::from_str(&serde_json::to_string(&parsed)?)?;
        assert_eq!(again.access_token.secret(), "tok");
        assert_eq!(again.expires_in, Some(7200));
        assert_eq!(again.scope, parsed.scope);
        Ok(())
    }

    #[test]
    fn form_bodies_become_json_objects() -> Result<(), serde_json::Error> {
        let json = form_to_json(b"grant_type=refresh_token&refresh_token=a%2Bb&client_id=app");
        let v: serde_json::Value = serde_json::from_slice(&json)?;
        assert_eq!(v["grant_type"], "refresh_token");
        assert_eq!(v["refresh_token"], "a+b");
        assert_eq!(v["client_id"], "app");
        Ok(())
    }

    #[test]
    fn account_ids_number_or_string() -> Result<(), String> {
        let a = parse_account(
            br#"{"user":{"email":"x@y","id":1},"account":{"id":4817263,"name":"Acme","primary_email_address":"a@b.c"}}"#,
            &[],
        )?;
        assert_eq!(a.id.as_str(), "4817263");
        assert_eq!(a.primary_email.as_deref(), Some("a@b.c"));
        let b = parse_account(br#"{"account":{"id":"acct_1","name":"B"}}"#, &[])?;
        assert_eq!(b.id.as_str(), "acct_1");
        assert!(parse_account(br#"{"account":{"id":-1}}"#, &[]).is_err());
        assert!(parse_account(br#"{"account":{"id":[1]}}"#, &[]).is_err());
        assert!(parse_account(b"{", &[]).is_err());
        Ok(())
    }
}
