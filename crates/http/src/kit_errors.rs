//! Kit API v4 error bodies (`{"errors":["…"]}`) and what a 401 means.

use serde::Deserialize;

use crate::redact::excerpt;

/// What a 401 from Kit's API says about the access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenRejection {
    /// `The access token expired`: refresh and retry once.
    Expired,
    /// Invalid, revoked, or the account lost access: reinstall needed. Kit's message, excerpted.
    Dead(String),
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

/// Classifies a 401 body. Only "expired" is worth a refresh; Kit's exact wording of the other
/// messages is a guess (kit-protocol.md §6), so anything else means the grant is dead.
pub(crate) fn classify_401(body: &[u8], known: &[&str]) -> TokenRejection {
    let messages = messages(body, known);
    if messages
        .iter()
        .any(|m| m.to_ascii_lowercase().contains("expired"))
    {
        TokenRejection::Expired
    } else if let Some(first) = messages.into_iter().next() {
        TokenRejection::Dead(first)
    } else {
        TokenRejection::Dead(format!("HTTP 401: {}", excerpt(body, known)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_401_bodies() {
        assert_eq!(
            classify_401(br#"{"errors":["The access token expired"]}"#, &[]),
            TokenRejection::Expired
        );
        assert_eq!(
            classify_401(br#"{"errors":["The access token was revoked"]}"#, &[]),
            TokenRejection::Dead("The access token was revoked".into())
        );
        assert_eq!(
            classify_401(b"", &[]),
            TokenRejection::Dead("HTTP 401: (empty body)".into())
        );
        assert_eq!(
            messages(br#"{"errors":["a",{"b":1}]}"#, &[]),
            vec!["a".to_owned(), r#"{"b":1}"#.to_owned()]
        );
    }
}
