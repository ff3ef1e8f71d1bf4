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
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::Value;
use support::{API_KEY, BrokerApi, Extra};

fn ids(page: &Value) -> Vec<String> {
    BrokerApi::ids(page)
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
            &format!("{begin}&tenant={}", support::tenant_link(tenant)),
            account,
        )
        .await;
    }
    let api = BrokerApi::new(&base, API_KEY);

    let (status, first) = api.list("limit=2").await.pair();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&first).len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = api.list(&format!("limit=2&cursor={cursor}")).await.pair();
    assert_eq!(ids(&second).len(), 1);
    assert!(second["next_cursor"].is_null(), "{second}");
    let all: BTreeSet<String> = ids(&first).into_iter().chain(ids(&second)).collect();
    assert_eq!(all.len(), 3, "no connection twice, none missing");

    assert_eq!(ids(&api.list("tenant=acme").await.body).len(), 2);
    assert_eq!(ids(&api.list("tenant=globex").await.body).len(), 1);
    assert_eq!(ids(&api.list("tenant=initech").await.body).len(), 0);

    // Cid's creator revokes the app at Kit; the next refresh finds the grant dead.
    let cid = support::connection_id(&base, "Cid").await;
    let grant = sandbox
        .grants()
        .into_iter()
        .find(|g| g.account_name == "Cid")
        .unwrap();
    assert!(sandbox.revoke_grant(grant.id));
    let refused = api.refresh(&cid).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.error(), "reauth_required", "{refused:?}");
    let (_, unauthorized) = api.list("state=unauthorized").await.pair();
    assert_eq!(ids(&unauthorized), std::slice::from_ref(&cid));
    let (_, authorized) = api.list("state=authorized").await.pair();
    assert_eq!(ids(&authorized).len(), 2);
    assert!(!ids(&authorized).contains(&cid));
    let (status, error) = api.list("state=sleepy").await.pair();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "bad_request", "{error}");

    // A query axum cannot read is the API's JSON error too — and only after the key is
    // checked, so a caller without one learns nothing about what it sent.
    // Out of range or not a cursor: refused, never clamped or read as "no cursor".
    for query in [
        "limit=201",
        "limit=0",
        "cursor=not%20a%20cursor",
        "cursor=",
        "tenant=",
    ] {
        let (status, error) = api.list(query).await.pair();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert_eq!(error["error"], "bad_request", "{query}: {error}");
    }
    let (status, error) = api.list("limit=abc").await.pair();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error["error"], "bad_request", "{error}");
    let anonymous = BrokerApi::anonymous(&base).list("limit=abc").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.error(), "unauthorized", "{anonymous:?}");
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
    let api = BrokerApi::new(&base, API_KEY);
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
    let (status, body) = api.kit(Method::GET, &id, "account", None).await.pair();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["name"], "Gus");
    assert_eq!(calls(), before + 2);

    // Kit's clock runs past the token's life (ours does not): Kit answers 401 "The access token
    // expired", the proxy refreshes once and retries with the new token.
    sandbox.advance_clock(172_800 + 60);
    let refreshes = sandbox.stats().refreshes_ok;
    let (status, body) = api.kit(Method::GET, &id, "account", None).await.pair();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account"]["name"], "Gus");
    assert_eq!(sandbox.stats().refreshes_ok, refreshes + 1);
    // The 401, the refresh's one use of its new token (which retires the pair it replaced
    // under revoke-on-use), and the retry.
    assert_eq!(calls(), before + 5);
    running.shutdown().await;
}

const ACME_KEY: &str = "acme-api-key-0123456789";

async fn token(base: &str, id: &str, key: &str) -> (StatusCode, Value) {
    let reply = BrokerApi::new(base, key).token(id).await;
    if reply.status == StatusCode::OK {
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    reply.pair()
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
            Some(tenant) => format!("{begin}&tenant={}", support::tenant_link(tenant)),
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
    let (_, shown) = BrokerApi::new(&base, API_KEY).show(&ann).await.pair();
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
    let (_, shown) = BrokerApi::new(&base, API_KEY).show(&ann).await.pair();
    assert_eq!(renewed["expires_at"], shown["expires_at"], "{shown}");
    running.shutdown().await;
}

/// The OpenAPI document describes every route of the broker API, the proxy included (one
/// handler, five methods), with its errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_with_its_errors() {
    let broker = support::Broker::start(Extra::default()).await;
    let doc: Value = reqwest::get(format!("{}/openapi.json", broker.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let described: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| m.as_str() != "parameters")
                .map(move |m| (m.clone(), path.clone()))
        })
        .collect();
    let expected: BTreeSet<(String, String)> = [
        ("get", "/v1/connections"),
        ("post", "/v1/connections"),
        ("get", "/v1/connections/{id}"),
        ("delete", "/v1/connections/{id}"),
        ("post", "/v1/connections/{id}/token"),
        ("post", "/v1/connections/{id}/refresh"),
        ("get", "/v1/connections/{id}/events"),
        ("get", "/v1/connections/{id}/kit/{path}"),
        ("post", "/v1/connections/{id}/kit/{path}"),
        ("put", "/v1/connections/{id}/kit/{path}"),
        ("patch", "/v1/connections/{id}/kit/{path}"),
        ("delete", "/v1/connections/{id}/kit/{path}"),
        ("post", "/v1/connections/{id}/bulk/{kind}"),
        ("get", "/v1/bulk/{id}"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(described, expected);
    for (method, path) in &expected {
        let responses = &paths[path][method]["responses"];
        assert!(
            responses.get("401").is_some(),
            "{method} {path}: {responses}"
        );
    }
    let proxy = &paths["/v1/connections/{id}/kit/{path}"]["post"]["responses"];
    assert!(
        proxy.get("413").is_some() && proxy.get("default").is_some(),
        "{proxy}"
    );
    let limit = doc["paths"]["/v1/connections"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()
        .clone();
    assert_eq!(limit["in"], "query");
    assert_eq!(limit["schema"]["maximum"], 200, "{limit}");
    broker.running.shutdown().await;
}
