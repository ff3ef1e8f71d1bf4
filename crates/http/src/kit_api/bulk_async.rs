//! Bulk requests above 100 items, as futures (docs/kit-api-v4.md §9): Kit answers 202 and
//! later POSTs the result to `callback_url`, unsigned as far as its docs say. So each request
//! gets its own callback URL ending in an unguessable id (32 random bytes); the app's HTTP route
//! for that URL hands the body to [`BulkCallbacks::deliver`], which resolves the one waiting
//! future. Nothing else can complete it, and an id works once.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::RngCore as _;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;
use tokio::sync::oneshot;

use super::{BulkOutcome, BulkResult};

/// Why a queued bulk request produced no result.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BulkWaitError {
    /// Kit's callback did not arrive in time (the request may still complete later; its id is
    /// forgotten, so a late callback is refused).
    #[error("Kit's bulk callback did not arrive within {0:?}")]
    TimedOut(Duration),
    /// The callback arrived but its body is not the endpoint's result.
    #[error("Kit's bulk callback has an unexpected body: {0}")]
    Malformed(String),
    /// The registry was dropped before the callback arrived.
    #[error("the bulk callback registry is gone")]
    Closed,
}

/// The callbacks an app is waiting for. Share one per process (clone the `Arc`).
#[derive(Debug)]
pub struct BulkCallbacks {
    base_url: String,
    pending: Mutex<HashMap<String, oneshot::Sender<Value>>>,
}

/// One expected callback: the URL to give Kit and the future of its body.
#[derive(Debug)]
pub struct PendingBulk {
    id: String,
    callback_url: String,
    rx: oneshot::Receiver<Value>,
    owner: Arc<BulkCallbacks>,
}

impl BulkCallbacks {
    /// Callbacks are expected at `base_url` + `/` + id, e.g. `https://app.example/kit/bulk`.
    #[must_use]
    pub fn new(base_url: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            pending: Mutex::new(HashMap::new()),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new expected callback.
    #[must_use]
    pub fn expect(self: &Arc<Self>) -> PendingBulk {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let id = bytes.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        });
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id.clone(), tx);
        PendingBulk {
            callback_url: format!("{}/{id}", self.base_url),
            id,
            rx,
            owner: self.clone(),
        }
    }

    /// Hands a callback's body to its waiting future; `false` for an unknown, spent or
    /// abandoned id (answer such a request 404).
    pub fn deliver(&self, id: &str, body: Value) -> bool {
        match self.pending().remove(id) {
            Some(tx) => tx.send(body).is_ok(),
            None => false,
        }
    }

    /// Callbacks still expected.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pending().len()
    }

    /// Whether no callback is expected.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PendingBulk {
    /// The URL to send as `callback_url`.
    #[must_use]
    pub fn callback_url(&self) -> &str {
        &self.callback_url
    }

    /// Waits for the callback's body.
    ///
    /// # Errors
    /// [`BulkWaitError::TimedOut`] (the id is then forgotten), [`BulkWaitError::Closed`].
    pub async fn wait(self, timeout: Duration) -> Result<Value, BulkWaitError> {
        let Self { id, rx, owner, .. } = self;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(_)) => Err(BulkWaitError::Closed),
            Err(_) => {
                owner.pending().remove(&id);
                Err(BulkWaitError::TimedOut(timeout))
            }
        }
    }

    /// The result of a bulk call made with [`PendingBulk::callback_url`]: at once when Kit
    /// processed it synchronously, else when the callback arrives. `key` is the endpoint's
    /// result list (`subscribers`, `tags`, …; `None` for the delete endpoints).
    ///
    /// # Errors
    /// As [`PendingBulk::wait`], and [`BulkWaitError::Malformed`].
    pub async fn resolve<T: DeserializeOwned>(
        self,
        outcome: BulkOutcome<BulkResult<T>>,
        key: Option<&str>,
        timeout: Duration,
    ) -> Result<BulkResult<T>, BulkWaitError> {
        match outcome {
            BulkOutcome::Done(result) => {
                self.owner.pending().remove(&self.id);
                Ok(result)
            }
            BulkOutcome::Queued => {
                let body = self.wait(timeout).await?;
                BulkResult::from_value(body, key).map_err(BulkWaitError::Malformed)
            }
        }
    }
}
