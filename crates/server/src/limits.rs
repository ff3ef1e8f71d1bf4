//! A time limit and a body-size limit on every route, answered in the route's own language:
//! the API's JSON error under `/v1`, a page elsewhere.
//!
//! A request that runs past [`RouteLimits::timeout`] is answered 503 `timeout` (the broker, not
//! the caller, was too slow; retrying later is right, as for the other 503s). Dropping the
//! handler is safe: a refresh in flight runs in its own task and commits whatever the caller
//! does (see the manager's single-flight).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use http_body_util::BodyExt as _;

use crate::pages::error_page;
use crate::web::ApiError;

/// The largest request body under `/v1` (what the proxy forwards to Kit).
pub const API_BODY_LIMIT: usize = 1024 * 1024;
/// The largest request body of the HTML routes (the dashboard's small forms).
pub const FORM_BODY_LIMIT: usize = 16 * 1024;
/// The default time limit of one request: the proxy's worst case is two calls to Kit (30 s
/// each at most in practice far less) around a refresh.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The limits every route gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLimits {
    /// The longest a request may take.
    pub timeout: Duration,
}

impl Default for RouteLimits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

fn is_api(request: &Request) -> bool {
    request.uri().path().starts_with("/v1/")
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(error_page(title, message, "/").into_string()),
    )
        .into_response()
}

fn too_large(api: bool, limit: usize) -> Response {
    let kib = limit / 1024;
    if api {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than {kib} KiB"),
        )
        .into_response()
    } else {
        page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Too much data",
            &format!("This form sent more than {kib} KiB, which no page of the broker needs."),
        )
    }
}

fn timed_out(api: bool, timeout: Duration) -> Response {
    let secs = timeout.as_secs_f64();
    tracing::warn!(timeout_secs = secs, "request timed out");
    let mut response = if api {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {secs} s; try again"),
        )
        .into_response()
    } else {
        page(
            StatusCode::SERVICE_UNAVAILABLE,
            "This took too long",
            "The broker or Kit was too slow to answer. Please try again in a moment.",
        )
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    response
}

/// The middleware: refuses a declared body over the limit before reading it, caps a streamed
/// one, and bounds the whole request in time.
///
/// A streamed body (no `Content-Length`) is only found too large as a handler reads it, and
/// each reader reports that its own way (axum's extractors as plain text); so the cap records
/// that it tripped, and the answer is then this middleware's 413, in the route's language.
pub async fn enforce(State(limits): State<RouteLimits>, request: Request, next: Next) -> Response {
    let api = is_api(&request);
    let limit = if request
        .uri()
        .path()
        .starts_with(crate::bulk::CALLBACK_PREFIX)
    {
        // Kit's bulk results (the callback route bounds them itself).
        kit_oauth::store::BULK_RESULT_MAX_BYTES
    } else if api {
        API_BODY_LIMIT
    } else {
        FORM_BODY_LIMIT
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return too_large(api, limit);
    }
    let overflowed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&overflowed);
    let request = request.map(|body| {
        Body::new(
            http_body_util::Limited::new(body, limit).map_err(move |error| {
                if error.is::<http_body_util::LengthLimitError>() {
                    flag.store(true, Ordering::Relaxed);
                }
                error
            }),
        )
    });
    match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(_) if overflowed.load(Ordering::Relaxed) => too_large(api, limit),
        Ok(response) => response,
        Err(_) => timed_out(api, limits.timeout),
    }
}
