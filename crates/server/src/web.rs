//! Small HTTP helpers: cookies, JSON errors, timestamps.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kit_oauth::core::Timestamp;
use serde::Serialize;
use utoipa::ToSchema;

/// The value of cookie `name` in the request, if present.
#[must_use]
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// How cookies are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    /// Add `Secure` (dropped only for an `http://127.0.0.1` demo).
    pub secure: bool,
}

impl CookiePolicy {
    /// A `Set-Cookie` header value: HttpOnly, `Path=/`, the given SameSite and lifetime.
    #[must_use]
    pub fn set(&self, name: &str, value: &str, same_site: &str, max_age_secs: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age_secs}{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
    }

    /// A `Set-Cookie` value that deletes `name`.
    #[must_use]
    pub fn clear(&self, name: &str) -> HeaderValue {
        self.set(name, "", "Lax", 0)
    }
}

/// The JSON error body of the broker API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiError {
    /// A stable, machine-readable code (`unauthorized`, `not_found`, …).
    pub error: String,
    /// A sentence for people.
    pub message: String,
    #[serde(skip)]
    #[schema(ignore)]
    status: StatusCode,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            error: code.to_owned(),
            message: message.into(),
            status,
        }
    }

    /// 404 `not_found` for a connection (also what a key scoped elsewhere sees).
    #[must_use]
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such connection")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        let mut response = (status, Json(self)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"kit-oauth\""),
            );
        }
        response
    }
}

/// RFC 3339 text of a timestamp (UTC).
#[must_use]
pub fn rfc3339(at: Timestamp) -> String {
    at.to_offset_date_time()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.unix_seconds().to_string())
}

/// "in 1 min 5 s", "2 h 3 min ago", for people.
#[must_use]
pub fn relative(at: Timestamp, now: Timestamp) -> String {
    let delta = at.unix_seconds() - now.unix_seconds();
    let span = human_span(delta.unsigned_abs());
    if delta >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

fn human_span(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        3600..=86_399 => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
        _ => format!("{} d {} h", secs / 86_400, (secs % 86_400) / 3600),
    }
}

/// A 302 to `location`.
#[must_use]
pub fn found(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::FOUND, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A 303 to `location` (after a form POST).
#[must_use]
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; kit=xyz"));
        headers.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, "kit"), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn spans_read_like_a_person_would_say_them() {
        let now = Timestamp::from_unix_seconds(1000);
        assert_eq!(
            relative(Timestamp::from_unix_seconds(1065), now),
            "in 1 min 5 s"
        );
        assert_eq!(relative(Timestamp::from_unix_seconds(990), now), "10 s ago");
    }

    #[test]
    fn secure_flag_follows_the_policy() {
        let on = CookiePolicy { secure: true }.set("k", "v", "Lax", 600);
        assert!(on.to_str().unwrap().contains("; Secure"));
        assert!(on.to_str().unwrap().contains("HttpOnly"));
        let off = CookiePolicy { secure: false }.set("k", "v", "Lax", 600);
        assert!(!off.to_str().unwrap().contains("Secure"));
    }
}
