//! # kit-oauth-http — Kit's OAuth endpoints and API v4 over `oauth2` + `reqwest`
//!
//! The HTTP adapter for the ports of [`kit_oauth_core`]:
//!
//! - [`KitEndpoints`]: validated configuration of the authorize, token and revoke URLs, the
//!   token body encoding (JSON as Kit documents, or RFC 6749 form), client credentials,
//!   redirect URI and timeouts;
//! - [`KitOAuthClient`]: implements [`kit_oauth_core::TokenEndpoint`] (authorize URL with PKCE
//!   S256, code exchange, refresh, revoke) on the `oauth2` crate's typed client — extended with
//!   [`KitTokenResponse`] (Kit's `created_at`, lenient `token_type` and `scope`) and a custom
//!   async HTTP client (JSON bodies, capped responses, 429/5xx as transient) — and
//!   [`kit_oauth_core::AccountLookup`] (`GET /v4/account`);
//! - [`KitClient`]: the way apps call Kit's API v4, with tokens from a [`TokenSource`] and the
//!   retry rules of `docs/kit-protocol.md` §6, plus cursor pagination.
//!
//! Every failure maps into the core's classification ([`kit_oauth_core::EndpointError`],
//! [`kit_oauth_core::LookupError`]) or [`ApiError`]; none of them, and no log line, carries a
//! token, code, verifier or secret. All calls share one `reqwest` client per process (rustls,
//! redirects off, `User-Agent: kit-oauth-http/<version>`, HTTP/2 when offered, keep-alive).
//!
//! `examples/exchange_and_refresh.rs` runs a complete install, exchange and refresh against
//! the local `kit-sandbox`:
//!
//! ```sh
//! cargo run -p kit-oauth-http --example exchange_and_refresh
//! ```

#![warn(missing_docs)]

mod account;
mod api_error;
mod config;
pub mod fuzz_entry;
pub mod kit_api;
mod kit_client;
mod kit_errors;
mod oauth;
mod paginate;
mod redact;
mod request;
mod retry;
mod revoke;
mod token_http;
mod token_response;
mod token_source;
mod transport;

pub use api_error::ApiError;
pub use config::{
    ConfigError, DEFAULT_BASE_URL, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_OAUTH_RESPONSE_BYTES,
    DEFAULT_REQUEST_TIMEOUT, KitEndpoints, KitEndpointsBuilder, PathFamily, TokenBody,
};
pub use kit_client::{DEFAULT_MAX_API_RESPONSE_BYTES, KitClient};
pub use oauth::KitOAuthClient;
pub use paginate::{Page, Pagination, Paginator};
pub use request::{KitRequest, KitResponse};
pub use retry::RetryPolicy;
pub use token_response::KitTokenResponse;
pub use token_source::{ReauthReason, TokenSource, TokenSourceError};
pub use transport::{TransportError, USER_AGENT, shared_client};
