//! Single-flight inside one process: at most one refresh task per connection at a time, shared
//! by every caller that arrives while it runs.
//!
//! The work runs in its own spawned task, not in the first caller's future: a caller that gives
//! up (a dropped request, a timeout) must never cancel a refresh halfway, between Kit rotating
//! the refresh token and the store committing the new one.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};

use crate::error::ManagerError;

type Flight<T, Er> = Shared<BoxFuture<'static, Result<T, Er>>>;
type Flights<K, T, Er> = HashMap<K, (u64, Flight<T, Er>)>;

/// In-flight work by key (a connection id for refreshes, a callback for installs).
pub(crate) struct SingleFlight<K, T, Er = ManagerError> {
    flights: Arc<Mutex<Flights<K, T, Er>>>,
    next_generation: Arc<std::sync::atomic::AtomicU64>,
}

impl<K, T, Er> Default for SingleFlight<K, T, Er> {
    fn default() -> Self {
        Self {
            flights: Arc::default(),
            next_generation: Arc::default(),
        }
    }
}

impl<K, T, Er> Clone for SingleFlight<K, T, Er> {
    fn clone(&self) -> Self {
        Self {
            flights: Arc::clone(&self.flights),
            next_generation: Arc::clone(&self.next_generation),
        }
    }
}

/// Turns a failed task (a panic inside the work) into the flight's error type.
pub(crate) trait TaskFailed {
    fn task_failed(reason: String) -> Self;
}

impl TaskFailed for ManagerError {
    fn task_failed(reason: String) -> Self {
        Self::Unavailable {
            reason,
            retry_at: None,
        }
    }
}

impl<K, T, Er> SingleFlight<K, T, Er>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + Sync + 'static,
    Er: Clone + Send + Sync + TaskFailed + 'static,
{
    /// Joins the flight for `id`, or starts one with `work`.
    pub(crate) async fn run<F>(&self, id: &K, work: impl FnOnce() -> F) -> Result<T, Er>
    where
        F: Future<Output = Result<T, Er>> + Send + 'static,
    {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, flight)) = flights.get(id) {
                flight.clone()
            } else {
                let generation = self
                    .next_generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let registry = self.clone();
                let key = id.clone();
                let work = work();
                let task = tokio::spawn(async move {
                    let outcome = work.await;
                    // Leave the map before waking the waiters: a caller arriving from now on
                    // starts afresh (and normally finds the new token in the cache first).
                    registry.finish(&key, generation);
                    outcome
                });
                let flight = async move {
                    task.await.unwrap_or_else(|join| {
                        Err(Er::task_failed(format!("the task failed: {join}")))
                    })
                }
                .boxed()
                .shared();
                flights.insert(id.clone(), (generation, flight.clone()));
                flight
            }
        };
        flight.await
    }

    fn finish(&self, id: &K, generation: u64) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(id).is_some_and(|(g, _)| *g == generation) {
            flights.remove(id);
        }
    }

    /// How many flights are running.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit_oauth_core::{AccessToken, ConnectionId};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_run() {
        let flights: SingleFlight<ConnectionId, AccessToken> = SingleFlight::default();
        let runs = Arc::new(AtomicU32::new(0));
        let id = ConnectionId::parse("c").unwrap();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let flights = flights.clone();
            let runs = runs.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                flights
                    .run(&id, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Ok(AccessToken::new("t"))
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), AccessToken::new("t"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_dropped_caller_does_not_cancel_the_work() {
        let flights: SingleFlight<ConnectionId, AccessToken> = SingleFlight::default();
        let done = Arc::new(AtomicU32::new(0));
        let id = ConnectionId::parse("c").unwrap();
        let caller = {
            let flights = flights.clone();
            let done = done.clone();
            let id = id.clone();
            tokio::spawn(async move {
                flights
                    .run(&id, || async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        done.fetch_add(1, Ordering::SeqCst);
                        Ok(AccessToken::new("t"))
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        caller.abort();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0);
    }
}
