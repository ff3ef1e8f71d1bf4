//! The one HTTP client of the process and the bounded way every response is read.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use thiserror::Error;

use crate::config::ConfigError;

/// `User-Agent` of every request: the crate and its version.
pub const USER_AGENT: &str = concat!("kit-oauth-http/", env!("CARGO_PKG_VERSION"));

/// Idle pooled connections are kept this long (keep-alive).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Builds a client: rustls, no redirects (an OAuth endpoint that redirects is misconfigured or
/// hostile, and a redirected POST could carry a secret elsewhere), HTTP/2 via ALPN when the
/// server offers it, pooled keep-alive connections.
fn build_client(connect_timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .tcp_keepalive(Duration::from_secs(60))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ConfigError::HttpClient(e.without_url().to_string()))
}

/// The process-wide client for a connect timeout: one per process in practice (every
/// configuration of an app uses the same timeout), so every adapter shares one connection pool.
///
/// # Errors
/// [`ConfigError::HttpClient`] when TLS cannot be initialised.
pub fn shared_client(connect_timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    static CLIENTS: OnceLock<Mutex<Vec<(Duration, reqwest::Client)>>> = OnceLock::new();
    let clients = CLIENTS.get_or_init(|| Mutex::new(Vec::new()));
    let mut guard = clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, client)) = guard.iter().find(|(t, _)| *t == connect_timeout) {
        return Ok(client.clone());
    }
    let client = build_client(connect_timeout)?;
    guard.push((connect_timeout, client.clone()));
    Ok(client)
}

/// Why no complete response was read. Never carries a URL's query, a header or a body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TransportError {
    /// The request did not finish within its timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// No connection could be opened: the request was certainly not sent.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection failed after the request may have been sent (dropped, reset).
    #[error("connection failed: {0}")]
    Network(String),
    /// The body was larger than the cap; reading stopped there.
    #[error("response body larger than {limit} bytes (status {status})")]
    BodyTooLarge {
        /// The response status.
        status: u16,
        /// The cap.
        limit: usize,
    },
    /// The request could not be built (a bug or an unusable header value).
    #[error("invalid request: {0}")]
    Build(String),
}

impl TransportError {
    /// Whether the server certainly did not process the request.
    #[must_use]
    pub fn certainly_not_sent(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::Build(_))
    }

    fn from_reqwest(e: &reqwest::Error, timeout: Duration) -> Self {
        if e.is_timeout() {
            Self::Timeout(timeout)
        } else if e.is_connect() {
            Self::Connect(describe(e))
        } else if e.is_builder() {
            Self::Build(describe(e))
        } else {
            Self::Network(describe(e))
        }
    }
}

/// The reqwest error and its causes, without the URL.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    // reqwest puts the URL in its Display as "(URL)"; our URLs carry no secret, but keep the
    // message short and generic anyway.
    crate::redact::excerpt(text.as_bytes(), &[])
}

/// A response read in full (within the cap).
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl RawResponse {
    /// `Retry-After` as a duration: delta-seconds or an HTTP date.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        retry_after(&self.headers)
    }
}

/// `Retry-After` as a duration: delta-seconds or an HTTP date (past dates give zero). Values
/// beyond a day are clamped: a server cannot park a client forever.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(24 * 60 * 60);
    let raw = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let d = if let Ok(secs) = raw.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = httpdate::parse_http_date(raw).ok()?;
        when.duration_since(SystemTime::now()).unwrap_or_default()
    };
    Some(d.min(MAX))
}

/// Sends `request` and reads the response body, never more than `max_body` bytes, all within
/// `timeout` (enforced by reqwest and again around the whole exchange).
pub(crate) async fn execute(
    request: reqwest::RequestBuilder,
    timeout: Duration,
    max_body: usize,
) -> Result<RawResponse, TransportError> {
    let work = async {
        let response = request
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| TransportError::from_reqwest(&e, timeout))?;
        read_capped(response, timeout, max_body).await
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(TransportError::Timeout(timeout)),
    }
}

async fn read_capped(
    mut response: reqwest::Response,
    timeout: Duration,
    max_body: usize,
) -> Result<RawResponse, TransportError> {
    let status = response.status();
    let too_large = TransportError::BodyTooLarge {
        status: status.as_u16(),
        limit: max_body,
    };
    if response
        .content_length()
        .is_some_and(|len| len > max_body as u64)
    {
        return Err(too_large);
    }
    let headers = std::mem::take(response.headers_mut());
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| TransportError::from_reqwest(&e, timeout))?
    {
        if body.len() + chunk.len() > max_body {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(RawResponse {
        status,
        headers,
        body: Bytes::from(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("3"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("99999999"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(86_400)));
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("soon"),
        );
        assert_eq!(retry_after(&h), None);
    }
}
