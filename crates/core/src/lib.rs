//! # kit-oauth-core — Kit's OAuth 2.0 flow as types
//!
//! The domain of kit-oauth with no I/O, no async runtime and no HTTP or SQL types: the
//! typestate [`Connection`], validated identifiers, secrets that never print, token sets and
//! their refresh margin, the Kit `redirect` allowlist, the callback parser, errors, and the
//! ports ([`TokenEndpoint`], [`AccountLookup`], [`ConnectionStore`], [`EventSink`], [`Clock`])
//! that the adapter crates implement.
//!
//! ## The whole happy path
//!
//! ```
//! use std::time::Duration;
//! use kit_oauth_core::*;
//!
//! let clock = ManualClock::new(Timestamp::from_unix_seconds(1_710_270_000));
//! let mut rng = rand_core::OsRng;
//!
//! // Kit sends the creator to the app's Authorization URL with `redirect`.
//! let kit_redirect = KitRedirect::parse(
//!     "https://app.kit.com/apps/1?success=true",
//!     &RedirectAllowlist::default(),
//! )?;
//!
//! // Unauthorized --begin--> Pending: a fresh state and PKCE verifier, 10 minutes to live.
//! let pending = Connection::<Unauthorized>::new(Some(TenantName::parse("acme")?)).begin(
//!     InstallStart {
//!         state: CsrfState::generate(&mut rng),
//!         verifier: PkceVerifier::generate(&mut rng),
//!         kit_redirect,
//!     },
//!     &clock,
//! );
//! let state = pending.csrf_state().expose_secret().to_owned();
//!
//! // Kit calls back with a code and the same state.
//! let callback = Callback::from_query(&format!("code=abc&state={state}"))?;
//! let grant = pending.callback(callback, &clock).map_err(|rejected| rejected.error)?;
//! assert_eq!(grant.code().expose_secret(), "abc");
//!
//! // The HTTP adapter exchanges `grant.code()` with `grant.verifier()`; Kit answers:
//! let tokens = TokenSet::from_response(
//!     TokenResponse {
//!         access_token: AccessToken::new("at-1"),
//!         refresh_token: Some(RefreshToken::new("rt-1")),
//!         expires_in: Some(7200),
//!         created_at: Some(1_710_270_000),
//!         scope: Some("public".into()),
//!     },
//!     clock.now(),
//!     None,
//! )?;
//! let account = KitAccount { id: KitAccountId::from(42), name: "Acme".into(), primary_email: None };
//! let id = ConnectionId::generate(&mut rng);
//!
//! // Pending --complete--> Authorized.
//! let authorized = grant.authorize(id, account, tokens);
//! assert_eq!(authorized.access_token(&clock)?.expose_secret(), "at-1");
//!
//! // Time passes into the refresh margin: Authorized --clock--> Expired.
//! clock.advance(Duration::from_secs(7200 - 600));
//! let Freshness::Due(expired) = authorized.observe(&clock) else { unreachable!() };
//! assert_eq!(expired.refresh_token().expose_secret(), "rt-1");
//!
//! // Expired --refreshed--> Authorized, with rotated tokens (a `Renewed`: the evidence a
//! // refresh commit asks for, read as the connection it holds).
//! let renewed = TokenSet::from_response(
//!     TokenResponse {
//!         access_token: AccessToken::new("at-2"),
//!         refresh_token: Some(RefreshToken::new("rt-2")),
//!         expires_in: Some(7200),
//!         created_at: None,
//!         scope: None,
//!     },
//!     clock.now(),
//!     None,
//! )?;
//! let authorized = expired.refreshed(renewed).into_connection();
//! assert_eq!(authorized.access_token(&clock)?.expose_secret(), "at-2");
//!
//! // Authorized --revoke--> Unauthorized.
//! let gone = authorized.revoke();
//! assert_eq!(gone.reason(), &UnauthorizedReason::Revoked);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Forbidden transitions do not compile; `tests/compile_fail/` proves it.

#![warn(missing_docs)]

pub mod any;
pub mod callback;
pub mod clock;
pub mod error;
pub mod event;
pub mod flow;
pub mod ids;
pub mod ports;
pub mod redirect;
pub mod restore;
pub mod secret;
pub mod store;
pub mod token;
pub mod writes;

pub use any::StateName;
pub use callback::Callback;
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{
    CallbackError, EndpointError, IdError, LookupError, RedirectError, RefreshError, SecretError,
    StoreError, TokenError,
};
pub use event::{Event, EventId, EventKind, EventSink, NoEvents};
pub use flow::{
    Authorized, CallbackRejected, CodeGrant, Connection, Due, Expired, Freshness, Granted,
    HoldsGrant, InstallStart, KitAccount, PENDING_TTL, Pending, Removed, Renewed, TokenDue,
    Unauthorized, UnauthorizedReason, UnusableAnswer,
};
pub use ids::{ClientId, ConnectionId, KitAccountId, TenantName};
pub use ports::{AccountLookup, AuthorizeRequest, RevocableToken, TokenEndpoint};
pub use redirect::{DEFAULT_REDIRECT_PREFIX, KitRedirect, RedirectAllowlist};
pub use restore::{ConnectionStoreExt, ConsumedPending, PendingTake, Restore, StoredConnection};
pub use secret::{
    AccessToken, AuthorizationCode, ClientSecret, CsrfState, PkceChallenge, PkceVerifier, REDACTED,
    RefreshToken, Sha256Hash, constant_time_eq,
};
pub use store::{
    ConnectionRecord, ConnectionStore, Grant, InFlight, Lease, LeaseOutcome, LeaseOwner, ListQuery,
    PendingRecord, RefreshHealth, Version,
};
pub use token::{Jitter, NoJitter, TokenResponse, TokenSet, refresh_margin};
pub use writes::{Installed, Settled, SettledRow};

/// Re-exported so adapters and apps use the same `Url` type the ports speak.
pub use url::Url;
