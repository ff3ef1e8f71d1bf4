//! Event sinks: an in-memory broadcast for apps and tests, and `tracing`.

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
