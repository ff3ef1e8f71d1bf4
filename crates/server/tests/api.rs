//! The broker API beyond the happy path of `e2e.rs`: cursor pagination and the tenant and state
//! filters of `GET /v1/connections`, and the proxy's retry rules against the Kit sandbox (a 429
//! waited out, an access token Kit considers expired refreshed once and retried).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use kit_sandbox::{Fault, FaultEndpoint, FaultKind};
use reqwest::StatusCode;
use serde_json::Value;
use support::{API_KEY, Extra};

async fn get(url: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn ids(page: &Value) -> Vec<String> {
    page["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_with_a_cursor_and_filters_by_tenant_and_state() {
    let support::Broker {
        dir: _dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra::default()).await;
    let begin = support::begin_url(&base, &sandbox);
    for (account, tenant) in [("Ann", "acme"), ("Ben", "acme"), ("Cid", "globex")] {
        support::install_from(
            &base,
            &sandbox,
            &format!("{begin}&tenant={tenant}"),
            account,
        )
        .await;
    }
    let list = format!("{base}/v1/connections");

    let (status, first) = get(&format!("{list}?limit=2")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&first).len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = get(&format!("{list}?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&second).len(), 1);
    assert!(second["next_cursor"].is_null(), "{second}");
    let all: BTreeSet<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(all.len(), 3, "no connection twice, none missing");

    assert_eq!(ids(&get(&format!("{list}?tenant=acme")).await.1).len(), 2);
    assert_eq!(ids(&get(&format!("{list}?tenant=globex")).await.1).len(), 1);
    assert_eq!(
        ids(&get(&format!("{list}?tenant=initech")).await.1).len(),
        0
    );

    // Cid's creator revokes the app at Kit; the next refresh finds the grant dead.
    let cid = support::connection_id(&base, "Cid").await;
    let grant = sandbox
        .grants()
        .into_iter()
        .find(|g| g.account_name == "Cid")
        .unwrap();
    assert!(sandbox.revoke_grant(grant.id));
    let refused = reqwest::Client::new()
        .post(format!("{base}/v1/connections/{cid}/refresh"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"], "reauth_required", "{refused}");
    let (_, unauthorized) = get(&format!("{list}?state=unauthorized")).await;
    assert_eq!(ids(&unauthorized), std::slice::from_ref(&cid));
    let (_, authorized) = get(&format!("{list}?state=authorized")).await;
    assert_eq!(ids(&authorized).len(), 2);
    assert!(!ids(&authorized).contains(&cid));
    let (status, error) = get(&format!("{list}?state=sleepy")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "bad_request", "{error}");

    // A query axum cannot read is the API's JSON error too — and only after the key is
    // checked, so a caller without one learns nothing about what it sent.
    let (status, error) = get(&format!("{list}?limit=abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "bad_request", "{error}");
    let anonymous = reqwest::Client::new()
        .get(format!("{list}?limit=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let anonymous: Value = anonymous.json().await.unwrap();
    assert_eq!(anonymous["error"], "unauthorized", "{anonymous}");
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_waits_out_a_429_and_refreshes_a_token_kit_calls_expired() {
    let support::Broker {
        dir: _dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra::default()).await;
    let id = support::install(&base, &sandbox, "Gus").await;
    let account = format!("{base}/v1/connections/{id}/kit/account");
    let calls = || {
        sandbox
            .stats()
            .requests
            .get("account")
            .copied()
            .unwrap_or(0)
    };
    let before = calls();

    // Kit rate-limits once: the proxy waits `Retry-After` and tries again.
    sandbox
        .add_fault(Fault {
            endpoint: FaultEndpoint::Account,
            kind: FaultKind::Status {
                status: 429,
                body: None,
                retry_after: Some(1),
            },
            count: 1,
        })
        .unwrap();
    let (status, body) = get(&account).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["name"], "Gus");
    assert_eq!(calls(), before + 2);

    // Kit's clock runs past the token's life (ours does not): Kit answers 401 "The access token
    // expired", the proxy refreshes once and retries with the new token.
    sandbox.advance_clock(172_800 + 60);
    let refreshes = sandbox.stats().refreshes_ok;
    let (status, body) = get(&account).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["name"], "Gus");
    assert_eq!(sandbox.stats().refreshes_ok, refreshes + 1);
    assert_eq!(calls(), before + 4);
    running.shutdown().await;
}
