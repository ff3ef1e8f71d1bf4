//! # kit-oauth — Kit OAuth 2.0 for apps
//!
//! The facade app developers depend on. It wires the core's ports to the adapters and owns the
//! part every hand-written integration gets wrong: refreshing a rotating refresh token when
//! several callers, tasks or instances want a fresh token at once.
//!
//! - [`TokenManager`]: `access_token(&id)` from an in-memory cache on the hot path; when the
//!   token is due, exactly one refresh per connection — single-flight inside the process, a
//!   fenced lease in the database across processes — committed with a compare-and-swap before
//!   anyone sees it. `invalid_grant` ends a grant only through the same fenced swap; transient
//!   failures keep the tokens and cool down.
//! - [`InstallFlow`]: `begin` (validated Kit `redirect`, hashed single-use `state`, PKCE,
//!   browser binding) and `complete` (exactly-once consumption, code exchange, account lookup,
//!   upsert on (tenant, account)).
//! - [`Refresher`]: the background task that renews due tokens before anyone asks.
//! - Event sinks: [`BroadcastEvents`], [`TracingEvents`], [`FanOut`].

pub use kit_oauth_core as core;
pub use kit_oauth_http as http;
pub use kit_oauth_http::TokenBody;
pub use kit_oauth_store as store;

mod cache;
mod config;
mod declined;
mod early_retry;
mod error;
mod events;
mod facade;
mod fleet;
mod import;
mod install;
mod manager;
mod refresh;
mod refresher;
mod removal;
mod settings;
mod settle;
mod single_flight;
mod source;

pub use config::ManagerConfig;
pub use declined::Declined;
pub use error::{InstallError, ManagerError};
pub use events::{
    BroadcastEvents, FanOut, LeaseWaitOutcome, ObserverAlreadySet, RefreshObserver, RefreshOutcome,
    TracingEvents, set_refresh_observer,
};
pub use facade::{
    BuildError, Client, Endpoint, Install, KitOAuth, KitOAuthBuilder, Manager, Store,
    endpoints_from, key_ring_from,
};
pub use import::{ImportError, ImportOutcome, ImportRequest, Imported};
pub use install::{InstallFlow, InstallStarted, Installed};
pub use manager::{ConnectionStatus, IssuedToken, TokenManager};
pub use refresher::{
    DEFAULT_EVENT_RETENTION, MIN_EVENT_RETENTION, Refresher, RefresherConfig, RefresherHandle,
};
pub use removal::Removal;
pub use settings::{
    ConfigError, DEFAULT_BASE, DEFAULT_DATABASE_URL, EncryptionKeySetting, KitOAuthConfig,
    redact_url_password, vars,
};
