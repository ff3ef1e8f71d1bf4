//! Events: fired on state transitions only, each with an idempotency id.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{ConnectionId, KitAccountId, TenantName};

/// A unique event id: receivers use it to drop duplicates of a retried delivery.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// A fresh random id (`evt_` + 16 random bytes, base64url).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        Self(format!("evt_{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What happened to a connection. Never carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// An install (or reinstall) completed.
    Authorized,
    /// The tokens were refreshed.
    Refreshed {
        /// The new expiry.
        expires_at: Timestamp,
    },
    /// A refresh failed for a reason that may pass (the grant is still alive).
    RefreshFailed {
        /// What went wrong, without secrets.
        reason: String,
        /// Consecutive failures so far.
        failures: u32,
    },
    /// Kit no longer accepts the grant: the creator must reinstall.
    ReauthRequired {
        /// What Kit said, without secrets.
        reason: String,
    },
    /// The grant was revoked.
    Revoked,
    /// The connection was deleted while Kit refused (or could not be reached) to revoke its
    /// grant: Kit was not told, and the grant lives there until the creator uninstalls the app.
    RemovedWithoutRevoke {
        /// Why Kit did not revoke, without secrets.
        reason: String,
    },
}

impl EventKind {
    /// The event's name (`"refreshed"`, …), for metrics and webhook headers.
    #[must_use]
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Authorized => "authorized",
            Self::Refreshed { .. } => "refreshed",
            Self::RefreshFailed { .. } => "refresh_failed",
            Self::ReauthRequired { .. } => "reauth_required",
            Self::Revoked => "revoked",
            Self::RemovedWithoutRevoke { .. } => "removed_without_revoke",
        }
    }
}

/// One event about one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Idempotency id.
    pub id: EventId,
    /// When it happened.
    pub at: Timestamp,
    /// The connection.
    pub connection: ConnectionId,
    /// Its tenant.
    pub tenant: Option<TenantName>,
    /// Its Kit account.
    pub account: Option<KitAccountId>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Where events go (a broadcast channel, `tracing`, webhooks).
///
/// Synchronous and non-blocking on purpose: emitting happens inside the refresh path, which
/// must not wait on a slow subscriber. Sinks that do I/O queue and deliver elsewhere.
pub trait EventSink: Send + Sync {
    /// Hands over one event. Must not block.
    fn emit(&self, event: &Event);
}

impl<T: EventSink + ?Sized> EventSink for std::sync::Arc<T> {
    fn emit(&self, event: &Event) {
        (**self).emit(event);
    }
}

/// Drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &Event) {}
}
