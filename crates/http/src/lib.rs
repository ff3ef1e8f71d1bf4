//! # kit-oauth-http — Kit's OAuth endpoints and API v4 over `oauth2` + `reqwest`
//!
//! **Skeleton.** This crate will hold the HTTP adapter for the core's ports:
//!
//! - `KitEndpoints`: validated configuration of the authorize, token and revoke URLs, the token
//!   body encoding (JSON as Kit documents, or RFC 6749 form), client credentials and timeouts;
//! - an implementation of `kit_oauth_core::TokenEndpoint` (authorize URL with PKCE S256, code
//!   exchange, refresh, revoke) built on the `oauth2` crate's typed client, extended where Kit
//!   differs from RFC 6749 (JSON bodies, `created_at`, lenient `token_type`);
//! - an implementation of `kit_oauth_core::AccountLookup` (`GET /v4/account`);
//! - `KitClient`, the way apps call Kit's API v4 with the retry rules of `kit-protocol.md`.
//!
//! Every failure maps into `kit_oauth_core::RefreshError`'s classification.
