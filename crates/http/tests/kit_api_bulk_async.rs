//! Bulk requests above 100 items as futures: Kit's (here the sandbox's) callback reaches the
//! app's route by an unguessable id and resolves exactly the waiting future; a timed-out id is
//! forgotten, so its late callback is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use common::*;
use kit_oauth_core::TokenEndpoint;
use kit_oauth_http::kit_api::{BulkCallbacks, BulkSubscriber, BulkWaitError, Subscriber, Tag};
use kit_oauth_http::{KitClient, RetryPolicy, TokenBody};
use kit_sandbox::SandboxHandle;
use serde_json::{Value, json};

/// The app: a registry whose callback URLs point at its own route `POST /kit/bulk/{id}`,
/// which delivers the body (404 for an unknown id).
async fn app() -> Arc<BulkCallbacks> {
    async fn route(
        State(callbacks): State<Arc<BulkCallbacks>>,
        Path(id): Path<String>,
        Json(body): Json<Value>,
    ) -> StatusCode {
        if callbacks.deliver(&id, body) {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let callbacks = BulkCallbacks::new(format!("http://{addr}/kit/bulk"));
    let router = axum::Router::new()
        .route("/kit/bulk/{id}", post(route))
        .with_state(callbacks.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    callbacks
}

async fn setup() -> (SandboxHandle, KitClient<Arc<SimpleSource>>) {
    let sb = confidential().spawn().await.unwrap();
    let oauth = oauth(&sb, Some(SECRET), TokenBody::Json);
    let auth = authorize(&oauth, None, None).await;
    let tokens = oauth
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let source = SimpleSource::new(oauth, tokens.access_token, tokens.refresh_token.unwrap());
    let endpoints = endpoints_for(&sb, Some(SECRET)).build().unwrap();
    let client = KitClient::new(&endpoints, source)
        .unwrap()
        .with_retry_policy(RetryPolicy::none());
    (sb, client)
}

fn subscribers(n: usize) -> Vec<BulkSubscriber> {
    (0..n)
        .map(|i| BulkSubscriber {
            email_address: format!("a{i}@example.com"),
            first_name: None,
            state: None,
        })
        .collect()
}

async fn control(sb: &SandboxHandle, body: Value) -> Value {
    reqwest::Client::new()
        .put(sb.url("/_sandbox/kit_api"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_queued_bulk_request_resolves_when_its_callback_arrives() {
    let (_sb, client) = setup().await;
    let callbacks = app().await;
    let api = client.api(connection_id());
    let pending = callbacks.expect();
    assert!(pending.callback_url().len() > 64, "the id is unguessable");
    let outcome = api
        .bulk_upsert_subscribers(&subscribers(150), Some(pending.callback_url()))
        .await
        .unwrap();
    let result = pending
        .resolve::<Subscriber>(outcome, Some("subscribers"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!((result.items.len(), result.failures.len()), (150, 0));
    assert!(callbacks.is_empty());

    // At most 100 items: answered at once, and the expected callback is withdrawn.
    let pending = callbacks.expect();
    let outcome = api
        .bulk_create_tags(&["x", "y"], Some(pending.callback_url()))
        .await
        .unwrap();
    let tags = pending
        .resolve::<Tag>(outcome, Some("tags"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(tags.items.len(), 2);
    assert!(callbacks.is_empty());
    assert!(
        !callbacks.deliver("0123", json!({})),
        "unknown ids are refused"
    );
}

#[tokio::test]
async fn a_timed_out_id_is_forgotten_and_its_late_callback_refused() {
    let (sb, client) = setup().await;
    let callbacks = app().await;
    let api = client.api(connection_id());
    control(&sb, json!({"bulk_paused": true})).await;
    let pending = callbacks.expect();
    let outcome = api
        .bulk_upsert_subscribers(&subscribers(101), Some(pending.callback_url()))
        .await
        .unwrap();
    let err = pending
        .resolve::<Subscriber>(outcome, Some("subscribers"), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err, BulkWaitError::TimedOut(Duration::from_millis(50)));
    assert!(callbacks.is_empty());
    // Kit processes it later: the app's route answers 404, counted by the sandbox as failed.
    control(&sb, json!({"bulk_paused": false})).await;
    let mut failed = Value::Null;
    for _ in 0..500 {
        let status: Value = reqwest::get(sb.url("/_sandbox/kit_api"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        failed = status["deliveries"]["failed"].clone();
        if failed != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(failed, 1);
}
