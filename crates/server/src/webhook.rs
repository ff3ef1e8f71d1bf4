//! Webhooks: every connection event POSTed to `KIT_OAUTH_WEBHOOK_URL`, signed
//! `X-Kit-OAuth-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`, with the event id as an
//! idempotency key, retried with jittered exponential backoff. With the sign-in hook on, an
//! `installed_by_user` delivery also tells the app which of its users completed an install.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use kit_oauth::core::{Event, EventId, EventSink, Url};
use rand::Rng as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "x-kit-oauth-signature";
/// The idempotency header (the event id; the same on every retry).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The event name header.
pub const EVENT_HEADER: &str = "x-kit-oauth-event";
/// Events waiting for delivery at most; beyond it new events are dropped (and counted).
const QUEUE: usize = 10_000;

/// Where and how to deliver.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The receiver.
    pub url: Url,
    /// The signing secret.
    pub secret: SecretString,
    /// Attempts per event (first try included).
    pub attempts: u32,
    /// The first retry's delay; doubles each time.
    pub backoff: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url.as_str())
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// Five attempts, 1 s first backoff, 8 at once.
    #[must_use]
    pub fn new(url: Url, secret: SecretString) -> Self {
        Self {
            url,
            secret,
            attempts: 5,
            backoff: Duration::from_secs(1),
            concurrency: 8,
        }
    }
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<unix>.<body>")>`.
#[must_use]
pub fn sign(secret: &str, unix: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; the `else` is never taken.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return format!("t={unix},v1=");
    };
    mac.update(unix.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// One payload to deliver: the id (idempotency key), the name and the JSON body.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    name: &'static str,
    body: Vec<u8>,
}

/// The [`EventSink`] half: queues events without blocking.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    queue: mpsc::Sender<Delivery>,
}

impl WebhookSink {
    fn enqueue(&self, delivery: Delivery) {
        let id = delivery.id.clone();
        if self.queue.try_send(delivery).is_err() {
            metrics::counter!("kit_oauth_webhook_deliveries_total", "outcome" => "dropped")
                .increment(1);
            tracing::warn!(event_id = %id, "webhook queue full or closed: event dropped");
        }
    }

    /// Queues an `installed_by_user` delivery: `{"id", "type": "installed_by_user", "at"
    /// (Unix seconds), "connection", "tenant", "account", "user"}`.
    pub fn installed_by(&self, by: &crate::InstalledBy) {
        let id = EventId::generate(&mut rand::rngs::OsRng);
        let body = serde_json::json!({
            "id": id.as_str(),
            "type": "installed_by_user",
            "at": time::OffsetDateTime::now_utc().unix_timestamp(),
            "connection": by.connection_id.as_str(),
            "tenant": by.tenant.as_ref().map(kit_oauth::core::TenantName::as_str),
            "account": by.account.id.as_str(),
            "user": by.user,
        });
        self.enqueue(Delivery {
            id: id.as_str().to_owned(),
            name: "installed_by_user",
            body: body.to_string().into_bytes(),
        });
    }
}

impl WebhookSink {
    /// Queues a `bulk_completed` delivery: `{"id", "type": "bulk_completed", "at" (Unix
    /// seconds), "bulk", "connection", "tenant", "kind", "result"}` — Kit's bulk result.
    pub fn bulk_completed(&self, bulk: &kit_oauth::store::BulkRecord) {
        let id = EventId::generate(&mut rand::rngs::OsRng);
        let result: serde_json::Value = bulk
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok())
            .unwrap_or(serde_json::Value::Null);
        let body = serde_json::json!({
            "id": id.as_str(),
            "type": "bulk_completed",
            "at": time::OffsetDateTime::now_utc().unix_timestamp(),
            "bulk": bulk.id,
            "connection": bulk.connection.as_str(),
            "tenant": bulk.tenant.as_ref().map(kit_oauth::core::TenantName::as_str),
            "kind": bulk.kind,
            "result": result,
        });
        self.enqueue(Delivery {
            id: id.as_str().to_owned(),
            name: "bulk_completed",
            body: body.to_string().into_bytes(),
        });
    }
}

impl EventSink for WebhookSink {
    fn emit(&self, event: &Event) {
        match serde_json::to_vec(event) {
            Ok(body) => self.enqueue(Delivery {
                id: event.id.as_str().to_owned(),
                name: event.kind.name(),
                body,
            }),
            Err(error) => tracing::error!(%error, "webhook event could not be serialised"),
        }
    }
}

/// The delivery task; [`WebhookWorker::shutdown`] finishes deliveries in flight.
#[derive(Debug)]
pub struct WebhookWorker {
    task: JoinHandle<()>,
}

impl WebhookWorker {
    /// Starts delivering on the current runtime.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn spawn(config: WebhookConfig) -> Result<(WebhookSink, Self), reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .build()?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(Arc::new(config), client, rx));
        Ok((WebhookSink { queue: tx }, Self { task }))
    }

    /// Waits for queued and in-flight deliveries once every sink is dropped, at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        let abort = self.task.abort_handle();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            abort.abort();
            tracing::warn!("webhook deliveries still pending at shutdown were abandoned");
        }
    }
}

async fn run(
    config: Arc<WebhookConfig>,
    client: reqwest::Client,
    mut rx: mpsc::Receiver<Delivery>,
) {
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut running = JoinSet::new();
    while let Some(event) = rx.recv().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let config = Arc::clone(&config);
        let client = client.clone();
        running.spawn(async move {
            deliver(&config, &client, &event).await;
            drop(permit);
        });
        while running.try_join_next().is_some() {}
    }
    while running.join_next().await.is_some() {}
}

async fn deliver(config: &WebhookConfig, client: &reqwest::Client, event: &Delivery) {
    let body = &event.body;
    let mut delay = config.backoff;
    for attempt in 1..=config.attempts.max(1) {
        let unix = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = sign(config.secret.expose_secret(), unix, body);
        let result = client
            .post(config.url.clone())
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(IDEMPOTENCY_HEADER, event.id.as_str())
            .header(EVENT_HEADER, event.name)
            .body(body.clone())
            .send()
            .await;
        let failure = match result {
            Ok(response) if response.status().is_success() => {
                metrics::counter!("kit_oauth_webhook_deliveries_total", "outcome" => "delivered")
                    .increment(1);
                tracing::debug!(event_id = %event.id, attempt, "webhook delivered");
                return;
            }
            Ok(response) => format!("status {}", response.status().as_u16()),
            Err(error) => error.without_url().to_string(),
        };
        if attempt == config.attempts.max(1) {
            metrics::counter!("kit_oauth_webhook_deliveries_total", "outcome" => "failed")
                .increment(1);
            tracing::warn!(event_id = %event.id, attempt, %failure, "webhook delivery failed for good");
            return;
        }
        metrics::counter!("kit_oauth_webhook_deliveries_total", "outcome" => "retried")
            .increment(1);
        tracing::info!(event_id = %event.id, attempt, %failure, "webhook delivery failed; retrying");
        let jittered = delay.mul_f64(rand::rngs::OsRng.gen_range(0.8..=1.2));
        tokio::time::sleep(jittered).await;
        delay = delay.saturating_mul(2).min(Duration::from_secs(300));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // HMAC-SHA256("secret", "1700000000.{}") computed independently (openssl dgst -hmac).
        let sig = sign("secret", 1_700_000_000, b"{}");
        assert!(sig.starts_with("t=1700000000,v1="));
        assert_eq!(
            sig,
            "t=1700000000,v1=b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
        );
        assert_ne!(sign("other", 1_700_000_000, b"{}"), sig);
        assert_ne!(sign("secret", 1_700_000_001, b"{}"), sig);
    }
}
