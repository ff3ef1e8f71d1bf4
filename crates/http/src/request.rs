//! One call to Kit's API v4 ([`KitRequest`]) and its successful answer ([`KitResponse`]).

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;
use crate::redact::excerpt;
use crate::transport::RawResponse;

/// A call to Kit's API v4, relative to the base URL.
#[derive(Debug, Clone)]
#[must_use]
pub struct KitRequest {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<Bytes>,
    pub(crate) content_type: Option<String>,
    pub(crate) accept: Option<String>,
    pub(crate) retry_ambiguous: bool,
}

impl KitRequest {
    /// A request with `method` to `path` (e.g. `/v4/subscribers`).
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            content_type: None,
            accept: None,
            retry_ambiguous: false,
        }
    }
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    /// `POST path`.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }
    /// `PUT path`.
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }
    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }
    /// Adds a query parameter.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }
    /// Sets a parameter, replacing any with the same name.
    pub(crate) fn set_query(mut self, name: &str, value: String) -> Self {
        self.query.retain(|(n, _)| n != name);
        self.query.push((name.to_owned(), value));
        self
    }
    /// A JSON body.
    ///
    /// # Errors
    /// [`ApiError::InvalidRequest`] when `body` does not serialize.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Result<Self, ApiError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| ApiError::InvalidRequest(format!("body does not serialize: {e}")))?;
        self.body = Some(Bytes::from(bytes));
        Ok(self)
    }
    /// A body of any media type, sent as given (a proxy forwarding its caller's body).
    pub fn body(mut self, body: impl Into<Bytes>, content_type: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self.content_type = Some(content_type.into());
        self
    }
    /// The `Accept` header (default `application/json`).
    pub fn accept(mut self, accept: impl Into<String>) -> Self {
        self.accept = Some(accept.into());
        self
    }
    /// Adds the parameters of a raw query string (`a=1&b=two`), decoded.
    pub fn raw_query(mut self, query: &str) -> Self {
        self.query.extend(
            url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
        );
        self
    }
    /// Allow retrying this non-idempotent request after an ambiguous failure (a timeout, a
    /// dropped connection, a 5xx): only when the caller knows a duplicate is harmless.
    pub fn retry_ambiguous(mut self, allow: bool) -> Self {
        self.retry_ambiguous = allow;
        self
    }
    /// Whether the method is idempotent (RFC 9110 §9.2.2).
    #[must_use]
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self.method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        )
    }
    /// The method.
    #[must_use]
    pub fn method(&self) -> &Method {
        &self.method
    }
    /// The path.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// An API answer: a 2xx from [`crate::KitClient::send`], any status from
/// [`crate::KitClient::forward`].
#[derive(Debug, Clone)]
pub struct KitResponse {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (within the cap).
    pub body: Bytes,
}

impl From<RawResponse> for KitResponse {
    fn from(raw: RawResponse) -> Self {
        Self {
            status: raw.status,
            headers: raw.headers,
            body: raw.body,
        }
    }
}

impl KitResponse {
    /// The body as JSON.
    ///
    /// # Errors
    /// [`ApiError::Protocol`] with a secret-free excerpt when it does not parse as `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Protocol {
            status: self.status.as_u16(),
            excerpt: format!(
                "{} ({})",
                excerpt(&self.body, &[]),
                excerpt(e.to_string().as_bytes(), &[])
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_and_opt_in() {
        assert!(KitRequest::get("/v4/x").is_idempotent());
        assert!(KitRequest::put("/v4/x").is_idempotent());
        assert!(!KitRequest::post("/v4/x").is_idempotent());
        assert!(
            KitRequest::post("/v4/x")
                .retry_ambiguous(true)
                .retry_ambiguous
        );
    }
}
