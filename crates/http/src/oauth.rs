//! [`KitOAuthClient`]: the core's [`TokenEndpoint`] and [`AccountLookup`] over the `oauth2`
//! crate's typed client, extended where Kit differs from RFC 6749.
//!
//! The extension points used: [`KitTokenResponse`] (`token_response`), a custom
//! `oauth2::TokenResponse`, and an `oauth2::AsyncHttpClient` (`token_http`). Revocation is in
//! `revoke`, the account lookup in `account`.

use std::sync::atomic::AtomicU16;
use std::time::Instant;

use kit_oauth_core::{
    AuthorizationCode, AuthorizeRequest, Clock as _, EndpointError, PkceChallenge, PkceVerifier,
    RefreshToken, RevocableToken, SystemClock, TokenEndpoint, TokenResponse,
};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse,
};
use oauth2::{
    AuthType, AuthUrl, EndpointNotSet, EndpointSet, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, TokenUrl,
};
use url::Url;

use crate::config::{ConfigError, KitEndpoints};
use crate::redact::excerpt;
use crate::token_http::{CallError, OAuthHttp};
use crate::token_response::KitTokenResponse;
use crate::transport::{TransportError, shared_client};

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

/// Kit's OAuth 2.0 endpoints over the `oauth2` crate and the shared `reqwest` client.
///
/// Implements [`TokenEndpoint`] (authorize URL, code exchange, refresh, revoke) and
/// [`AccountLookup`] (`GET /v4/account`). Cheap to clone.
#[derive(Clone)]
pub struct KitOAuthClient {
    pub(crate) endpoints: KitEndpoints,
    oauth: OAuth2Client,
    pub(crate) http: reqwest::Client,
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

    pub(crate) fn client_secret(&self) -> &str {
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
            Ok(response) => {
                tracing::debug!(grant, status, elapsed_ms, "token endpoint answered");
                warn_on_clock_skew(grant, response);
            }
            Err(error) => {
                tracing::warn!(grant, status, elapsed_ms, %error, "token endpoint failed");
            }
        }
        outcome
    }
}

/// Kit's clock disagreeing with ours by more than this is worth an operator's attention.
const CLOCK_SKEW_WARNING_SECS: i64 = 60;

/// Expiry counts from the response's arrival (see `TokenSet::from_response`), so a skewed Kit
/// clock costs nothing; it is still logged, as it may point at a wrong clock here.
fn warn_on_clock_skew(grant: &'static str, response: &TokenResponse) {
    if let Some(skew_secs) = response.clock_skew(SystemClock.now())
        && skew_secs.abs() > CLOCK_SKEW_WARNING_SECS
    {
        tracing::warn!(
            grant,
            skew_secs,
            "the token endpoint's created_at disagrees with the local clock by more than a \
             minute (positive: its clock is ahead); expiry counts from the local arrival time"
        );
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

pub(crate) fn classify_oauth_error(
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

pub(crate) fn transport_to_endpoint(error: &TransportError) -> EndpointError {
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

    /// Form-encoded as Kit documents, with `token_type_hint` (see `revoke.rs`).
    async fn revoke(&self, token: RevocableToken<'_>) -> Result<(), EndpointError> {
        self.revoke_token(token).await
    }
}
