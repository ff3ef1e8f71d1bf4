//! Webhooks end to end: a receiver in the test verifies every delivery's signature
//! (`X-Kit-OAuth-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`), answers 500 to the very
//! first one to force a retry, and counts what arrives; `/metrics` shows the outcomes. The
//! install is made by a signed-in user, so an `installed_by_user` delivery names them. Alone in
//! its binary: the Prometheus registry is per process and the counts are exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use kit_oauth::core::Url;
use kit_oauth_server::SignIn;
use kit_oauth_server::webhook::WebhookConfig;
use secrecy::SecretString;
use serde_json::Value;
use sha2::Sha256;
use support::{API_KEY, BrokerApi, Extra, sample};

const SECRET: &str = "webhook-secret-0123456789";
const USER_SECRET: &str = "user-signing-secret-0123456789";

#[derive(Debug, Clone)]
struct Delivery {
    at: Instant,
    idempotency_key: String,
    event: String,
    body: Value,
    signature_ok: bool,
}

type Received = Arc<Mutex<Vec<Delivery>>>;

/// Checks the signature as a receiver should: recompute, compare in constant time, and refuse
/// timestamps more than five minutes away.
fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(header) = headers
        .get("x-kit-oauth-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - t).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delivery = Delivery {
        at: Instant::now(),
        idempotency_key: headers["idempotency-key"].to_str().unwrap().to_owned(),
        event: headers["x-kit-oauth-event"].to_str().unwrap().to_owned(),
        body: serde_json::from_slice(&body).unwrap(),
        signature_ok: verify(&headers, &body),
    };
    let mut received = received.lock().unwrap();
    received.push(delivery);
    if received.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_signed_retried_with_backoff_and_counted() {
    let received: Received = Arc::default();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_url = format!("http://{}/hooks/kit", receiver.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hooks/kit", axum::routing::post(receive))
        .with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(receiver, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let mut webhook = WebhookConfig::new(
        Url::parse(&receiver_url).unwrap(),
        SecretString::from(SECRET),
    );
    webhook.backoff = Duration::from_millis(300);
    let running = support::start(
        listener,
        &base,
        &sandbox,
        &support::sqlite_url(dir.path()),
        Extra {
            webhook: Some(webhook),
            sign_in: Some(SignIn::new(SecretString::from(USER_SECRET))),
            ..Extra::default()
        },
    )
    .await;

    // Three payloads: `authorized`, `installed_by_user` and `refreshed`; whichever arrives
    // first gets a 500 and is retried.
    let user = SignIn::new(SecretString::from(USER_SECRET)).sign(
        "app-user-99",
        time::OffsetDateTime::now_utc().unix_timestamp() + 300,
    );
    let begin = format!("{}&user={user}", support::begin_url(&base, &sandbox));
    let id = support::install_from(&base, &sandbox, &begin, "Erin").await;
    let refreshed = BrokerApi::new(&base, API_KEY).refresh(&id).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().unwrap().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = support::metrics(&base).await;
    // Shutdown waits for deliveries in flight; nothing more may arrive afterwards.
    running.shutdown().await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 4, "{received:#?}");
    assert!(received.iter().all(|d| d.signature_ok), "{received:#?}");
    let failed = &received[0];
    let same_key: Vec<&Delivery> = received
        .iter()
        .filter(|d| d.idempotency_key == failed.idempotency_key)
        .collect();
    assert_eq!(same_key.len(), 2, "exactly one retry: {received:#?}");
    let retried = same_key[1];
    assert_eq!(retried.event, failed.event);
    assert_eq!(
        retried.body, failed.body,
        "a retry carries the same payload"
    );
    assert!(
        retried.at - failed.at >= Duration::from_millis(240),
        "the retry waited for its backoff (300 ms ± 20 %)"
    );
    let mut names: Vec<&str> = received.iter().skip(1).map(|d| d.event.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names, ["authorized", "installed_by_user", "refreshed"]);
    for delivery in &received {
        assert_eq!(delivery.body["id"], delivery.idempotency_key.as_str());
        assert_eq!(delivery.body["type"], delivery.event.as_str());
        assert_eq!(delivery.body["connection"], id.as_str());
        let text = delivery.body.to_string();
        assert!(!text.contains("access_token") && !text.contains("refresh_token"));
        assert!(
            !text.contains(&user),
            "the signed parameter is not forwarded"
        );
    }
    let by = received
        .iter()
        .find(|d| d.event == "installed_by_user")
        .unwrap();
    assert_eq!(by.body["user"], "app-user-99");
    assert_eq!(
        by.body["account"],
        received
            .iter()
            .find(|d| d.event == "authorized")
            .unwrap()
            .body["account"]
    );
    for (series, expected) in [
        (
            "kit_oauth_webhook_deliveries_total{outcome=\"delivered\"}",
            3.0,
        ),
        (
            "kit_oauth_webhook_deliveries_total{outcome=\"retried\"}",
            1.0,
        ),
        (
            "kit_oauth_webhook_deliveries_total{outcome=\"failed\"}",
            0.0,
        ),
        (
            "kit_oauth_webhook_deliveries_total{outcome=\"dropped\"}",
            0.0,
        ),
    ] {
        assert_eq!(sample(&metrics, series), expected, "{series} in\n{metrics}");
    }
}
