//! Kit bulk requests through the broker, against the sandbox's 202 and callback POST over
//! loopback: exactly one `bulk_completed` webhook per bulk, the result readable by id (and only
//! by keys that see its tenant), a forged callback id is 404 and changes nothing, a replayed
//! callback emits nothing more.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use kit_oauth::core::Url;
use kit_oauth_server::ApiKeys;
use kit_oauth_server::webhook::WebhookConfig;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::{API_KEY, Extra};

/// A key of tenant `acme`: the connection below has no tenant, so this key sees none of it.
const ACME_KEY: &str = "acme-key-0123456789abcdef";

type Received = Arc<Mutex<Vec<(String, Value)>>>;

async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let event = headers["x-kit-oauth-event"].to_str().unwrap().to_owned();
    received
        .lock()
        .unwrap()
        .push((event, serde_json::from_slice(&body).unwrap()));
    StatusCode::OK
}

fn bulk_events(received: &Received) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(event, _)| event == "bulk_completed")
        .map(|(_, body)| body.clone())
        .collect()
}

async fn sandbox_control(sandbox: &kit_sandbox::SandboxHandle) -> Value {
    reqwest::get(sandbox.url("/_sandbox/kit_api"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_above_100_completes_once_by_callback_and_is_readable_by_id() {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(received.clone());
    let (hook_listener, hook_base) = support::listener().await;
    tokio::spawn(async move { axum::serve(hook_listener, app).await.unwrap() });
    let mut webhook = WebhookConfig::new(
        Url::parse(&format!("{hook_base}/hook")).unwrap(),
        SecretString::from("webhook-secret-0123456789".to_owned()),
    );
    webhook.backoff = Duration::from_millis(50);
    let support::Broker {
        dir: _dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra {
        webhook: Some(webhook),
        api_keys: Some(ApiKeys::parse(&format!("{API_KEY},acme={ACME_KEY}")).unwrap()),
        ..Extra::default()
    })
    .await;
    let id = support::install(&base, &sandbox, "Bulky").await;
    let http = reqwest::Client::new();
    let subscribers: Vec<Value> = (0..150)
        .map(|i| json!({"email_address": format!("b{i}@example.com")}))
        .collect();
    let started = http
        .post(format!("{base}/v1/connections/{id}/bulk/subscribers"))
        .bearer_auth(API_KEY)
        .json(&json!({ "subscribers": subscribers }))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let started: Value = started.json().await.unwrap();
    let bulk = started["id"].as_str().unwrap().to_owned();
    // Kit may call back before the broker has answered the app: either is the truth then.
    assert!(
        started["status"] == "pending" || started["status"] == "completed",
        "{started}"
    );

    // Kit (the sandbox) processes the queue and POSTs the result back; wait for it, bounded.
    let show = format!("{base}/v1/bulk/{bulk}");
    let mut shown = Value::Null;
    for _ in 0..200 {
        shown = http
            .get(&show)
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if shown["status"] == "completed" && !bulk_events(&received).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        shown["status"],
        "completed",
        "{shown} {}",
        sandbox_control(&sandbox).await
    );
    assert_eq!(shown["connection"], id.as_str());
    assert_eq!(
        shown["result"]["subscribers"].as_array().unwrap().len(),
        150
    );
    let events = bulk_events(&received);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["bulk"], bulk.as_str());
    assert_eq!(events[0]["result"], shown["result"]);

    // A forged callback id is 404 and changes nothing.
    let forged = format!("{base}/kit/bulk/{}", "ab".repeat(32));
    let answer = http
        .post(&forged)
        .json(&json!({"subscribers": [], "failures": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);

    // Kit's callback replayed: accepted, nothing emitted, nothing changed.
    let callback = sandbox_control(&sandbox).await["bulk"]["last_callback_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        callback.starts_with(&format!("{base}/kit/bulk/")),
        "{callback}"
    );
    let replay = http
        .post(&callback)
        .json(&json!({"subscribers": [], "failures": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bulk_events(&received).len(), 1);
    let again: Value = http
        .get(&show)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, shown);

    // An unknown bulk id is 404; so is any id without a key.
    let missing = http
        .get(format!("{base}/v1/bulk/bulk_nope"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(http.get(&show).send().await.unwrap().status(), 401);
    // Another tenant's key sees neither the bulk request nor can start one.
    let other = http.get(&show).bearer_auth(ACME_KEY).send().await.unwrap();
    assert_eq!(other.status(), 404);
    let other = http
        .post(format!("{base}/v1/connections/{id}/bulk/subscribers"))
        .bearer_auth(ACME_KEY)
        .json(&json!({"subscribers": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);

    // 100 items or fewer: Kit answers at once, completed on the spot, one event too.
    let small = http
        .post(format!("{base}/v1/connections/{id}/bulk/subscribers"))
        .bearer_auth(API_KEY)
        .json(&json!({"subscribers": [{"email_address": "s1@example.com"}, {"email_address": "s2@example.com"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
    let small: Value = small.json().await.unwrap();
    assert_eq!(small["status"], "completed");
    assert_eq!(small["result"]["subscribers"].as_array().unwrap().len(), 2);
    for _ in 0..100 {
        if bulk_events(&received).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = bulk_events(&received);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1]["bulk"], small["id"]);
    running.shutdown().await;
}

/// Two instances on one database: the callback reaches the instance that did not start the
/// bulk, which completes it and emits the one event; Kit's own callback to the first instance
/// afterwards changes nothing and emits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_reaching_another_instance_completes_the_bulk_once() {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(received.clone());
    let (hook_listener, hook_base) = support::listener().await;
    tokio::spawn(async move { axum::serve(hook_listener, app).await.unwrap() });
    let webhook = || {
        let mut config = WebhookConfig::new(
            Url::parse(&format!("{hook_base}/hook")).unwrap(),
            SecretString::from("webhook-secret-0123456789".to_owned()),
        );
        config.backoff = Duration::from_millis(50);
        config
    };
    let support::Broker {
        dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra {
        webhook: Some(webhook()),
        ..Extra::default()
    })
    .await;
    let (listener_b, base_b) = support::listener().await;
    let running_b = support::start(
        listener_b,
        &base_b,
        &sandbox,
        &support::sqlite_url(dir.path()),
        Extra {
            webhook: Some(webhook()),
            ..Extra::default()
        },
    )
    .await;
    let id = support::install(&base, &sandbox, "Twice").await;
    let http = reqwest::Client::new();
    // Kit holds the job until the test has called back through the other instance.
    http.put(sandbox.url("/_sandbox/kit_api"))
        .json(&json!({"bulk_paused": true}))
        .send()
        .await
        .unwrap();
    let subscribers: Vec<Value> = (0..101)
        .map(|i| json!({"email_address": format!("t{i}@example.com")}))
        .collect();
    let started: Value = http
        .post(format!("{base}/v1/connections/{id}/bulk/subscribers"))
        .bearer_auth(API_KEY)
        .json(&json!({ "subscribers": subscribers }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bulk = started["id"].as_str().unwrap().to_owned();
    let callback = sandbox_control(&sandbox).await["bulk"]["last_callback_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_b = callback.replacen(&base, &base_b, 1);
    assert_ne!(on_b, callback);
    let answer = http
        .post(&on_b)
        .json(&json!({"subscribers": [{"email_address": "via-b@example.com"}], "failures": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    // Instance A reads what B stored.
    let shown: Value = http
        .get(format!("{base}/v1/bulk/{bulk}"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["status"], "completed");
    assert_eq!(
        shown["result"]["subscribers"][0]["email_address"],
        "via-b@example.com"
    );
    // Kit now processes the job and calls A back: nothing changes, nothing more is emitted.
    http.put(sandbox.url("/_sandbox/kit_api"))
        .json(&json!({"bulk_paused": false}))
        .send()
        .await
        .unwrap();
    for _ in 0..200 {
        let control = sandbox_control(&sandbox).await;
        if control["deliveries"]["ok"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sandbox_control(&sandbox).await["deliveries"]["ok"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = bulk_events(&received);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["bulk"], bulk.as_str());
    let again: Value = http
        .get(format!("{base_b}/v1/bulk/{bulk}"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, shown);
    running_b.shutdown().await;
    running.shutdown().await;
}
