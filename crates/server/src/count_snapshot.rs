//! The connection counts behind `/metrics`, from a snapshot rather than on every scrape.
//!
//! Counting by state is one `COUNT … GROUP BY` (exact at any size), but at a million rows it
//! reads the whole table: ≈ 0.4–0.9 s on PostgreSQL (docs/benchmarks.md, "A million
//! connections"), four times the 100 ms a scrape may take. So, as exporters of expensive
//! collectors do, a scrape answers from the latest snapshot and, when that snapshot is older
//! than [`MAX_AGE`], starts a recount in the background (one at a time) for the next scrape.
//! Each snapshot is exact as of the moment it was counted; its age at the scrape is exported as
//! `kit_oauth_connection_counts_age_seconds`, and how long the count took as
//! `kit_oauth_connection_counts_duration_seconds`. Only the very first scrape of a process
//! (no snapshot yet) waits for the count. Nothing is counted while nobody scrapes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kit_oauth::core::StateName;
use kit_oauth::store::ConnectionCounts;

/// A snapshot older than this at a scrape is recounted (in the background) for the next one:
/// under Prometheus's usual 15 s interval, each scrape starts the count the next one reads.
pub const MAX_AGE: Duration = Duration::from_secs(10);

/// One count and when it was taken.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    counts: ConnectionCounts,
    taken: Instant,
    took: Duration,
}

#[derive(Debug, Default)]
struct Slot {
    latest: Option<Snapshot>,
    counting: bool,
}

/// The broker's snapshot of connection counts (one per router: the manager it counts).
#[derive(Debug, Clone, Default)]
pub struct CountSnapshot {
    slot: Arc<Mutex<Slot>>,
}

impl CountSnapshot {
    /// Sets the connection gauges for a scrape: from the latest snapshot, counting first only
    /// when there is none; a recount starts in the background when the snapshot is stale.
    pub async fn update_gauges(&self, manager: &kit_oauth::Manager) {
        let (latest, recount) = {
            let mut slot = self.lock();
            let stale = slot.latest.is_none_or(|s| s.taken.elapsed() >= MAX_AGE);
            let recount = stale && !slot.counting;
            if recount {
                slot.counting = true;
            }
            (slot.latest, recount)
        };
        let latest = match (latest, recount) {
            (Some(latest), true) => {
                let this = self.clone();
                let manager = manager.clone();
                tokio::spawn(async move { this.recount(&manager).await });
                Some(latest)
            }
            (Some(latest), false) => Some(latest),
            // The first scrape: nothing to answer with but a count of our own (or of the
            // count already running, which a concurrent first scrape started).
            (None, true) => self.recount(manager).await,
            (None, false) => None,
        };
        if let Some(snapshot) = latest {
            set_gauges(&snapshot);
        }
    }

    /// Counts, stores the snapshot, and clears the "counting" mark whatever happens. On a
    /// database error the previous snapshot stays (the gauges keep their values, the age grows).
    async fn recount(&self, manager: &kit_oauth::Manager) -> Option<Snapshot> {
        let started = Instant::now();
        let counted = manager
            .store()
            .connection_counts(manager.clock().now())
            .await;
        let mut slot = self.lock();
        slot.counting = false;
        match counted {
            Ok(counts) => {
                let snapshot = Snapshot {
                    counts,
                    taken: started,
                    took: started.elapsed(),
                };
                slot.latest = Some(snapshot);
                Some(snapshot)
            }
            Err(error) => {
                tracing::warn!(%error, "could not count connections for metrics");
                slot.latest
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        // The slot holds plain values: a panic elsewhere leaves nothing half-written.
        self.slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn set_gauges(snapshot: &Snapshot) {
    let counts = snapshot.counts;
    // A gauge is an f64: exact for any count below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let gauge = |count: u64| count as f64;
    for (name, count) in [
        (StateName::Authorized, counts.authorized),
        (StateName::Expired, counts.expired),
        (StateName::Unauthorized, counts.unauthorized),
    ] {
        metrics::gauge!("kit_oauth_connections", "state" => name.as_str()).set(gauge(count));
    }
    // `expired` is the manager's name for "inside the refresh margin or past expiry".
    metrics::gauge!("kit_oauth_tokens_due").set(gauge(counts.expired));
    metrics::gauge!("kit_oauth_connection_counts_age_seconds")
        .set(snapshot.taken.elapsed().as_secs_f64());
    metrics::gauge!("kit_oauth_connection_counts_duration_seconds")
        .set(snapshot.took.as_secs_f64());
}
