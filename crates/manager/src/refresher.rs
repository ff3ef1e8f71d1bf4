//! The background refresher: renews tokens before anyone asks, so the hot path stays hot.
//!
//! It claims due rows by the indexed `next_refresh_at` query, runs at most `concurrency`
//! refreshes at once and starts at most `rate_per_second` of them, and on shutdown finishes the
//! refreshes in flight (each commits or releases its lease) before returning. Every active
//! grant has a `next_refresh_at`, so grants nobody uses are renewed too and never lapse.
//! Each scan also deletes one bounded batch of audit-trail events past their retention: a
//! refresh adds a row, so without it the table grows forever.

use std::sync::Arc;
use std::time::Duration;

use kit_oauth_core::{AccountLookup, ConnectionStore, TokenEndpoint};
use rand::Rng as _;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::manager::TokenManager;

/// Pace of the background refresher.
#[derive(Debug, Clone)]
pub struct RefresherConfig {
    /// Pause between scans for due connections (jittered ±20 %).
    pub interval: Duration,
    /// Due connections claimed per scan.
    pub batch: u32,
    /// Refreshes running at once.
    pub concurrency: usize,
    /// Refreshes started per second, at most (a token bucket of one second's worth).
    pub rate_per_second: u32,
    /// How long audit-trail events are kept; never less than [`MIN_EVENT_RETENTION`].
    pub event_retention: Duration,
    /// Events deleted at most per scan, so retention never holds a long lock.
    pub event_purge_batch: u32,
}

/// The default audit-trail retention: 30 days.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The shortest retention honoured. The dashboard keeps its sign-out instant as an event, and
/// that instant must outlive every session it ended (12 h), so a day is the floor.
pub const MIN_EVENT_RETENTION: Duration = Duration::from_secs(24 * 3600);

impl Default for RefresherConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            batch: 200,
            concurrency: 16,
            rate_per_second: 50,
            event_retention: DEFAULT_EVENT_RETENTION,
            event_purge_batch: 1_000,
        }
    }
}

/// The background refresher of one instance.
#[derive(Debug)]
pub struct Refresher<E, S> {
    manager: TokenManager<E, S>,
    config: RefresherConfig,
}

/// A running refresher; [`RefresherHandle::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct RefresherHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RefresherHandle {
    /// Stops scanning, lets the refreshes in flight finish (committing or releasing their
    /// leases), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the refresher task failed");
        }
    }
}

impl<E, S> Refresher<E, S>
where
    E: TokenEndpoint + AccountLookup + 'static,
    S: ConnectionStore + 'static,
{
    /// A refresher for `manager`'s connections.
    #[must_use]
    pub fn new(manager: TokenManager<E, S>, config: RefresherConfig) -> Self {
        Self { manager, config }
    }

    /// Starts the refresher on the current `tokio` runtime.
    #[must_use]
    pub fn spawn(self) -> RefresherHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        RefresherHandle { stop, task }
    }

    /// Claims one batch of due connections and refreshes them; returns how many it started.
    /// Waits for them to finish. (The loop behind [`Self::spawn`], one turn of it.)
    pub async fn run_once(&self) -> usize {
        let (_keep, stopped) = watch::channel(false);
        let mut running = JoinSet::new();
        let started = self
            .scan(
                &mut running,
                &stopped,
                &Arc::new(Semaphore::new(self.config.concurrency)),
            )
            .await;
        while running.join_next().await.is_some() {}
        started
    }

    /// Deletes one batch of audit-trail events older than the retention; returns how many.
    pub async fn purge_events_once(&self) -> u64 {
        let inner = &self.manager.inner;
        let retention = self.config.event_retention.max(MIN_EVENT_RETENTION);
        let age = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let now = inner.clock.now().unix_millis();
        let before = kit_oauth_core::Timestamp::from_unix_millis(now.saturating_sub(age));
        match inner
            .store
            .purge_events_before(before, self.config.event_purge_batch)
            .await
        {
            Ok(removed) => {
                if removed > 0 {
                    tracing::debug!(removed, "old audit-trail events deleted");
                }
                removed
            }
            Err(error) => {
                tracing::warn!(%error, "could not delete old audit-trail events");
                0
            }
        }
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut running = JoinSet::new();
        loop {
            if *stopped.borrow() {
                break;
            }
            self.scan(&mut running, &stopped, &permits).await;
            self.purge_events_once().await;
            while running.try_join_next().is_some() {}
            let pause = self
                .config
                .interval
                .mul_f64(rand::rngs::OsRng.gen_range(0.8..=1.2));
            tokio::select! {
                _ = stopped.changed() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        while running.join_next().await.is_some() {}
    }

    async fn scan(
        &self,
        running: &mut JoinSet<()>,
        stopped: &watch::Receiver<bool>,
        permits: &Arc<Semaphore>,
    ) -> usize {
        let inner = &self.manager.inner;
        let due = match inner
            .store
            .list_due(inner.clock.now(), self.config.batch)
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(%error, "could not list due connections");
                return 0;
            }
        };
        let spacing = Duration::from_secs(1) / self.config.rate_per_second.max(1);
        let mut started = 0;
        for id in due {
            if *stopped.borrow() {
                break;
            }
            let Ok(permit) = Arc::clone(permits).acquire_owned().await else {
                break;
            };
            let manager = self.manager.clone();
            running.spawn(async move {
                if let Err(error) = manager.refresh_if_scheduled(&id).await {
                    tracing::debug!(connection = %id, %error, "scheduled refresh did not succeed");
                }
                drop(permit);
            });
            started += 1;
            tokio::time::sleep(spacing).await;
        }
        started
    }
}
