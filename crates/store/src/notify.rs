//! PostgreSQL change notifications: one `LISTEN` connection per store, fanned out to waiters.
//!
//! Triggers created by the second migration `NOTIFY` the connection id whenever a row's version
//! changes, its lease is released, or it is deleted (delivered at commit). Waiters subscribe
//! before they re-read the row, so a change between the read and the wait is never missed; a
//! periodic re-read covers notifications lost while the listener reconnects.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "postgres")]
use sea_orm::sqlx::PgPool;
#[cfg(feature = "postgres")]
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

#[cfg(feature = "postgres")]
use crate::error::cuts_off_sqlx;
#[cfg(feature = "postgres")]
use crate::migration::CHANGE_CHANNEL;
#[cfg(feature = "postgres")]
use crate::reachability::Reachability;

/// How often a waiter re-reads the row even without a notification.
pub(crate) const FALLBACK_POLL: Duration = Duration::from_millis(500);

/// The listener task and its fan-out channel; the task stops when the store is dropped.
pub(crate) struct Notifier {
    sender: broadcast::Sender<Arc<str>>,
    task: JoinHandle<()>,
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Notifier {
    /// Connects a dedicated listener and starts forwarding notifications.
    #[cfg(feature = "postgres")]
    pub(crate) async fn start(
        pool: PgPool,
        reachability: Arc<Reachability>,
    ) -> Result<Self, sea_orm::sqlx::Error> {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANGE_CHANNEL).await?;
        let (sender, _) = broadcast::channel(1024);
        let forward = sender.clone();
        let task = tokio::spawn(async move {
            loop {
                // `try_recv` says when the connection was lost (`Ok(None)`) and reconnects
                // (and re-LISTENs) on the next call; an error is a failed reconnect. Either
                // way the server went away, even for a process with no query running: an
                // outage for the lease takeover rule (`reachability`).
                match listener.try_recv().await {
                    Ok(Some(notification)) => {
                        let _ = forward.send(Arc::from(notification.payload()));
                    }
                    Ok(None) => {
                        reachability.cut_off();
                        tracing::warn!("change listener lost its connection; reconnecting");
                    }
                    Err(error) => {
                        if cuts_off_sqlx(&error) {
                            reachability.cut_off();
                        }
                        tracing::warn!(%error, "change listener could not reconnect; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Self { sender, task })
    }

    pub(crate) fn subscribe(&self) -> Subscription {
        Subscription(self.sender.subscribe())
    }
}

/// One waiter's view of the notifications.
pub(crate) struct Subscription(broadcast::Receiver<Arc<str>>);

impl Subscription {
    /// Resolves when `id` is notified, or when notifications may have been missed (the
    /// caller re-reads either way). Pends forever once the listener is gone: the caller's
    /// timeout turns that into a poll.
    pub(crate) async fn wait_for(&mut self, id: &str) {
        loop {
            match self.0.recv().await {
                Ok(payload) if &*payload == id => return,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}
