//! Event sinks: an in-memory broadcast for apps and tests, and `tracing`; and the process-wide
//! [`RefreshObserver`] that learns refresh latencies and lease waits (for metrics).

use std::sync::Arc;

use kit_oauth_core::{Event, EventSink};
use tokio::sync::broadcast;

/// Publishes events on a `tokio` broadcast channel; slow subscribers lose the oldest events
/// (and are told how many) rather than slowing the refresh path.
#[derive(Debug, Clone)]
pub struct BroadcastEvents {
    sender: broadcast::Sender<Event>,
}

impl BroadcastEvents {
    /// A channel keeping up to `capacity` undelivered events per subscriber.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// A new subscriber, receiving events from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.sender.subscribe()
    }
}

impl Default for BroadcastEvents {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl EventSink for BroadcastEvents {
    fn emit(&self, event: &Event) {
        // No subscriber is not an error: events are optional for apps.
        let _ = self.sender.send(event.clone());
    }
}

/// Logs each event at `info` (failures at `warn`), with no secret in any field.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingEvents;

impl EventSink for TracingEvents {
    fn emit(&self, event: &Event) {
        let tenant = event
            .tenant
            .as_ref()
            .map(kit_oauth_core::TenantName::as_str);
        match &event.kind {
            kit_oauth_core::EventKind::RefreshFailed { reason, failures } => tracing::warn!(
                event_id = %event.id, connection = %event.connection, tenant, failures,
                reason = %reason, "refresh failed"
            ),
            kit_oauth_core::EventKind::ReauthRequired { reason } => tracing::warn!(
                event_id = %event.id, connection = %event.connection, tenant,
                reason = %reason, "connection needs reinstall"
            ),
            kind => tracing::info!(
                event_id = %event.id, connection = %event.connection, tenant,
                event = kind.name(), "connection event"
            ),
        }
    }
}

/// Sends every event to several sinks.
#[derive(Clone, Default)]
pub struct FanOut {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl FanOut {
    /// No sinks yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    #[must_use]
    pub fn with(mut self, sink: impl EventSink + 'static) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }
}

impl EventSink for FanOut {
    fn emit(&self, event: &Event) {
        for sink in &self.sinks {
            sink.emit(event);
        }
    }
}

impl std::fmt::Debug for FanOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FanOut({} sinks)", self.sinks.len())
    }
}

/// How one refresh attempt under a lease (one call to Kit's token endpoint) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefreshOutcome {
    /// New tokens were committed.
    Refreshed,
    /// A transient failure (network, 5xx, 429, an unexpected answer, or the database while
    /// committing): the grant is alive and cools down.
    TransientFailure,
    /// Kit refused the client's credentials (`invalid_client`): a configuration problem.
    InvalidClient,
    /// `invalid_grant` on a grant nobody else rotated: the creator must reinstall.
    ReauthRequired,
    /// `invalid_grant` because another worker rotated the grant first: its tokens are used.
    Superseded,
}

impl RefreshOutcome {
    /// A stable label for metrics (`"refreshed"`, `"transient_failure"`, …).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Refreshed => "refreshed",
            Self::TransientFailure => "transient_failure",
            Self::InvalidClient => "invalid_client",
            Self::ReauthRequired => "reauth_required",
            Self::Superseded => "superseded",
        }
    }
}

/// How one wait for a refresh lease held by another worker (usually another instance) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LeaseWaitOutcome {
    /// The wait ended (the row changed, or one wait slice passed) and the caller looks again.
    Woke,
    /// The caller gave up after `ManagerConfig::wait_timeout` (it gets `Unavailable`).
    GaveUp,
}

impl LeaseWaitOutcome {
    /// A stable label for metrics (`"woke"`, `"gave_up"`).
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Woke => "woke",
            Self::GaveUp => "gave_up",
        }
    }
}

/// Timings of the refresh protocol, for metrics. Events say *what* happened to a connection;
/// an observer learns *how long* refreshes take and how often callers queue behind a lease,
/// which no event carries.
///
/// Called on the refresh path (never on the cached hot path): implementations must be cheap
/// and must not block (record into a metrics registry, nothing more).
pub trait RefreshObserver: Send + Sync {
    /// One refresh attempt under a lease finished: from the call to Kit's token endpoint to the
    /// outcome being settled (tokens committed, cooldown recorded, or the grant ended).
    fn refresh_finished(&self, outcome: RefreshOutcome, elapsed: std::time::Duration) {
        let _ = (outcome, elapsed);
    }

    /// A caller waited for another worker's lease. `waited` is this wait's length (for
    /// [`LeaseWaitOutcome::GaveUp`]: the whole time the caller spent waiting).
    fn lease_waited(&self, outcome: LeaseWaitOutcome, waited: std::time::Duration) {
        let _ = (outcome, waited);
    }
}

/// The process's observer. Process-wide on purpose, like a `tracing` subscriber or a `metrics`
/// recorder: metrics registries are process-wide too, and every manager in the process reports
/// to the same one without each builder having to be told.
static OBSERVER: std::sync::OnceLock<Arc<dyn RefreshObserver>> = std::sync::OnceLock::new();

/// [`set_refresh_observer`] was called before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a refresh observer is already installed in this process")]
pub struct ObserverAlreadySet;

/// Installs the process's [`RefreshObserver`] (once; later calls fail and change nothing).
///
/// # Errors
/// [`ObserverAlreadySet`] when one is installed already.
pub fn set_refresh_observer(
    observer: impl RefreshObserver + 'static,
) -> Result<(), ObserverAlreadySet> {
    OBSERVER
        .set(Arc::new(observer))
        .map_err(|_| ObserverAlreadySet)
}

pub(crate) fn observe_refresh(outcome: RefreshOutcome, elapsed: std::time::Duration) {
    if let Some(observer) = OBSERVER.get() {
        observer.refresh_finished(outcome, elapsed);
    }
}

pub(crate) fn observe_lease_wait(outcome: LeaseWaitOutcome, waited: std::time::Duration) {
    if let Some(observer) = OBSERVER.get() {
        observer.lease_waited(outcome, waited);
    }
}
