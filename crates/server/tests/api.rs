//! The broker API beyond the happy path of `e2e.rs`: cursor pagination and the tenant and state
//! filters of `GET /v1/connections`, and the proxy's retry rules against the Kit sandbox (a 429
//! waited out, an access token Kit considers expired refreshed once and retried).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kit_oauth::RefresherConfig;
use kit_oauth::core::{Clock as _, ManualClock, SystemClock};
use kit_oauth_server::ApiKeys;
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

const ACME_KEY: &str = "acme-api-key-0123456789";

async fn token(base: &str, id: &str, key: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/connections/{id}/token"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    (status, response.json().await.unwrap())
}

/// `POST /v1/connections/{id}/token` is answered from the manager's cache when the token is
/// fresh, so the tenant check has to hold there too: a key scoped to one tenant gets 404 for
/// another tenant's connection (and for one without a tenant) whether that connection is cached
/// or not, and its request never refreshes that connection even when it is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_key_gets_tokens_of_its_tenant_only_cached_or_not() {
    let clock = ManualClock::new(SystemClock.now());
    let support::Broker {
        dir: _dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra {
        clock: Some(Arc::new(clock.clone())),
        api_keys: Some(ApiKeys::parse(&format!("{API_KEY},acme={ACME_KEY}")).unwrap()),
        // Only this test's requests refresh: the background refresher scans once, at start.
        refresher: Some(RefresherConfig {
            interval: Duration::from_secs(3_600),
            ..RefresherConfig::default()
        }),
        ..Extra::default()
    })
    .await;
    let begin = support::begin_url(&base, &sandbox);
    for (account, tenant) in [
        ("Ann", Some("acme")),
        ("Cid", Some("globex")),
        ("Dee", None),
    ] {
        let begin = match tenant {
            Some(tenant) => format!("{begin}&tenant={tenant}"),
            None => begin.clone(),
        };
        support::install_from(&base, &sandbox, &begin, account).await;
    }
    let ann = support::connection_id(&base, "Ann").await;
    let cid = support::connection_id(&base, "Cid").await;
    let dee = support::connection_id(&base, "Dee").await;
    let refreshes = || sandbox.stats().refreshes_ok;

    // Cold (first read of the row) and warm (from the cache): the same answer.
    let (status, cold) = token(&base, &ann, ACME_KEY).await;
    assert_eq!(status, StatusCode::OK, "{cold}");
    let (status, warm) = token(&base, &ann, ACME_KEY).await;
    assert_eq!(status, StatusCode::OK, "{warm}");
    assert_eq!(cold, warm);
    let fields: BTreeSet<&str> = warm
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, BTreeSet::from(["access_token", "expires_at"]));
    let (_, shown) = get(&format!("{base}/v1/connections/{ann}")).await;
    assert_eq!(warm["expires_at"], shown["expires_at"], "{shown}");

    for other in [&cid, &dee] {
        // Not cached yet for this key's request, then cached by the unscoped key's.
        let (status, body) = token(&base, other, ACME_KEY).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["error"], "not_found");
        let (status, _) = token(&base, other, API_KEY).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = token(&base, other, ACME_KEY).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    let (status, _) = token(&base, "no-such-connection", ACME_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(refreshes(), 0, "every token handed out was fresh");

    // Two days later every token is due: the scoped key's request for another tenant's
    // connection is still 404 and refreshes nothing; its own connection is refreshed once.
    sandbox.advance_clock(172_800);
    clock.advance(Duration::from_secs(172_800));
    let (status, _) = token(&base, &cid, ACME_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(refreshes(), 0);
    let (status, renewed) = token(&base, &ann, ACME_KEY).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_ne!(renewed["access_token"], warm["access_token"]);
    assert_ne!(renewed["expires_at"], warm["expires_at"]);
    assert_eq!(refreshes(), 1);
    let (_, shown) = get(&format!("{base}/v1/connections/{ann}")).await;
    assert_eq!(renewed["expires_at"], shown["expires_at"], "{shown}");
    running.shutdown().await;
}
