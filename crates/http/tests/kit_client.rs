//! KitClient's retry rules against kit-sandbox, counted through `GET /_sandbox/stats`, and
//! cursor pagination against a small paginated list server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use kit_oauth_core::{AccessToken, RefreshToken, TokenEndpoint};
use kit_oauth_http::{
    ApiError, KitClient, KitEndpoints, KitRequest, RetryPolicy, TokenBody, TransportError,
};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, SandboxHandle};
use serde_json::Value;

/// The counters, read over HTTP as any app's test would.
async fn stats(sb: &SandboxHandle) -> Value {
    reqwest::get(sb.url("/_sandbox/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn requests(stats: &Value, endpoint: &str) -> u64 {
    stats["requests"][endpoint].as_u64().unwrap_or(0)
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total_wait: Duration::from_secs(5),
    }
}

struct Setup {
    sb: SandboxHandle,
    source: Arc<SimpleSource>,
    client: KitClient<Arc<SimpleSource>>,
}

async fn setup(builder: kit_sandbox::SandboxBuilder, broken_refresh: bool) -> Setup {
    let sb = builder.spawn().await.unwrap();
    let oauth = oauth(&sb, Some(SECRET), TokenBody::Json);
    let auth = authorize(&oauth, None, None).await;
    let tokens = oauth
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let mut source = SimpleSource::new(oauth, tokens.access_token, tokens.refresh_token.unwrap());
    Arc::get_mut(&mut source).unwrap().broken_refresh = broken_refresh;
    let endpoints = endpoints_for(&sb, Some(SECRET))
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let client = KitClient::new(&endpoints, source.clone())
        .unwrap()
        .with_retry_policy(fast_retries());
    sb.reset_stats();
    Setup { sb, source, client }
}

#[tokio::test]
async fn expired_token_forces_one_refresh_and_exactly_one_retry() {
    let Setup { sb, source, client } = setup(confidential(), false).await;
    let conn = connection_id();
    client.account(&conn).await.unwrap();
    sb.advance_clock(172_801);
    let account = client.account(&conn).await.unwrap();
    assert_eq!(account.name, ACCOUNT);
    let s = stats(&sb).await;
    assert_eq!(
        requests(&s, "account"),
        3,
        "1 ok + 1 expired + exactly 1 retry"
    );
    assert_eq!(s["unauthorized_401"], 1);
    assert_eq!(s["refreshes_ok"], 1);
    assert_eq!(source.force_refresh_calls.load(Ordering::SeqCst), 1);
    assert_eq!(source.reauth_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn still_expired_after_the_forced_refresh_stops_after_one_retry() {
    let Setup { sb, source, client } = setup(confidential(), true).await;
    sb.advance_clock(172_801);
    let err = client.account(&connection_id()).await.unwrap_err();
    assert_eq!(err, ApiError::TokenExpired);
    let s = stats(&sb).await;
    assert_eq!(requests(&s, "account"), 2);
    assert_eq!(s["unauthorized_401"], 2);
    assert_eq!(source.force_refresh_calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_revoked_grant_is_verified_once_then_reported_dead() {
    let Setup { sb, source, client } = setup(confidential(), false).await;
    let grant = sb.grants()[0].id;
    assert!(sb.revoke_grant(grant));
    let err = client.account(&connection_id()).await.unwrap_err();
    let ApiError::ReauthRequired { reason } = &err else {
        panic!("{err:?}")
    };
    assert!(
        reason.message.contains("revoked") || reason.message.contains("invalid"),
        "{reason:?}"
    );
    let s = stats(&sb).await;
    assert_eq!(
        requests(&s, "account"),
        2,
        "the call and the source's verification, zero retries"
    );
    assert_eq!(s["refreshes_ok"], 0);
    assert_eq!(s["requests"]["token"].as_u64().unwrap_or(0), 0);
    assert_eq!(source.force_refresh_calls.load(Ordering::SeqCst), 0);
    assert_eq!(source.refused_calls.load(Ordering::SeqCst), 1);
    assert_eq!(source.account_checks.load(Ordering::SeqCst), 1);
    assert_eq!(source.reauth_calls.load(Ordering::SeqCst), 1);
    assert_eq!(source.last_reauth.lock().unwrap().as_ref(), Some(reason));
    // The error never shows the token.
    let token = source.tokens.lock().await.0.clone();
    assert_secret_free(&err, &err.to_string(), &[token.expose_secret()]);
}

fn unauthorized(message: &str) -> Fault {
    Fault::new(
        FaultEndpoint::Account,
        FaultKind::Status {
            status: 401,
            body: Some(serde_json::json!({ "errors": [message] }).to_string()),
            retry_after: None,
        },
    )
}

/// Kit said "invalid" but the stored token works (e.g. a blip at Kit): verified once, retried
/// once, answered; nothing refreshed, nothing marked dead.
#[tokio::test]
async fn a_refused_token_that_still_works_is_retried_once() {
    let Setup { sb, source, client } = setup(confidential(), false).await;
    for message in [
        "The access token is invalid",
        "the access token WAS REVOKED",
    ] {
        sb.reset_stats();
        sb.add_fault(unauthorized(message)).unwrap();
        let account = client.account(&connection_id()).await.unwrap();
        assert_eq!(account.name, ACCOUNT);
        let s = stats(&sb).await;
        assert_eq!(
            requests(&s, "account"),
            3,
            "{message}: refused, verified, retried"
        );
        assert_eq!(s["requests"]["token"].as_u64().unwrap_or(0), 0);
    }
    assert_eq!(source.refused_calls.load(Ordering::SeqCst), 2);
    assert_eq!(source.account_checks.load(Ordering::SeqCst), 2);
    assert_eq!(source.force_refresh_calls.load(Ordering::SeqCst), 0);
    assert_eq!(source.reauth_calls.load(Ordering::SeqCst), 0);
}

/// A 401 whose text merely mentions "expired" is not Kit's expiry message: it is verified, and
/// never costs a refresh, however often it comes.
#[tokio::test]
async fn an_unrelated_message_mentioning_expired_never_forces_a_refresh() {
    let Setup { sb, source, client } = setup(confidential(), false).await;
    for _ in 0..3 {
        sb.add_fault(unauthorized(
            "Your plan has expired; upgrade to use this endpoint",
        ))
        .unwrap();
        client.account(&connection_id()).await.unwrap();
    }
    let s = stats(&sb).await;
    assert_eq!(
        requests(&s, "account"),
        9,
        "3 × (refused, verified, retried)"
    );
    assert_eq!(s["requests"]["token"].as_u64().unwrap_or(0), 0);
    assert_eq!(s["refreshes_ok"], 0);
    assert_eq!(source.force_refresh_calls.load(Ordering::SeqCst), 0);
    assert_eq!(source.account_checks.load(Ordering::SeqCst), 3);
    assert_eq!(source.reauth_calls.load(Ordering::SeqCst), 0);
}

/// Kit's expiry message in another case is still expiry: one refresh, one retry, no lookup.
#[tokio::test]
async fn kits_expiry_message_is_matched_in_any_case() {
    let Setup { sb, source, client } = setup(confidential(), false).await;
    sb.add_fault(unauthorized("THE ACCESS TOKEN EXPIRED"))
        .unwrap();
    client.account(&connection_id()).await.unwrap();
    let s = stats(&sb).await;
    assert_eq!(requests(&s, "account"), 2, "expired, retried");
    assert_eq!(s["refreshes_ok"], 1);
    assert_eq!(source.force_refresh_calls.load(Ordering::SeqCst), 1);
    assert_eq!(source.refused_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_waited_out_once() {
    let Setup { sb, client, .. } = setup(confidential(), false).await;
    sb.add_fault(Fault::new(
        FaultEndpoint::Account,
        FaultKind::Status {
            status: 429,
            body: None,
            retry_after: Some(1),
        },
    ))
    .unwrap();
    client.account(&connection_id()).await.unwrap();
    let s = stats(&sb).await;
    assert_eq!(requests(&s, "account"), 2);
    assert_eq!(s["faults_injected"], 1);
    assert_eq!(s["api_ok"], 1);
}

#[tokio::test]
async fn rate_limit_without_retry_after_backs_off_within_the_budget() {
    let Setup { sb, client, .. } = setup(confidential().rate_limit(1), false).await;
    let conn = connection_id();
    client.account(&conn).await.unwrap();
    let err = client.account(&conn).await.unwrap_err();
    assert_eq!(err, ApiError::RateLimited { retry_after: None });
    let s = stats(&sb).await;
    // 1 allowed, then the first attempt and max_retries (2) more, all refused.
    assert_eq!(s["rate_limited_429"], 3);
    assert_eq!(requests(&s, "account"), 4);

    // A Retry-After beyond the wait budget ends the retries at once.
    sb.reset_stats();
    sb.add_fault(Fault::new(
        FaultEndpoint::Api,
        FaultKind::Status {
            status: 429,
            body: None,
            retry_after: Some(3600),
        },
    ))
    .unwrap();
    let err = client
        .send(&conn, &KitRequest::get("/v4/tags"))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ApiError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert_eq!(requests(&stats(&sb).await, "api"), 1);
}

#[tokio::test]
async fn ambiguous_failures_retry_only_idempotent_or_opted_in_requests() {
    let Setup { sb, client, .. } = setup(confidential().rate_limit(1000), false).await;
    let conn = connection_id();
    let body = serde_json::json!({"name": "new tag"});

    // POST + dropped connection: not retried.
    sb.add_fault(Fault::new(FaultEndpoint::Api, FaultKind::Drop))
        .unwrap();
    let post = KitRequest::post("/v4/not_an_endpoint").json(&body).unwrap();
    let err = client.send(&conn, &post).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Transport(TransportError::Network(_))),
        "{err:?}"
    );
    assert_eq!(requests(&stats(&sb).await, "api"), 1);

    // POST + 503: not retried either.
    sb.reset_stats();
    sb.add_fault(Fault::new(
        FaultEndpoint::Api,
        FaultKind::Status {
            status: 503,
            body: Some(r#"{"errors":["busy"]}"#.into()),
            retry_after: None,
        },
    ))
    .unwrap();
    let err = client.send(&conn, &post).await.unwrap_err();
    assert_eq!(
        err,
        ApiError::Status {
            status: 503,
            messages: vec!["busy".into()]
        }
    );
    assert_eq!(requests(&stats(&sb).await, "api"), 1);

    // POST opted in: retried after the drop (the sandbox then answers 404 for this path).
    sb.reset_stats();
    sb.add_fault(Fault::new(FaultEndpoint::Api, FaultKind::Drop))
        .unwrap();
    let err = client
        .send(&conn, &post.clone().retry_ambiguous(true))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(requests(&stats(&sb).await, "api"), 2);

    // GET: retried after a timeout and after a 502.
    sb.reset_stats();
    sb.add_fault(Fault::new(
        FaultEndpoint::Account,
        FaultKind::Latency { ms: 2_000 },
    ))
    .unwrap();
    sb.add_fault(Fault::new(
        FaultEndpoint::Account,
        FaultKind::Status {
            status: 502,
            body: None,
            retry_after: None,
        },
    ))
    .unwrap();
    client.account(&conn).await.unwrap();
    assert_eq!(requests(&stats(&sb).await, "account"), 3);

    // Malformed JSON on a typed call: a Protocol error, not retried.
    sb.reset_stats();
    sb.add_fault(Fault::new(FaultEndpoint::Account, FaultKind::MalformedJson))
        .unwrap();
    let err = client.account(&conn).await.unwrap_err();
    assert!(
        matches!(err, ApiError::Protocol { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(requests(&stats(&sb).await, "account"), 1);
}

#[tokio::test]
async fn a_connect_failure_is_retried_even_for_post_and_paths_are_checked() {
    let sb = confidential().spawn().await.unwrap();
    let oauth = oauth(&sb, Some(SECRET), TokenBody::Json);
    let source = SimpleSource::new(
        oauth,
        AccessToken::new("unused-access-token-123456"),
        RefreshToken::new("unused-refresh-token-123456"),
    );
    let endpoints = KitEndpoints::builder()
        .base_url("http://127.0.0.1:1")
        .client_id(CLIENT)
        .redirect_uri(REDIRECT)
        .build()
        .unwrap();
    let client = KitClient::new(&endpoints, source.clone())
        .unwrap()
        .with_retry_policy(fast_retries());
    let conn = connection_id();
    let err = client
        .send(&conn, &KitRequest::post("/v4/tags"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Transport(TransportError::Connect(_))),
        "{err:?}"
    );
    // Connect failures (nothing was sent) are retried even for POST; the token is fetched once.
    assert_eq!(source.access_calls.load(Ordering::SeqCst), 1);
    assert!(err.is_transient());

    for bad in [
        "https://evil.example/v4/x",
        "//evil.example/x",
        "v4/x",
        "/v4/x?a=1",
    ] {
        let err = client.send(&conn, &KitRequest::get(bad)).await.unwrap_err();
        assert!(matches!(err, ApiError::InvalidRequest(_)), "{bad}: {err:?}");
    }
}

/// A small paginated list in Kit's shape, for the cursor helper (the sandbox serves no list).
async fn list_server(total: usize) -> String {
    use axum::extract::Query;
    use axum::http::HeaderMap;
    use axum::routing::get;
    use std::collections::HashMap;

    let app = axum::Router::new().route(
        "/v4/subscribers",
        get(move |headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
            if headers.get("authorization").and_then(|v| v.to_str().ok())
                != Some("Bearer list-token-abcdefghijklmnop")
            {
                return (
                    axum::http::StatusCode::UNAUTHORIZED,
                    axum::Json(serde_json::json!({"errors":["The access token is invalid"]})),
                );
            }
            if q.contains_key("stuck") {
                // A broken server: always "more", always the same cursor.
                let body = serde_json::json!({
                    "subscribers": [],
                    "pagination": {"has_next_page": true, "end_cursor": "cur-0"}
                });
                return (axum::http::StatusCode::OK, axum::Json(body));
            }
            let per_page: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(2);
            let start: usize = q
                .get("after")
                .and_then(|c| c.strip_prefix("cur-"))
                .and_then(|n| n.parse::<usize>().ok())
                .map_or(0, |n| n + 1);
            let end = (start + per_page).min(total);
            let items: Vec<Value> = (start..end)
                .map(|i| serde_json::json!({"id": i, "email_address": format!("s{i}@example.com")}))
                .collect();
            let body = serde_json::json!({
                "subscribers": items,
                "pagination": {
                    "has_previous_page": start > 0,
                    "has_next_page": end < total,
                    "start_cursor": format!("cur-{start}"),
                    "end_cursor": if end > start { Value::from(format!("cur-{}", end - 1)) } else { Value::Null },
                    "per_page": per_page,
                }
            });
            (axum::http::StatusCode::OK, axum::Json(body))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn cursor_pagination_walks_every_page() {
    #[derive(Debug, serde::Deserialize)]
    struct Subscriber {
        id: u64,
        email_address: String,
    }
    let sb = confidential().spawn().await.unwrap();
    let base = list_server(7).await;
    let source = SimpleSource::new(
        oauth(&sb, Some(SECRET), TokenBody::Json),
        AccessToken::new("list-token-abcdefghijklmnop"),
        RefreshToken::new("unused-refresh-token-123456"),
    );
    let endpoints = KitEndpoints::builder()
        .base_url(&base)
        .client_id(CLIENT)
        .redirect_uri(REDIRECT)
        .build()
        .unwrap();
    let client = KitClient::new(&endpoints, source).unwrap();
    let conn = connection_id();

    let mut pages = client.paginate::<Subscriber>(
        conn.clone(),
        KitRequest::get("/v4/subscribers"),
        "subscribers",
        Some(3),
    );
    let mut sizes = Vec::new();
    let mut ids = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        sizes.push(page.items.len());
        ids.extend(page.items.iter().map(|s| s.id));
        assert!(
            page.items
                .iter()
                .all(|s| s.email_address.ends_with("@example.com"))
        );
    }
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(ids, (0..7).collect::<Vec<_>>());
    assert!(pages.next_page().await.unwrap().is_none());

    let all = client
        .paginate::<Subscriber>(
            conn.clone(),
            KitRequest::get("/v4/subscribers"),
            "subscribers",
            Some(2),
        )
        .collect_all(100)
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
    let err = client
        .paginate::<Subscriber>(
            conn,
            KitRequest::get("/v4/subscribers"),
            "subscribers",
            Some(2),
        )
        .collect_all(3)
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::InvalidRequest(_)), "{err:?}");

    // A server that never advances its cursor cannot make the walk loop forever.
    let mut stuck = client.paginate::<Subscriber>(
        connection_id(),
        KitRequest::get("/v4/subscribers").query("stuck", "1"),
        "subscribers",
        None,
    );
    assert!(stuck.next_page().await.unwrap().is_some());
    let err = stuck.next_page().await.unwrap_err();
    assert!(matches!(err, ApiError::Protocol { .. }), "{err:?}");
    assert!(stuck.next_page().await.unwrap().is_none());
}
