//! # kit-oauth — Kit OAuth 2.0 for apps
//!
//! **Skeleton.** This is the facade app developers depend on. It will wire the core's ports to
//! the adapters and provide `TokenManager` (always-fresh access tokens, exactly one refresh per
//! connection across tasks and processes), `InstallFlow` (the install from Kit's App Store to
//! the callback), the background `Refresher` and event sinks.
//!
//! Today it re-exports the domain core so that the crate name is already the one apps use.

pub use kit_oauth_core as core;
