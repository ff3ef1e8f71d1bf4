//! Kit API v4 error bodies (`{"errors":["…"]}`) and what a 401 means.

use serde::Deserialize;

use crate::redact::excerpt;

/// Kit's message for an access token past its lifetime (docs/kit-protocol.md §6).
pub(crate) const EXPIRED: &str = "The access token expired";
/// Kit's message for a token whose grant was revoked.
pub(crate) const REVOKED: &str = "The access token was revoked";
/// Kit's message for a token it does not know.
pub(crate) const INVALID: &str = "The access token is invalid";

/// What a 401 from Kit's API says about the access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenRejection {
    /// Kit's exact `The access token expired`: refresh and retry once.
    Expired,
    /// `… was revoked`, `… is invalid`, or any other text: not proof of a dead grant (a token
    /// rotated away by another instance is refused too, and an unknown message may mean
    /// anything), so the token source verifies with `GET /v4/account` before believing it.
    /// Kit's message, excerpted.
    Refused(String),
}
#[derive(Deserialize)]
struct Errors {
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

/// Kit's error messages from a body, each excerpted (secret-free, truncated); at most 10.
pub(crate) fn messages(body: &[u8], known: &[&str]) -> Vec<String> {
    serde_json::from_slice::<Errors>(body)
        .map(|e| {
            e.errors
                .iter()
                .take(10)
                .map(|v| match v {
                    serde_json::Value::String(s) => excerpt(s.as_bytes(), known),
                    other => excerpt(other.to_string().as_bytes(), known),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `message` is `wanted`, as Kit words it, in any case and without a final period.
fn is_message(message: &str, wanted: &str) -> bool {
    message
        .trim()
        .trim_end_matches('.')
        .eq_ignore_ascii_case(wanted)
}

/// Classifies a 401 body by Kit's exact messages. Only the exact "expired" message is worth a
/// refresh: matching a substring would let an unrelated message that mentions "expired" force
/// a refresh on every call, and a refresh never cures a refused token.
pub(crate) fn classify_401(body: &[u8], known: &[&str]) -> TokenRejection {
    let messages = messages(body, known);
    if messages.iter().any(|m| is_message(m, EXPIRED)) {
        return TokenRejection::Expired;
    }
    let known_refusal = messages
        .iter()
        .find(|m| is_message(m, REVOKED) || is_message(m, INVALID));
    match known_refusal.or(messages.first()) {
        Some(message) => TokenRejection::Refused(message.clone()),
        None => TokenRejection::Refused(format!("HTTP 401: {}", excerpt(body, known))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_401_bodies() {
        for expired in [
            r#"{"errors":["The access token expired"]}"#,
            r#"{"errors":["the ACCESS token expired."]}"#,
            r#"{"errors":["Something else","The access token expired"]}"#,
        ] {
            assert_eq!(
                classify_401(expired.as_bytes(), &[]),
                TokenRejection::Expired,
                "{expired}"
            );
        }
        assert_eq!(
            classify_401(br#"{"errors":["The access token was revoked"]}"#, &[]),
            TokenRejection::Refused("The access token was revoked".into())
        );
        assert_eq!(
            classify_401(br#"{"errors":["THE ACCESS TOKEN IS INVALID"]}"#, &[]),
            TokenRejection::Refused("THE ACCESS TOKEN IS INVALID".into())
        );
        // Mentioning "expired" is not Kit's expiry message: verified, never refreshed.
        for other in [
            r#"{"errors":["Your trial has expired"]}"#,
            r#"{"errors":["The access token expired yesterday, and was revoked"]}"#,
        ] {
            assert!(
                matches!(
                    classify_401(other.as_bytes(), &[]),
                    TokenRejection::Refused(_)
                ),
                "{other}"
            );
        }
        assert_eq!(
            classify_401(b"", &[]),
            TokenRejection::Refused("HTTP 401: (empty body)".into())
        );
        assert_eq!(
            messages(br#"{"errors":["a",{"b":1}]}"#, &[]),
            vec!["a".to_owned(), r#"{"b":1}"#.to_owned()]
        );
    }
}
