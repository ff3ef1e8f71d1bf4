//! The sandbox's own bounds on its API v4: the per-account record cap (a runaway client gets
//! 422, not unbounded memory) and the configurable rate window (Kit's 60 s by default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kit_sandbox::SandboxHandle;
use reqwest::Method;
use serde_json::{Value, json};

async fn call(
    sb: &SandboxHandle,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = http().request(method, sb.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn token(sb: &SandboxHandle, account: &str) -> String {
    s(
        &tokens(sb, &[("sandbox_account", account)]).await,
        "access_token",
    )
}

const CAP_MESSAGE: &str = "kit-sandbox: this account holds its limit of 4 records (--max-records)";

#[tokio::test]
async fn an_account_holds_at_most_its_record_cap_and_gets_422_past_it() {
    let sb = confidential()
        .max_records_per_account(4)
        .spawn()
        .await
        .unwrap();
    let t = token(&sb, "Capped").await;
    let post = |path: &'static str, body: Value| {
        let (sb, t) = (&sb, &t);
        async move { call(sb, Method::POST, path, t, Some(body)).await }
    };
    // Four records: two tags, a subscriber, and one tagging.
    let a = post("/v4/tags", json!({"name": "a"})).await.1["tag"]["id"].clone();
    let b = post("/v4/tags", json!({"name": "b"})).await.1["tag"]["id"].clone();
    let (status, sub) = post("/v4/subscribers", json!({"email_address": "x@example.com"})).await;
    assert_eq!(status, 201);
    let sub_id = sub["subscriber"]["id"].as_u64().unwrap();
    let tag_path = format!("/v4/tags/{a}/subscribers/{sub_id}");
    assert_eq!(call(&sb, Method::POST, &tag_path, &t, None).await.0, 201);

    // A fifth, of every kind, is refused with the reason.
    for (path, body) in [
        ("/v4/tags", json!({"name": "c"})),
        ("/v4/subscribers", json!({"email_address": "y@example.com"})),
        ("/v4/custom_fields", json!({"label": "Plan"})),
    ] {
        let (status, body) = post(path, body).await;
        assert_eq!(status, 422, "{path}");
        assert_eq!(body, json!({"errors": [CAP_MESSAGE]}), "{path}");
    }
    let other_tag = format!("/v4/tags/{b}/subscribers/{sub_id}");
    assert_eq!(call(&sb, Method::POST, &other_tag, &t, None).await.0, 422);

    // What exists is still found (200), and nothing was added.
    assert_eq!(post("/v4/tags", json!({"name": "a"})).await.0, 200);
    assert_eq!(
        post("/v4/subscribers", json!({"email_address": "x@example.com"}))
            .await
            .0,
        200
    );
    let (_, tags) = call(&sb, Method::GET, "/v4/tags", &t, None).await;
    assert_eq!(tags["tags"].as_array().unwrap().len(), 2);
    let (_, subs) = call(&sb, Method::GET, "/v4/subscribers", &t, None).await;
    assert_eq!(subs["subscribers"].as_array().unwrap().len(), 1);

    // The cap is per account.
    let other = token(&sb, "Roomy").await;
    let (status, _) = call(
        &sb,
        Method::POST,
        "/v4/tags",
        &other,
        Some(json!({"name": "c"})),
    )
    .await;
    assert_eq!(status, 201);

    // Deleting makes room again.
    let delete = format!("/v4/tags/{b}");
    assert_eq!(call(&sb, Method::DELETE, &delete, &t, None).await.0, 204);
    assert_eq!(post("/v4/tags", json!({"name": "c"})).await.0, 201);
}

#[tokio::test]
async fn the_rate_window_is_configurable_and_counted_on_the_sandbox_clock() {
    let sb = confidential()
        .rate_limit(3)
        .rate_window(5)
        .spawn()
        .await
        .unwrap();
    let t = token(&sb, "Window").await;
    for _ in 0..3 {
        assert_eq!(call(&sb, Method::GET, "/v4/tags", &t, None).await.0, 200);
    }
    assert_eq!(call(&sb, Method::GET, "/v4/tags", &t, None).await.0, 429);
    sb.advance_clock(3);
    assert_eq!(call(&sb, Method::GET, "/v4/tags", &t, None).await.0, 429);
    sb.advance_clock(2);
    assert_eq!(call(&sb, Method::GET, "/v4/tags", &t, None).await.0, 200);
    assert_eq!(sb.stats().rate_limited_429, 2);
}
