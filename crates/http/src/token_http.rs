//! The HTTP client `oauth2` calls for a token request: the shared `reqwest` client, the body
//! re-encoded as JSON when so configured, capped responses, and 408/429/5xx turned into
//! transient failures with their `Retry-After` before `oauth2` parses anything.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use oauth2::AsyncHttpClient;
use thiserror::Error;

use crate::config::TokenBody;
use crate::transport::{TransportError, execute};

/// Why the HTTP layer under `oauth2` produced no usable response.
#[derive(Debug, Error)]
pub(crate) enum CallError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// 408, 429 or 5xx: the server is busy or failing; nothing to parse.
    #[error("HTTP {status}")]
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
}

/// One token-endpoint call's HTTP client for `oauth2`: remembers the status it saw, so that a
/// body `oauth2` cannot parse is reported with its status.
pub(crate) struct OAuthHttp<'a> {
    pub(crate) client: &'a reqwest::Client,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) body: TokenBody,
    pub(crate) status: AtomicU16,
}

impl OAuthHttp<'_> {
    pub(crate) fn status(&self) -> Option<u16> {
        match self.status.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s),
        }
    }

    async fn send(&self, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, CallError> {
        let (parts, body) = request.into_parts();
        let (body, content_type) = match self.body {
            TokenBody::Form => (body, "application/x-www-form-urlencoded"),
            TokenBody::Json => (form_to_json(&body), "application/json"),
        };
        let mut headers = parts.headers;
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        let builder = self
            .client
            .request(parts.method, parts.uri.to_string())
            .headers(headers)
            .body(body);
        let raw = execute(builder, self.timeout, self.max_body)
            .await
            .inspect_err(|e| {
                if let TransportError::BodyTooLarge { status, .. } = e {
                    self.status.store(*status, Ordering::Relaxed);
                }
            })?;
        self.status.store(raw.status.as_u16(), Ordering::Relaxed);
        if is_busy(raw.status) {
            return Err(CallError::Busy {
                status: raw.status.as_u16(),
                retry_after: raw.retry_after(),
            });
        }
        let mut response = http::Response::new(raw.body.to_vec());
        *response.status_mut() = raw.status;
        *response.headers_mut() = raw.headers;
        Ok(response)
    }
}

impl<'c> AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = CallError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, CallError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

pub(crate) fn is_busy(status: http::StatusCode) -> bool {
    status == http::StatusCode::TOO_MANY_REQUESTS
        || status == http::StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// `oauth2` always builds a form body; Kit documents JSON. Same pairs, as a JSON object of
/// strings (the first of a repeated name wins; `oauth2` repeats none).
pub(crate) fn form_to_json(form: &[u8]) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(form) {
        map.entry(k.into_owned())
            .or_insert_with(|| serde_json::Value::String(v.into_owned()));
    }
    serde_json::Value::Object(map).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_become_json_objects() -> Result<(), serde_json::Error> {
        let json = form_to_json(b"grant_type=refresh_token&refresh_token=a%2Bb&client_id=app");
        let v: serde_json::Value = serde_json::from_slice(&json)?;
        assert_eq!(v["grant_type"], "refresh_token");
        assert_eq!(v["refresh_token"], "a+b");
        assert_eq!(v["client_id"], "app");
        Ok(())
    }
}
