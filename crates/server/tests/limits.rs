//! Every route has a body limit and a time limit, answered in the route's language: the API's
//! JSON error under `/v1`, a page on the HTML routes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kit_oauth_server::RouteLimits;
use kit_oauth_server::limits::{API_BODY_LIMIT, FORM_BODY_LIMIT};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind};
use reqwest::{Method, StatusCode};
use support::{API_KEY, BrokerApi, Extra};

fn api_calls(sandbox: &kit_sandbox::SandboxHandle) -> u64 {
    sandbox.stats().requests.get("api").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_413_in_the_routes_language_and_never_forwarded() {
    let broker = support::Broker::start(Extra::default()).await;
    let id = support::install(&broker.base, &broker.sandbox, "Ann").await;
    let api = BrokerApi::new(&broker.base, API_KEY);

    // The proxy forwards a body at the limit, and refuses one byte more without calling Kit.
    let at_limit = api
        .kit(Method::POST, &id, "tags", Some(vec![b' '; API_BODY_LIMIT]))
        .await;
    assert_ne!(
        at_limit.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{at_limit:?}"
    );
    let forwarded = api_calls(&broker.sandbox);
    assert_eq!(forwarded, 1);
    let over = api
        .kit(
            Method::POST,
            &id,
            "tags",
            Some(vec![b' '; API_BODY_LIMIT + 1]),
        )
        .await;
    assert_eq!(over.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(over.error(), "too_large", "{over:?}");
    assert_eq!(api_calls(&broker.sandbox), forwarded);
    // Any /v1 route, with or without a key.
    let anonymous = BrokerApi::anonymous(&broker.base)
        .call(
            Method::POST,
            &format!("/v1/connections/{id}/token"),
            Some(vec![b' '; API_BODY_LIMIT + 1]),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(anonymous.error(), "too_large");

    // An HTML form: a page.
    let login = reqwest::Client::new()
        .post(format!("{}/login", broker.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={}", "k".repeat(FORM_BODY_LIMIT)))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        login.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(login.text().await.unwrap().contains("Too much data"));
    broker.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_time_limit_is_503_in_the_routes_language() {
    let broker = support::Broker::start(Extra {
        route_limits: Some(RouteLimits {
            timeout: Duration::from_millis(400),
        }),
        ..Extra::default()
    })
    .await;
    let id = support::install(&broker.base, &broker.sandbox, "Ann").await;
    let slow = |endpoint| Fault {
        endpoint,
        kind: FaultKind::Latency { ms: 2_000 },
        count: 1,
    };

    broker.sandbox.add_fault(slow(FaultEndpoint::Api)).unwrap();
    let api = BrokerApi::new(&broker.base, API_KEY);
    let answer = api.kit(Method::GET, &id, "tags", None).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.error(), "timeout", "{answer:?}");
    assert_eq!(answer.header("retry-after"), Some("1"));

    // The install's callback waits on Kit's token endpoint: a page.
    let browser = support::browser();
    let callback = support::until_callback(
        &browser,
        &broker.sandbox,
        &support::begin_url(&broker.base, &broker.sandbox),
        "Ben",
    )
    .await;
    broker
        .sandbox
        .add_fault(slow(FaultEndpoint::Token))
        .unwrap();
    let page = browser.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.text().await.unwrap().contains("This took too long"));
    broker.running.shutdown().await;
}
