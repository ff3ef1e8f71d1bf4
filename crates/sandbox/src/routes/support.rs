//! Helpers every handler shares: body reading, OAuth error answers, redirects, HTML.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use serde_json::json;

use crate::html;
use crate::model::OAuthError;
use crate::params::{self, Params};
use crate::server::Shared;

use super::AppState;

pub(super) enum BodyError {
    TooLarge,
    Unreadable,
}

pub(super) async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

pub(super) fn media_type(headers: &HeaderMap) -> Option<String> {
    let ct = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        ct.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Why an OAuth request body could not be read.
pub(super) enum BadBody {
    /// Not JSON at all: Rails refuses it before Doorkeeper runs, with a bare 400.
    MalformedJson,
    /// Anything else: `invalid_request` with this description.
    Invalid(String),
}

impl BadBody {
    /// The answer: Rails' empty `text/html` 400 for JSON that does not parse, else the OAuth
    /// `invalid_request` error.
    pub(super) fn into_response(self, s: &Shared) -> Response {
        match self {
            BadBody::MalformedJson => {
                s.model().stats.invalid_request += 1;
                (
                    StatusCode::BAD_REQUEST,
                    [(CONTENT_TYPE, "text/html; charset=UTF-8")],
                )
                    .into_response()
            }
            BadBody::Invalid(msg) => oauth_error_response(s, &OAuthError::invalid_request(msg)),
        }
    }
}

/// Reads an OAuth request body: form-encoded or JSON, capped, strict.
pub(super) async fn read_params(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    allow_json: bool,
) -> Result<Params, BadBody> {
    let bytes = read_body(body, limit).await.map_err(|e| {
        BadBody::Invalid(match e {
            BodyError::TooLarge => format!("The request body is larger than {limit} bytes."),
            BodyError::Unreadable => "The request body could not be read.".to_owned(),
        })
    })?;
    let media = media_type(headers);
    let parsed = match media.as_deref() {
        Some("application/x-www-form-urlencoded") => params::parse_form(&bytes),
        Some(m) if allow_json && (m == "application/json" || m.ends_with("+json")) => {
            if serde_json::from_slice::<serde_json::Value>(&bytes).is_err() {
                return Err(BadBody::MalformedJson);
            }
            params::parse_json(&bytes)
        }
        None if bytes.is_empty() => Ok(Params::default()),
        _ => {
            return Err(BadBody::Invalid(if allow_json {
                "Content-Type must be application/x-www-form-urlencoded or application/json."
                    .to_owned()
            } else {
                "Content-Type must be application/x-www-form-urlencoded.".to_owned()
            }));
        }
    };
    parsed.map_err(|e| BadBody::Invalid(format!("Malformed parameters: {e}.")))
}

pub(super) fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

pub(super) fn oauth_error_response(s: &Shared, err: &OAuthError) -> Response {
    {
        let mut m = s.model();
        match err.error {
            "invalid_request" => m.stats.invalid_request += 1,
            "invalid_client" => m.stats.invalid_client += 1,
            "unsupported_grant_type" => m.stats.unsupported_grant_type += 1,
            _ => {}
        }
    }
    let mut resp = (
        err.status,
        Json(json!({"error": err.error, "error_description": err.description})),
    )
        .into_response();
    if err.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"kit-sandbox\""),
        );
    }
    no_store(resp)
}

pub(super) fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => (StatusCode::FOUND, [(LOCATION, v)]).into_response(),
        Err(_) => html_response(
            StatusCode::BAD_REQUEST,
            html::error_page("The redirect location is not a valid header value."),
        ),
    }
}

pub(super) fn html_response(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

/// `uri` plus `pairs` in its query, percent-encoded.
pub(super) fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        ser.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", ser.finish())
}

pub(super) async fn index(State(s): AppState) -> Response {
    html_response(
        StatusCode::OK,
        html::index_page(&s.config.app_name, &s.config.client_id),
    )
}

pub(super) async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"errors": ["Not Found"]})),
    )
        .into_response()
}
