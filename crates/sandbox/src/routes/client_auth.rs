//! Client authentication of the token and revoke endpoints (RFC 6749 §2.3.1).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::model::Caller;
use crate::params::{self, Params};
use crate::server::Shared;

/// Client authentication (RFC 6749 §2.3.1) as Doorkeeper does it: HTTP Basic if the header
/// carries credentials, else `client_id`/`client_secret` in the body. What a failure means is
/// the endpoint's business (401 `invalid_client`, `invalid_grant` or 403), so this only says
/// who the caller is.
pub(super) fn authenticate_client(s: &Shared, headers: &HeaderMap, p: &Params) -> Caller {
    let basic = headers.get(AUTHORIZATION).and_then(parse_basic);
    let (client_id, secret) = match basic {
        Some((id, secret)) => (Some(id), Some(secret).filter(|s| !s.is_empty())),
        None => (
            p.get("client_id").map(str::to_owned),
            p.get("client_secret").map(str::to_owned),
        ),
    };
    let Some(client_id) = client_id.filter(|c| !c.is_empty()) else {
        return if headers.contains_key(AUTHORIZATION) {
            Caller::BadCredentials
        } else {
            Caller::Anonymous
        };
    };
    if !secure_eq(&client_id, &s.config.client_id) {
        return Caller::BadCredentials;
    }
    match (&s.config.client_secret, secret) {
        (Some(expected), Some(given)) if secure_eq(expected, &given) => Caller::Client(client_id),
        (None, None) => Caller::Client(client_id),
        _ => Caller::BadCredentials,
    }
}

/// Constant-time equality of two secrets (the length is not hidden).
fn secure_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn parse_basic(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
    let p = params::parse_form(format!("i={id}&s={secret}").as_bytes()).ok()?;
    Some((
        p.get("i").unwrap_or_default().to_owned(),
        p.get("s").unwrap_or_default().to_owned(),
    ))
}
