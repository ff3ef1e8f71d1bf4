//! # kit-oauth-store — durable, encrypted storage on sea-orm
//!
//! **Skeleton.** This crate will hold the storage adapter for `kit_oauth_core::ConnectionStore`:
//! sea-orm entities and forward-only migrations for SQLite (the embedded default) and PostgreSQL
//! (several instances sharing one database), AES-256-GCM encryption of tokens at rest with a key
//! ring, single-use pending authorizations, compare-and-swap writes on a version column, and
//! refresh leases with an owner and a fencing counter.
