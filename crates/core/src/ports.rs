//! Ports to the authorization server: the traits the HTTP adapter implements.
//!
//! # Why `-> impl Future + Send` rather than `async fn` or boxed futures
//! The adapters are picked at compile time (the facade's features choose them), so static
//! dispatch costs nothing and allocates nothing per call. Spelling the return type as
//! `impl Future<Output = …> + Send` (instead of a bare `async fn`) lets generic callers spawn
//! the future on a multi-threaded runtime: a bare `async fn` in a public trait cannot promise
//! `Send`. Implementors still write `async fn` bodies. When a caller needs `dyn`, a thin
//! boxing wrapper over one of these traits is a dozen lines in the crate that needs it.

use std::future::Future;

use url::Url;

use crate::error::{EndpointError, LookupError};
use crate::flow::KitAccount;
use crate::ids::TenantName;
use crate::secret::{
    AccessToken, AuthorizationCode, CsrfState, PkceChallenge, PkceVerifier, RefreshToken,
};
use crate::token::TokenResponse;

/// What goes on an authorize request besides the client's own configuration.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizeRequest<'a> {
    /// The install's `state`.
    pub state: &'a CsrfState,
    /// The PKCE challenge (always `S256`).
    pub challenge: &'a PkceChallenge,
    /// The app's tenant, sent as Kit's `tenant_name`.
    pub tenant: Option<&'a TenantName>,
    /// `Some("public")` to send a scope; Kit's only scope is `public` and it is optional.
    pub scope: Option<&'a str>,
}

/// A token to revoke, with its `token_type_hint`.
#[derive(Debug, Clone, Copy)]
pub enum RevocableToken<'a> {
    /// An access token (`token_type_hint=access_token`).
    Access(&'a AccessToken),
    /// A refresh token (`token_type_hint=refresh_token`); revoking it kills the grant.
    Refresh(&'a RefreshToken),
}

/// Kit's OAuth 2.0 endpoints (or any RFC 6749 server's).
pub trait TokenEndpoint: Send + Sync {
    /// The URL to send the browser to for consent.
    fn authorize_url(&self, request: &AuthorizeRequest<'_>) -> Url;

    /// Redeems an authorization code (with the PKCE verifier, and the client secret for
    /// confidential clients).
    fn exchange_code(
        &self,
        code: &AuthorizationCode,
        verifier: &PkceVerifier,
    ) -> impl Future<Output = Result<TokenResponse, EndpointError>> + Send;

    /// Spends a refresh token for a new token pair. The refresh token sent is spent whatever
    /// the outcome, including a lost response: the caller must never send it again unless the
    /// server documents a grace window.
    fn refresh(
        &self,
        refresh_token: &RefreshToken,
    ) -> impl Future<Output = Result<TokenResponse, EndpointError>> + Send;

    /// Revokes a token (and with it the grant). Succeeds for unknown tokens, as RFC 7009 says.
    fn revoke(
        &self,
        token: RevocableToken<'_>,
    ) -> impl Future<Output = Result<(), EndpointError>> + Send;
}

/// Who owns an access token (`GET /v4/account`).
pub trait AccountLookup: Send + Sync {
    /// The account behind `access_token`.
    fn account(
        &self,
        access_token: &AccessToken,
    ) -> impl Future<Output = Result<KitAccount, LookupError>> + Send;
}
