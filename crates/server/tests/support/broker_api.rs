//! A typed client of the broker API, so each test says which call it makes and what it
//! expects, not how a request is built.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// One answer of the broker API.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The JSON body; `Null` when empty, a `String` when the body is not JSON.
    pub body: Value,
}

impl Reply {
    /// The `error` code of a JSON error body.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }

    /// The status and body, for tests that compare both.
    pub fn pair(self) -> (StatusCode, Value) {
        (self.status, self.body)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The broker API at `base`, called with `key` (or with none).
#[derive(Debug, Clone)]
pub struct BrokerApi {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl BrokerApi {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            key: Some(key.to_owned()),
        }
    }

    /// Calls without an `Authorization` header.
    pub fn anonymous(base: &str) -> Self {
        Self {
            key: None,
            ..Self::new(base, "")
        }
    }

    /// The same broker with another key.
    pub fn with_key(&self, key: &str) -> Self {
        Self {
            key: Some(key.to_owned()),
            ..self.clone()
        }
    }

    /// `method` on `path` (starting with `/`), with an optional body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET /v1/connections?{query}`.
    pub async fn list(&self, query: &str) -> Reply {
        let path = if query.is_empty() {
            "/v1/connections".to_owned()
        } else {
            format!("/v1/connections?{query}")
        };
        self.call(Method::GET, &path, None).await
    }

    /// The ids of a page of `list`.
    pub fn ids(page: &Value) -> Vec<String> {
        page["connections"]
            .as_array()
            .unwrap_or_else(|| panic!("not a page: {page}"))
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `GET /v1/connections/{id}`.
    pub async fn show(&self, id: &str) -> Reply {
        self.call(Method::GET, &format!("/v1/connections/{id}"), None)
            .await
    }

    /// `POST /v1/connections/{id}/token`.
    pub async fn token(&self, id: &str) -> Reply {
        self.call(Method::POST, &format!("/v1/connections/{id}/token"), None)
            .await
    }

    /// `POST /v1/connections/{id}/refresh`.
    pub async fn refresh(&self, id: &str) -> Reply {
        self.call(Method::POST, &format!("/v1/connections/{id}/refresh"), None)
            .await
    }

    /// `DELETE /v1/connections/{id}`.
    pub async fn delete(&self, id: &str) -> Reply {
        self.call(Method::DELETE, &format!("/v1/connections/{id}"), None)
            .await
    }

    /// `method /v1/connections/{id}/kit/{path}`: Kit's API through the proxy.
    pub async fn kit(&self, method: Method, id: &str, path: &str, body: Option<Vec<u8>>) -> Reply {
        self.call(method, &format!("/v1/connections/{id}/kit/{path}"), body)
            .await
    }
}
