//! Client authentication of the token and revoke endpoints (RFC 6749 §2.3.1).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use crate::model::OAuthError;
use crate::params::{self, Params};
use crate::server::Shared;

/// Client authentication (RFC 6749 §2.3.1): HTTP Basic or body parameters, never both.
pub(super) fn authenticate_client(
    s: &Shared,
    headers: &HeaderMap,
    p: &Params,
) -> Result<String, OAuthError> {
    let basic = match headers.get(AUTHORIZATION) {
        Some(v) => Some(parse_basic(v).ok_or_else(|| {
            OAuthError::invalid_client("The Authorization header is not valid Basic credentials.")
        })?),
        None => None,
    };
    let (client_id, secret) = match basic {
        Some((id, secret)) => {
            if p.get("client_secret").is_some() {
                return Err(OAuthError::invalid_request(
                    "Use one client authentication method, not both Basic and client_secret.",
                ));
            }
            if p.get("client_id").is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the Basic credentials.",
                ));
            }
            (Some(id), Some(secret).filter(|s| !s.is_empty()))
        }
        None => (
            p.get("client_id").map(str::to_owned),
            p.get("client_secret").map(str::to_owned),
        ),
    };
    let Some(client_id) = client_id else {
        return Err(OAuthError::invalid_client("client_id is required."));
    };
    if client_id != s.config.client_id {
        return Err(OAuthError::invalid_client(
            "Client authentication failed: unknown client.",
        ));
    }
    match (&s.config.client_secret, secret) {
        (Some(expected), Some(given)) if *expected == given => Ok(client_id),
        (Some(_), Some(_)) => Err(OAuthError::invalid_client(
            "Client authentication failed: wrong client_secret.",
        )),
        (Some(_), None) => Err(OAuthError::invalid_client(
            "Client authentication failed: client_secret is required.",
        )),
        (None, None) => Ok(client_id),
        (None, Some(_)) => Err(OAuthError::invalid_client(
            "This is a public client; it has no client_secret.",
        )),
    }
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
