//! The sandbox's API v4 as raw HTTP, for what a typed client would hide: exact bodies and
//! headers (the 429, Kit's cursors, error bodies), per-account isolation, and the request
//! shapes where Kit's spec and SDKs disagree (docs/kit-api-v4.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use kit_sandbox::SandboxHandle;
use serde_json::{Value, json};

async fn call(
    sb: &SandboxHandle,
    method: reqwest::Method,
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

#[tokio::test]
async fn the_429_is_plain_text_retry_later_without_retry_after() {
    let sb = confidential().rate_limit(2).spawn().await.unwrap();
    let t = token(&sb, "Rate").await;
    for _ in 0..2 {
        assert_eq!(
            call(&sb, reqwest::Method::GET, "/v4/tags", &t, None)
                .await
                .0,
            200
        );
    }
    let resp = http()
        .get(sb.url("/v4/tags"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().get("retry-after").is_none());
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(resp.text().await.unwrap(), "Retry later");
    // `/v4/account` shares the token's window.
    assert_eq!(get_account(&sb, &t).await.0, 429);
    assert_eq!(sb.stats().rate_limited_429, 2);
}

#[tokio::test]
async fn refusals_and_missing_resources_have_kits_error_bodies() {
    let sb = confidential().spawn().await.unwrap();
    let (status, body) = call(&sb, reqwest::Method::GET, "/v4/subscribers", "nope", None).await;
    assert_eq!(
        (status, body),
        (401, json!({"errors": ["The access token is invalid"]}))
    );
    let t = token(&sb, "Errors").await;
    let (status, body) = call(&sb, reqwest::Method::GET, "/v4/subscribers/42", &t, None).await;
    assert_eq!((status, body), (404, json!({"errors": ["Not Found"]})));
    let (status, body) = call(&sb, reqwest::Method::GET, "/v4/subscribers/abc", &t, None).await;
    assert_eq!((status, body), (404, json!({"errors": ["Not Found"]})));
    let (status, body) = call(
        &sb,
        reqwest::Method::POST,
        "/v4/tags",
        &t,
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(
        (status, body),
        (422, json!({"errors": ["Name can't be blank"]}))
    );
    let (status, body) = call(
        &sb,
        reqwest::Method::POST,
        "/v4/bulk/tags",
        &t,
        Some(json!({"tags": []})),
    )
    .await;
    assert_eq!(
        (status, body),
        (422, json!({"errors": ["No tags included for processing"]}))
    );
}

#[tokio::test]
async fn cursors_are_kits_base64_and_pages_link_both_ways() {
    let sb = confidential().spawn().await.unwrap();
    let t = token(&sb, "Cursors").await;
    for name in ["a", "b", "c"] {
        let (status, _) = call(
            &sb,
            reqwest::Method::POST,
            "/v4/tags",
            &t,
            Some(json!({"name": name})),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (_, first) = call(&sb, reqwest::Method::GET, "/v4/tags?per_page=2", &t, None).await;
    let p = &first["pagination"];
    assert_eq!(p["has_previous_page"], false);
    assert_eq!(p["has_next_page"], true);
    assert_eq!(p["per_page"], 2);
    assert!(first.get("total_count").is_none(), "only when asked for");
    let end = p["end_cursor"].as_str().unwrap();
    let decoded = String::from_utf8(STANDARD.decode(end).unwrap()).unwrap();
    let last_id = first["tags"][1]["id"].as_u64().unwrap();
    assert_eq!(decoded, format!("[{last_id}]"));
    let after = url::form_urlencoded::byte_serialize(end.as_bytes()).collect::<String>();
    let (_, second) = call(
        &sb,
        reqwest::Method::GET,
        &format!("/v4/tags?per_page=2&after={after}&include_total_count=1"),
        &t,
        None,
    )
    .await;
    assert_eq!(second["tags"].as_array().unwrap().len(), 1);
    assert_eq!(second["pagination"]["has_previous_page"], true);
    assert_eq!(second["pagination"]["has_next_page"], false);
    assert_eq!(second["total_count"], 3);
    let start = second["pagination"]["start_cursor"].as_str().unwrap();
    let before = url::form_urlencoded::byte_serialize(start.as_bytes()).collect::<String>();
    let (_, back) = call(
        &sb,
        reqwest::Method::GET,
        &format!("/v4/tags?per_page=2&before={before}"),
        &t,
        None,
    )
    .await;
    assert_eq!(back["tags"], first["tags"]);
}

#[tokio::test]
async fn accounts_do_not_see_each_others_data() {
    let sb = confidential().spawn().await.unwrap();
    let a = token(&sb, "Alice Co").await;
    let b = token(&sb, "Bob Co").await;
    let body = json!({"email_address": "x@example.com"});
    assert_eq!(
        call(
            &sb,
            reqwest::Method::POST,
            "/v4/subscribers",
            &a,
            Some(body.clone())
        )
        .await
        .0,
        201
    );
    assert_eq!(
        call(
            &sb,
            reqwest::Method::POST,
            "/v4/subscribers",
            &b,
            Some(body)
        )
        .await
        .0,
        201
    );
    let (_, list) = call(&sb, reqwest::Method::GET, "/v4/subscribers", &a, None).await;
    assert_eq!(list["subscribers"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn spec_and_sdk_shapes_are_both_accepted() {
    let sb = confidential().spawn().await.unwrap();
    let t = token(&sb, "Shapes").await;
    // Purchase: wrapped (spec) and unwrapped (PHP SDK).
    for (i, body) in [
        json!({"purchase": {"transaction_id": "t1", "email_address": "p@example.com", "currency": "usd"}}),
        json!({"transaction_id": "t2", "email_address": "p@example.com", "currency": "USD"}),
    ]
    .into_iter()
    .enumerate()
    {
        let (status, v) = call(&sb, reqwest::Method::POST, "/v4/purchases", &t, Some(body)).await;
        assert_eq!(status, 201, "{i}: {v}");
        assert_eq!(v["purchase"]["currency"], "USD");
    }
    // Sequence webhooks: `sequence_id` (spec) and `course_id` (PHP SDK).
    for key in ["sequence_id", "course_id"] {
        let body = json!({"target_url": "http://127.0.0.1:9/h", "event": {"name": "subscriber.course_subscribe", key: 5}});
        let (status, v) = call(&sb, reqwest::Method::POST, "/v4/webhooks", &t, Some(body)).await;
        assert_eq!(status, 201, "{v}");
        assert_eq!(
            v["webhook"]["event"],
            json!({"name": "course_subscribe", "sequence_id": 5})
        );
    }
    // Unknown custom field keys: accepted, reported as warnings (SDK tests), not an error.
    let (status, v) = call(
        &sb,
        reqwest::Method::POST,
        "/v4/subscribers",
        &t,
        Some(json!({"email_address": "w@example.com", "fields": {"nope": "1"}})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    // Untag by email sends a JSON body with DELETE.
    let (_, tag) = call(
        &sb,
        reqwest::Method::POST,
        "/v4/tags",
        &t,
        Some(json!({"name": "x"})),
    )
    .await;
    let path = format!("/v4/tags/{}/subscribers", tag["tag"]["id"]);
    let who = json!({"email_address": "w@example.com"});
    assert_eq!(
        call(&sb, reqwest::Method::POST, &path, &t, Some(who.clone()))
            .await
            .0,
        201
    );
    assert_eq!(
        call(&sb, reqwest::Method::DELETE, &path, &t, Some(who))
            .await
            .0,
        204
    );
}
