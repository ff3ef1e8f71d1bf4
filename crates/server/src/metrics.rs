//! Prometheus metrics: HTTP requests by route and status, connection events (refresh
//! outcomes), refresh latency and lease waits (from the manager's [`RefreshObserver`]),
//! connections by state and tokens due (from `count_snapshot`), webhook outcomes.
//!
//! The exporter keeps every histogram sample in an unbounded list until an "upkeep" folds the
//! samples into their buckets; `render()` does one, but nothing else does unless someone runs it
//! (`build_recorder` starts no upkeep task, unlike the exporter's `build`/`install`). A broker
//! that nobody scrapes keeps every HTTP request's and every refresh's latency sample for ever:
//! ~16 bytes each (a 1,040-byte block per 64 samples, measured with heaptrack), which was the
//! RSS growth of the 10-minute soak (docs/benchmarks.md). So [`handle`] starts a thread that
//! runs the upkeep every [`UPKEEP_INTERVAL`].

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use kit_oauth::core::{Event, EventKind, EventSink};
use kit_oauth::{LeaseWaitOutcome, RefreshObserver, RefreshOutcome};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often the histogram samples recorded since the last upkeep are folded into buckets (the
/// exporter's own default for the task its `build` starts).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The name of the thread that runs [`upkeep`] (at most 15 bytes: Linux's thread-name limit).
pub const UPKEEP_THREAD: &str = "metrics-upkeep";

/// The process's Prometheus recorder, installed on first use, with its upkeep thread. `None`
/// when another recorder was installed first (an embedding app's own): then `/metrics` says so.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            spawn_upkeep();
            Some(handle)
        })
        .as_ref()
}

/// Folds the histogram samples recorded so far into their buckets, freeing them. Runs every
/// [`UPKEEP_INTERVAL`] on its own thread (and on every scrape); public for tests.
pub fn upkeep() {
    if let Some(handle) = handle() {
        handle.run_upkeep();
    }
}

/// A plain thread rather than a task: the recorder is process-wide and may be installed
/// before, or outside, any Tokio runtime (an embedding app, a test).
fn spawn_upkeep() {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.to_owned())
        .spawn(|| {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "metrics upkeep thread not started: histograms grow until scraped");
    }
}

fn describe() {
    metrics::describe_counter!(
        "kit_oauth_http_requests_total",
        "HTTP requests by route and status"
    );
    metrics::describe_histogram!(
        "kit_oauth_http_request_duration_seconds",
        "HTTP request latency by route"
    );
    metrics::describe_counter!(
        "kit_oauth_events_total",
        "connection events by kind (refreshed, refresh_failed, reauth_required, …)"
    );
    metrics::describe_counter!(
        "kit_oauth_refreshes_total",
        "refreshes by outcome (ok, transient_failure, reauth_required)"
    );
    metrics::describe_histogram!(
        "kit_oauth_api_refresh_duration_seconds",
        "latency of refreshes forced through the API and dashboard"
    );
    metrics::describe_histogram!(
        "kit_oauth_refresh_duration_seconds",
        "refresh latency by outcome: Kit's token endpoint call until the outcome is committed"
    );
    metrics::describe_counter!(
        "kit_oauth_lease_waits_total",
        "waits for a refresh lease held by another worker, by outcome (woke, gave_up)"
    );
    metrics::describe_histogram!(
        "kit_oauth_lease_wait_seconds",
        "how long each wait for another worker's refresh lease lasted"
    );
    metrics::describe_gauge!("kit_oauth_connections", "connections by state");
    metrics::describe_gauge!(
        "kit_oauth_tokens_due",
        "active connections whose token is inside its refresh margin"
    );
    metrics::describe_gauge!(
        "kit_oauth_connection_counts_age_seconds",
        "age of the snapshot the connection gauges come from (recounted when older than 10 s)"
    );
    metrics::describe_gauge!(
        "kit_oauth_connection_counts_duration_seconds",
        "how long the database took to count the connections of that snapshot"
    );
    metrics::describe_counter!(
        "kit_oauth_webhook_deliveries_total",
        "webhook delivery attempts by outcome"
    );
    metrics::describe_counter!("kit_oauth_installs_total", "install callbacks by outcome");
}

/// Counts every request by matched route (never the raw path: ids would explode the labels).
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(
        "kit_oauth_http_requests_total",
        "route" => route.clone(),
        "method" => method,
        "status" => status
    )
    .increment(1);
    metrics::histogram!("kit_oauth_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// An [`EventSink`] that counts events (and refresh outcomes) in metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsEvents;

impl EventSink for MetricsEvents {
    fn emit(&self, event: &Event) {
        let _ = handle();
        metrics::counter!("kit_oauth_events_total", "kind" => event.kind.name()).increment(1);
        let outcome = match &event.kind {
            EventKind::Refreshed { .. } => Some("ok"),
            EventKind::RefreshFailed { .. } => Some("transient_failure"),
            EventKind::ReauthRequired { .. } => Some("reauth_required"),
            EventKind::Authorized | EventKind::Revoked | EventKind::RemovedWithoutRevoke { .. } => {
                None
            }
        };
        if let Some(outcome) = outcome {
            metrics::counter!("kit_oauth_refreshes_total", "outcome" => outcome).increment(1);
        }
    }
}

/// Installs the Prometheus recorder and the manager's process-wide [`RefreshObserver`] (once;
/// an observer installed earlier by an embedding app is kept).
pub fn install() {
    if handle().is_some() && kit_oauth::set_refresh_observer(MetricsObserver).is_err() {
        tracing::debug!("a refresh observer was already installed; keeping it");
    }
}

/// Records the manager's refresh timings and lease waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsObserver;

impl RefreshObserver for MetricsObserver {
    fn refresh_finished(&self, outcome: RefreshOutcome, elapsed: std::time::Duration) {
        metrics::histogram!("kit_oauth_refresh_duration_seconds", "outcome" => outcome.name())
            .record(elapsed.as_secs_f64());
    }

    fn lease_waited(&self, outcome: LeaseWaitOutcome, waited: std::time::Duration) {
        metrics::counter!("kit_oauth_lease_waits_total", "outcome" => outcome.name()).increment(1);
        metrics::histogram!("kit_oauth_lease_wait_seconds").record(waited.as_secs_f64());
    }
}
