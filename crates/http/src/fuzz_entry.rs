#![doc(hidden)]
//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), not an API: hidden from the
//! docs and free to change. They expose, unchanged, parsers that are otherwise reached only
//! after a real HTTP exchange, so the fuzzer can feed them bytes in-process.

use http::{HeaderMap, HeaderValue, StatusCode};
use kit_oauth_core::{KitAccount, LookupError};

use crate::transport::RawResponse;

/// The secret-free excerpt of a server's body that errors and logs carry
/// (`redact::excerpt`); `known` are the secrets of the request it answered.
#[doc(hidden)]
#[must_use]
pub fn excerpt(raw: &[u8], known: &[&str]) -> String {
    crate::redact::excerpt(raw, known)
}

/// How an answer of `GET /v4/account` (status, `Retry-After`, body) is classified
/// (`oauth::account_from_raw`): Kit's account JSON, its 401 error bodies, busy statuses.
///
/// # Errors
/// The [`LookupError`] the adapter would return.
#[doc(hidden)]
pub fn account_answer(
    status: u16,
    retry_after: Option<&[u8]>,
    body: &[u8],
    known: &[&str],
) -> Result<KitAccount, LookupError> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    if let Some(value) = retry_after.and_then(|v| HeaderValue::from_bytes(v).ok()) {
        headers.insert(http::header::RETRY_AFTER, value);
    }
    let raw = RawResponse {
        status,
        headers,
        body: bytes::Bytes::copy_from_slice(body),
    };
    crate::account::account_from_raw(&raw, known)
}
