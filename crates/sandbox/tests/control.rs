//! The control API over HTTP: faults of every kind, the clock, stats, grants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

async fn add_fault(sb: &kit_sandbox::SandboxHandle, fault: Value) {
    let (st, body) = post_json(sb, "/_sandbox/faults", fault).await;
    assert_eq!(st, 201, "{body}");
}

#[tokio::test]
async fn status_fault_answers_the_next_n_responses_then_clears() {
    let sb = confidential().spawn().await.unwrap();
    let t = tokens(&sb, &[]).await;
    add_fault(
        &sb,
        json!({"endpoint": "token", "kind": "status", "status": 503, "count": 2, "retry_after": 3}),
    )
    .await;
    let (_, list) = (
        0,
        http()
            .get(sb.url("/_sandbox/faults"))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap(),
    );
    assert_eq!(list["faults"][0]["remaining"], 2);
    for _ in 0..2 {
        let resp = http().post(sb.url("/v4/oauth/token")).json(&json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "refresh_token", "refresh_token": s(&t, "refresh_token")})).send().await.unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "3");
    }
    // The faulted requests were not processed: the refresh token is still current.
    let (st, _) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(st, 200);
    let stats = sb.stats();
    assert_eq!(stats.faults_injected, 2);
    assert_eq!(stats.refreshes_ok, 1);
    assert!(sb.faults().is_empty());
}

#[tokio::test]
async fn status_fault_with_a_body_on_the_account_endpoint() {
    let sb = confidential().spawn().await.unwrap();
    let t = tokens(&sb, &[]).await;
    add_fault(&sb, json!({"endpoint": "account", "kind": "status", "status": 401, "body": "{\"errors\":[\"The access token expired\"]}"})).await;
    let (st, body) = get_account(&sb, &s(&t, "access_token")).await;
    assert_eq!(
        (st, body.as_str()),
        (401, r#"{"errors":["The access token expired"]}"#)
    );
    assert_eq!(get_account(&sb, &s(&t, "access_token")).await.0, 200);
}

#[tokio::test]
async fn latency_fault_delays_then_processes() {
    // Strict: the rotation the slow request made shows as a spent token at once.
    let sb = confidential()
        .rotation(Rotation::Strict)
        .spawn()
        .await
        .unwrap();
    let t = tokens(&sb, &[]).await;
    add_fault(
        &sb,
        json!({"endpoint": "token", "kind": "latency", "ms": 300}),
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = client
        .post(sb.url("/v4/oauth/token"))
        .json(&json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "refresh_token", "refresh_token": s(&t, "refresh_token")}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    // The delayed request still ran to completion on the server: the token was rotated.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sb.stats().refreshes_ok == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sb.stats().refreshes_ok, 1);
    let (st, e) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_processing() {
    let sb = confidential().spawn().await.unwrap();
    let t = tokens(&sb, &[]).await;
    add_fault(&sb, json!({"endpoint": "token", "kind": "drop"})).await;
    let err = http()
        .post(sb.url("/v4/oauth/token"))
        .json(&json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "refresh_token", "refresh_token": s(&t, "refresh_token")}))
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_status(), "{err}");
    assert_eq!(sb.stats().refreshes_ok, 0);
    let (st, _) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(
        st, 200,
        "not processed: the old refresh token is still current"
    );
}

#[tokio::test]
async fn rotate_then_drop_loses_the_response_after_rotating() {
    let sb = confidential()
        .rotation(Rotation::ReuseDetection)
        .spawn()
        .await
        .unwrap();
    let t = tokens(&sb, &[]).await;
    let before = sb.grants()[0].refresh_token_sha256.clone();
    add_fault(
        &sb,
        json!({"endpoint": "token", "kind": "rotate_then_drop"}),
    )
    .await;
    let err = http()
        .post(sb.url("/v4/oauth/token"))
        .json(&json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "refresh_token", "refresh_token": s(&t, "refresh_token")}))
        .send()
        .await;
    assert!(err.is_err(), "the client never sees the response");
    let g = &sb.grants()[0];
    assert_ne!(g.refresh_token_sha256, before, "the server rotated");
    assert_eq!(sb.stats().refreshes_ok, 1);
    // A client that retries with the old token now trips reuse detection.
    let (st, _) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(st, 400);
    assert_eq!(sb.stats().grants_revoked, 1);
    // rotate_then_drop is refused for other endpoints.
    let (st, _) = post_json(
        &sb,
        "/_sandbox/faults",
        json!({"endpoint": "account", "kind": "rotate_then_drop"}),
    )
    .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn malformed_json_fault_and_any_endpoint() {
    let sb = confidential().spawn().await.unwrap();
    let t = tokens(&sb, &[]).await;
    add_fault(
        &sb,
        json!([{"endpoint": "any", "kind": "malformed_json", "count": 2}]),
    )
    .await;
    let resp = http().post(sb.url("/v4/oauth/token")).json(&json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "refresh_token", "refresh_token": s(&t, "refresh_token")})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let text = resp.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    let resp = http()
        .get(sb.url("/v4/account"))
        .bearer_auth(s(&t, "access_token"))
        .send()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&resp.text().await.unwrap()).is_err());
    // Control endpoints are never faulted, and after two responses the fault is spent.
    assert_eq!(get_account(&sb, &s(&t, "access_token")).await.0, 200);
    assert_eq!(sb.stats().faults_injected, 2);
}

#[tokio::test]
async fn delete_faults_clears_them_and_bad_faults_are_refused() {
    let sb = confidential().spawn().await.unwrap();
    add_fault(
        &sb,
        json!({"endpoint": "token", "kind": "drop", "count": 100}),
    )
    .await;
    let resp = http()
        .delete(sb.url("/_sandbox/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(sb.faults().is_empty());
    let _ = tokens(&sb, &[]).await;
    for bad in [
        json!({"endpoint": "token", "kind": "status", "status": 1000}),
        json!({"endpoint": "token", "kind": "explode"}),
        json!({"endpoint": "nowhere", "kind": "drop"}),
        json!({"endpoint": "token", "kind": "drop", "count": 0}),
        json!("drop"),
    ] {
        let (st, body) = post_json(&sb, "/_sandbox/faults", bad.clone()).await;
        assert_eq!(st, 400, "{bad}");
        assert!(body["error"].is_string());
    }
}

#[tokio::test]
async fn clock_endpoint_advances_expiry() {
    let sb = confidential().access_ttl(3600).spawn().await.unwrap();
    let t = tokens(&sb, &[]).await;
    let before: Value = http()
        .get(sb.url("/_sandbox/clock"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (st, after) = post_json(&sb, "/_sandbox/clock", json!({"advance_secs": 3599})).await;
    assert_eq!(st, 200);
    assert_eq!(after["offset_secs"], 3599);
    assert!(after["now"].as_i64().unwrap() >= before["now"].as_i64().unwrap() + 3599);
    assert_eq!(get_account(&sb, &s(&t, "access_token")).await.0, 200);
    let (_, _) = post_json(&sb, "/_sandbox/clock", json!({"advance_secs": 1})).await;
    let (st, body) = get_account(&sb, &s(&t, "access_token")).await;
    assert_eq!(
        (st, body.as_str()),
        (401, r#"{"errors":["The access token expired"]}"#)
    );
    let (st, _) = post_json(&sb, "/_sandbox/clock", json!({"advance_secs": -5})).await;
    assert_eq!(st, 400, "the clock only moves forward");
}

#[tokio::test]
async fn stats_over_http_count_requests_and_reset() {
    let sb = confidential().spawn().await.unwrap();
    let t = tokens(&sb, &[]).await;
    let _ = refresh(&sb, &s(&t, "refresh_token")).await;
    let stats: Value = http()
        .get(sb.url("/_sandbox/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"]["authorize"], 1);
    assert_eq!(stats["requests"]["token"], 2);
    assert_eq!(stats["codes_issued"], 1);
    assert_eq!(stats["refreshes_ok"], 1);
    assert_eq!(stats["grants_alive"], 1);
    let back: kit_sandbox::Stats = serde_json::from_value(stats).unwrap();
    assert_eq!(back.refreshes_ok, 1);
    let resp = http()
        .post(sb.url("/_sandbox/stats/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let st = sb.stats();
    assert_eq!(
        (st.refreshes_ok, st.codes_issued, st.grants_alive),
        (0, 0, 1)
    );
    assert!(st.requests.is_empty(), "{:?}", st.requests);
}

#[tokio::test]
async fn grants_endpoint_shows_hashes_never_tokens_and_revokes() {
    let sb = confidential().spawn().await.unwrap();
    let t = tokens(&sb, &[("tenant_name", "t1")]).await;
    let resp = http().get(sb.url("/_sandbox/grants")).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(!text.contains(&s(&t, "access_token")));
    assert!(!text.contains(&s(&t, "refresh_token")));
    let v: Value = serde_json::from_str(&text).unwrap();
    let g = &v["grants"][0];
    assert_eq!(g["access_token_sha256"], sha256_hex(&s(&t, "access_token")));
    assert_eq!(
        g["refresh_token_sha256"],
        sha256_hex(&s(&t, "refresh_token"))
    );
    assert_eq!(g["alive"], true);
    assert_eq!(g["tenant_name"], "t1");
    assert_eq!(g["client_id"], CLIENT);
    let id = g["id"].as_u64().unwrap();
    let resp = http()
        .post(sb.url(&format!("/_sandbox/grants/{id}/revoke")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = http()
        .post(sb.url(&format!("/_sandbox/grants/{id}/revoke")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(get_account(&sb, &s(&t, "access_token")).await.0, 401);
    let cfg: Value = http()
        .get(sb.url("/_sandbox/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["client_id"], CLIENT);
    assert_eq!(cfg["confidential"], true);
    assert!(!cfg.to_string().contains(SECRET));
}

#[tokio::test]
async fn many_refreshes_keep_tables_bounded_over_http() {
    let sb = confidential()
        .rotation(Rotation::ReuseDetection)
        .spawn()
        .await
        .unwrap();
    let mut t = tokens(&sb, &[]).await;
    for _ in 0..300 {
        let (st, next) = refresh(&sb, &s(&t, "refresh_token")).await;
        assert_eq!(st, 200);
        t = next;
    }
    let sizes: Value = http()
        .get(sb.url("/_sandbox/sizes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // One live pair plus the retired ones; the retired FIFO (of pairs) is bounded (checked at
    // 100k in the unit tests).
    assert_eq!(sizes["access_tokens"], 301);
    assert_eq!(sizes["retired"], 300);
}

#[tokio::test]
async fn shutdown_stops_the_server_and_drop_does_too() {
    let sb = confidential().spawn().await.unwrap();
    let url = sb.url("/_sandbox/stats");
    assert!(http().get(&url).send().await.is_ok());
    sb.shutdown().await;
    assert!(reqwest::Client::new().get(&url).send().await.is_err());

    let sb = confidential().spawn().await.unwrap();
    let url = sb.url("/_sandbox/stats");
    drop(sb);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if reqwest::Client::new().get(&url).send().await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still serving after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
