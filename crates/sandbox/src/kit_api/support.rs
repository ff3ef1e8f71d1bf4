//! What every API v4 handler shares: the caller's Kit account from the bearer token (or Kit's
//! refusal), Kit's error body, query and JSON body parsing, and UTC timestamps.
//!
//! Shapes and strings follow `docs/kit-api-v4.md` §0–1.

use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Api;
use crate::model::ApiRefusal;
use crate::server::Shared;

/// A refused call: Kit's `{"errors":[…]}` body with a status.
#[derive(Debug)]
pub(crate) struct Fail(pub(crate) StatusCode, pub(crate) Vec<String>);

impl Fail {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, vec![message.into()])
    }
    pub(crate) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "errors": self.1 }))).into_response()
    }
}

pub(crate) type Reply = Result<Response, Fail>;

/// `status` with a JSON body.
pub(crate) fn reply(status: StatusCode, body: serde_json::Value) -> Reply {
    Ok((status, Json(body)).into_response())
}

/// 201 for a new resource, 200 for one that already existed (Kit's convention, §0).
pub(crate) fn created_or_ok(created: bool, body: serde_json::Value) -> Reply {
    reply(
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        body,
    )
}

pub(crate) fn no_content() -> Reply {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The Kit account an API call acts for. Extracting it authenticates and rate-limits the call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    pub(crate) account: u64,
}

impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, Refused> {
        authorize(&api.shared, &parts.headers).map(|account| Caller { account })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Why the OAuth side refused an API call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused(ApiRefusal);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        // One copy of Kit's refusal bodies, shared with `/v4/account`.
        crate::routes::api::refusal_response(self.0)
    }
}

/// The one hook into the OAuth side: access token → Kit account id, or Kit's refusal. Shares
/// the per-token rolling window with `/v4/account`, so the limit is per token as at Kit.
pub(crate) fn authorize(s: &Shared, headers: &HeaderMap) -> Result<u64, Refused> {
    let now = s.now_ms();
    let mut m = s.model();
    let result = match bearer(headers) {
        Some(token) => m.authenticate_api(token, now, s.config.rate_limit, s.config.rate_window),
        None => Err(ApiRefusal::Invalid),
    };
    match result {
        Ok(_) => m.stats.api_ok += 1,
        Err(ApiRefusal::RateLimited) => m.stats.rate_limited_429 += 1,
        Err(_) => m.stats.unauthorized_401 += 1,
    }
    result.map(|(account, _tenant)| account.id).map_err(Refused)
}

/// A JSON request body as `T`; an empty body reads as `{}` (Kit's SDKs send `{}` or nothing).
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Fail> {
    let slice: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(slice).map_err(|e| {
        Fail::new(
            StatusCode::BAD_REQUEST,
            format!("The request body is not valid JSON for this endpoint: {e}"),
        )
    })
}

/// Decoded query parameters in order; repeated names are kept (`include=a&include=b`).
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }
    /// The first non-empty value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
    /// A boolean: `true`/`1` or `false`/`0` (K1 sends digits, S1 words); absent is false.
    pub(crate) fn flag(&self, name: &str) -> Result<bool, Fail> {
        match self.get(name) {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(_) => Err(Fail::invalid(format!("{name} must be true or false"))),
        }
    }
    /// Every comma-separated value of every `name` parameter.
    pub(crate) fn list(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }
    /// A date filter (`yyyy-mm-dd` as documented, or full ISO 8601 as in S1's examples) in ms.
    pub(crate) fn date(&self, name: &str) -> Result<Option<i64>, Fail> {
        self.get(name)
            .map(|v| {
                parse_time(v).ok_or_else(|| {
                    Fail::invalid(format!("{name} is incorrectly formatted. Use YYYY-MM-DD."))
                })
            })
            .transpose()
    }
}

/// A path id; anything that is not a number names nothing, as at Kit (404).
pub(crate) fn parse_id(raw: &str) -> Result<u64, Fail> {
    raw.parse().map_err(|_| Fail::not_found())
}

/// The lenient check Kit's `Email address is invalid` suggests: one `@`, a dot in the domain,
/// no spaces.
pub(crate) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
        && email.len() <= 254
}

/// Both bounds of a `<prefix>_after` / `<prefix>_before` pair hold for `t`.
pub(crate) fn within(t: Option<i64>, after: Option<i64>, before: Option<i64>) -> bool {
    match t {
        Some(t) => after.is_none_or(|a| t > a) && before.is_none_or(|b| t < b),
        None => after.is_none() && before.is_none(),
    }
}

/// `2023-02-17T11:43:55Z` for Unix milliseconds.
pub(crate) fn iso(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses `yyyy-mm-dd`, `yyyy-mm-ddThh:mm:ss[Z]` or with a space instead of `T`, as UTC.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(t) = time {
        let t = t.split(['.', '+']).next()?;
        let mut hms = t.splitn(3, ':');
        let h: i64 = hms.next()?.parse().ok()?;
        let mi: i64 = hms.next().unwrap_or("0").parse().ok()?;
        let se: i64 = hms.next().unwrap_or("0").parse().ok()?;
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += h * 3600 + mi * 60 + se;
    }
    Some(secs * 1000)
}

// Howard Hinnant's civil calendar algorithms (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t = parse_time("2023-02-17T11:43:55Z").unwrap();
        assert_eq!(iso(t), "2023-02-17T11:43:55Z");
        assert_eq!(
            iso(parse_time("2024-02-29").unwrap()),
            "2024-02-29T00:00:00Z"
        );
        assert_eq!(parse_time("2023-13-01"), None);
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    }
}
