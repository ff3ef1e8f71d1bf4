//! The front middleware: counts every request and injects the armed faults.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};

use crate::faults::{FaultEndpoint, FaultKind};
use crate::server::ConnKill;

use super::AppState;

fn classify(path: &str, is_post: bool) -> (&'static str, Option<FaultEndpoint>) {
    match path {
        "/v4/oauth/authorize" | "/oauth/authorize" => (
            if is_post { "consent" } else { "authorize" },
            Some(FaultEndpoint::Authorize),
        ),
        "/v4/oauth/token" | "/oauth/token" => ("token", Some(FaultEndpoint::Token)),
        "/v4/oauth/revoke" | "/oauth/revoke" => ("revoke", Some(FaultEndpoint::Revoke)),
        "/v4/account" => ("account", Some(FaultEndpoint::Account)),
        p if p.starts_with("/v4/") => ("api", Some(FaultEndpoint::Api)),
        p if p.starts_with("/apps/") => ("apps", None),
        p if p.starts_with("/_sandbox/") => ("control", None),
        _ => ("other", None),
    }
}

pub(super) async fn front(State(s): AppState, req: Request, next: Next) -> Response {
    let (name, target) = classify(req.uri().path(), req.method() == http::Method::POST);
    s.model().stats.count_request(name);
    let fault = match target {
        Some(t) if s.faults_armed.load(Ordering::Relaxed) => {
            let mut faults = s.faults();
            let f = faults.take(t);
            s.faults_armed.store(!faults.is_empty(), Ordering::Relaxed);
            f
        }
        _ => None,
    };
    let Some(fault) = fault else {
        return next.run(req).await;
    };
    s.model().stats.faults_injected += 1;
    match fault {
        FaultKind::Status {
            status,
            body,
            retry_after,
        } => status_fault(status, body, retry_after),
        FaultKind::Latency { ms } => {
            // Processed first, answered late: a client that times out has still changed the
            // server's state, as with a slow real server.
            let resp = next.run(req).await;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            resp
        }
        FaultKind::Drop => {
            let kill = req.extensions().get::<ConnKill>().cloned();
            drop_connection(kill).await
        }
        FaultKind::MalformedJson => malformed_json(target),
        FaultKind::RotateThenDrop => {
            let kill = req.extensions().get::<ConnKill>().cloned();
            let processed = next.run(req).await;
            drop(processed);
            drop_connection(kill).await
        }
    }
}

fn status_fault(status: u16, body: Option<String>, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut resp = match body {
        Some(b) => {
            let ct = if serde_json::from_str::<serde_json::Value>(&b).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            (status, [(CONTENT_TYPE, ct)], b).into_response()
        }
        None => status.into_response(),
    };
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn malformed_json(target: Option<FaultEndpoint>) -> Response {
    let body = match target {
        Some(FaultEndpoint::Token) => {
            r#"{"access_token":"sandbox-malformed","token_type":"Bearer","expires_in":72"#
        }
        Some(FaultEndpoint::Account | FaultEndpoint::Api) => r#"{"user":{"email":"sandbox@exam"#,
        _ => r#"{"error":"#,
    };
    (StatusCode::OK, [(CONTENT_TYPE, "application/json")], body).into_response()
}

/// Closes the connection without a response. The connection task drops the connection (and
/// this future with it) as soon as it is notified.
async fn drop_connection(kill: Option<ConnKill>) -> Response {
    match kill {
        Some(ConnKill(notify)) => {
            notify.notify_one();
            std::future::pending::<Response>().await
        }
        // Only reachable if the router is served by something other than `server::serve`.
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
