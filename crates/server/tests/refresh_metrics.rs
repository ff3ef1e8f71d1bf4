//! `/metrics` after refreshes: the refresh latency histogram by outcome and the lease waits,
//! with two instances sharing one SQLite database and one Kit sandbox. Alone in its binary:
//! the Prometheus registry is per process and the counts below are exact.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kit_sandbox::{Fault, FaultEndpoint, FaultKind};
use reqwest::StatusCode;
use serde_json::Value;
use support::{API_KEY, BrokerApi, Extra, sample};

async fn force_refresh(base: &str, id: &str) -> (StatusCode, Value) {
    let reply = BrokerApi::new(base, API_KEY).refresh(id).await;
    (reply.status, reply.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_latency_and_lease_waits_are_in_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let database = support::sqlite_url(dir.path());
    let (listener_a, base_a) = support::listener().await;
    let (listener_b, base_b) = support::listener().await;
    let sandbox = support::sandbox(&base_a).await;
    let a = support::start(listener_a, &base_a, &sandbox, &database, Extra::default()).await;
    let b = support::start(listener_b, &base_b, &sandbox, &database, Extra::default()).await;
    let id = support::install(&base_a, &sandbox, "Dana").await;

    let before = support::metrics(&base_a).await;
    assert_eq!(
        sample(
            &before,
            "kit_oauth_refresh_duration_seconds_count{outcome=\"refreshed\"}"
        ),
        0.0
    );

    // Instance A refreshes and Kit holds its answer for 1.5 s; meanwhile instance B is asked to
    // refresh the same connection: it finds A's lease, waits for A's commit, and hands out A's
    // token without calling Kit.
    sandbox
        .add_fault(Fault {
            endpoint: FaultEndpoint::Token,
            kind: FaultKind::Latency { ms: 1500 },
            count: 1,
        })
        .unwrap();
    let (base, conn) = (base_a.clone(), id.clone());
    let first = tokio::spawn(async move { force_refresh(&base, &conn).await });
    for _ in 0..100 {
        if sandbox.stats().refreshes_ok == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sandbox.stats().refreshes_ok, 1, "A's refresh reached Kit");
    let (status_b, body_b) = force_refresh(&base_b, &id).await;
    let (status_a, body_a) = first.await.unwrap();
    assert_eq!((status_a, status_b), (StatusCode::OK, StatusCode::OK));
    assert_eq!(body_a["access_token"], body_b["access_token"]);
    assert_eq!(
        sandbox.stats().refreshes_ok,
        1,
        "one refresh at Kit for both"
    );

    // A refresh that Kit fails (503) is a transient failure.
    sandbox
        .add_fault(Fault {
            endpoint: FaultEndpoint::Token,
            kind: FaultKind::Status {
                status: 503,
                body: None,
                retry_after: None,
            },
            count: 1,
        })
        .unwrap();
    let (status, body) = force_refresh(&base_a, &id).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Both instances share the process's registry: either one shows everything.
    let metrics = support::metrics(&base_b).await;
    for (series, expected) in [
        (
            "kit_oauth_refresh_duration_seconds_count{outcome=\"refreshed\"}",
            1.0,
        ),
        (
            "kit_oauth_refresh_duration_seconds_count{outcome=\"transient_failure\"}",
            1.0,
        ),
        (
            "kit_oauth_refresh_duration_seconds_bucket{outcome=\"refreshed\",le=\"+Inf\"}",
            1.0,
        ),
        (
            "kit_oauth_refresh_duration_seconds_bucket{outcome=\"refreshed\",le=\"1\"}",
            0.0,
        ),
        ("kit_oauth_lease_waits_total{outcome=\"woke\"}", 1.0),
        ("kit_oauth_lease_waits_total{outcome=\"gave_up\"}", 0.0),
        ("kit_oauth_lease_wait_seconds_count", 1.0),
        ("kit_oauth_refreshes_total{outcome=\"ok\"}", 1.0),
        (
            "kit_oauth_refreshes_total{outcome=\"transient_failure\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&metrics, series), expected, "{series} in\n{metrics}");
    }
    // The refresh took Kit's 1.5 s at least; B waited for most of it.
    assert!(
        sample(
            &metrics,
            "kit_oauth_refresh_duration_seconds_sum{outcome=\"refreshed\"}"
        ) >= 1.5
    );
    assert!(metrics.contains("# HELP kit_oauth_refresh_duration_seconds"));
    a.shutdown().await;
    b.shutdown().await;
}
