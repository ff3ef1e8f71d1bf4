//! Every route has a body limit and a time limit, answered in the route's language: the API's
//! JSON error under `/v1`, a page on the HTML routes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
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

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// A `POST` of `size` bytes of `kind` sent in 64 KiB chunks with no `Content-Length` (chunked
/// transfer encoding), so only the limit on the body as read can stop it. Returns the status,
/// the content type and the body as text.
async fn streamed(
    url: &str,
    key: Option<&str>,
    kind: &str,
    size: usize,
) -> (StatusCode, String, String) {
    let chunks: Vec<Result<Bytes, Infallible>> = (0..size)
        .step_by(64 * 1024)
        .map(|start| Ok(Bytes::from(vec![b' '; (size - start).min(64 * 1024)])))
        .collect();
    let mut request = http::Request::post(url).header("content-type", kind);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request
        .body(axum::body::Body::from_stream(futures_util::stream::iter(
            chunks,
        )))
        .unwrap();
    assert!(request.headers().get("content-length").is_none());
    let answer = Client::builder(TokioExecutor::new())
        .build_http()
        .request(request)
        .await
        .unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        content_type,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_body_over_the_limit_is_413_in_the_routes_language_and_never_forwarded() {
    let broker = support::Broker::start(Extra::default()).await;
    let id = support::install(&broker.base, &broker.sandbox, "Ann").await;
    let proxy = format!("{}/v1/connections/{id}/kit/tags", broker.base);

    // At the limit, the proxy forwards the streamed body: one call to Kit.
    let (status, _, body) = streamed(&proxy, Some(API_KEY), JSON, API_BODY_LIMIT).await;
    assert_ne!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(api_calls(&broker.sandbox), 1);

    // One byte more: the API's JSON error, and Kit is not called, from the proxy or from
    // another /v1 route that reads a body (a bulk request, also forwarded to Kit).
    let bulk = format!("{}/v1/connections/{id}/bulk/subscribers", broker.base);
    for url in [&proxy, &bulk] {
        let (status, content_type, body) =
            streamed(url, Some(API_KEY), JSON, API_BODY_LIMIT + 1).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{url}: {body}");
        assert!(
            content_type.starts_with("application/json"),
            "{url}: {content_type}"
        );
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["error"], "too_large", "{url}: {body}");
    }
    assert_eq!(api_calls(&broker.sandbox), 1);

    // An HTML form: a page.
    let (status, content_type, body) = streamed(
        &format!("{}/login", broker.base),
        None,
        FORM,
        FORM_BODY_LIMIT + 1,
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert!(body.contains("Too much data"), "{body}");
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
