//! Kit's token response (`KitTokenResponse`, the body `oauth2` hands to serde after a token
//! request) and the other answers the HTTP adapter parses from Kit: `GET /v4/account` with its
//! 401 error bodies and `Retry-After`, and the excerpt of a body that errors and logs carry.
//!
//! Properties: an accepted token response is a JSON object, agrees with a plain JSON reading
//! of the same body and survives serialize → parse unchanged; an empty `scope` is never kept;
//! no excerpt and no error of the account lookup contains a secret the request carried;
//! excerpts are one short line.
//!
//! Input: a body as Kit's token endpoint answers (status 200, no secrets known); or a first
//! line `@STATUS [retry=VALUE] [secret=VALUE]...`, then the body.
#![no_main]

use kit_oauth::core::LookupError;
use kit_oauth::http::KitTokenResponse;
use kit_oauth::http::fuzz_entry::{account_answer, excerpt};
use libfuzzer_sys::fuzz_target;
use oauth2::TokenResponse as _;

/// `redact::EXCERPT_CHARS` plus the ellipsis.
const MAX_EXCERPT_CHARS: usize = 161;

struct Input {
    status: u16,
    retry_after: Option<Vec<u8>>,
    secrets: Vec<String>,
    body: Vec<u8>,
}

impl Input {
    fn parse(data: &[u8]) -> Self {
        let mut input = Self {
            status: 200,
            retry_after: None,
            secrets: Vec::new(),
            body: data.to_vec(),
        };
        let Some(rest) = data.strip_prefix(b"@") else {
            return input;
        };
        let (head, body) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        input.body = body.to_vec();
        let head = String::from_utf8_lossy(head);
        let mut words = head.split(' ');
        input.status = words.next().and_then(|s| s.parse().ok()).unwrap_or(200);
        for word in words {
            if let Some(value) = word.strip_prefix("retry=") {
                input.retry_after = Some(value.as_bytes().to_vec());
            } else if let Some(value) = word.strip_prefix("secret=") {
                input.secrets.push(value.to_owned());
            }
        }
        input
    }
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    token_response(&input.body);

    // Secrets a request carries are tokens (8+ token characters with a digit): the redactor
    // promises to remove those, and none can be spelled by the fixed text of a message.
    let secrets: Vec<&str> = input
        .secrets
        .iter()
        .map(String::as_str)
        .filter(|s| {
            s.len() >= 8
                && s.bytes().any(|b| b.is_ascii_digit())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~+/=%".contains(&b))
        })
        .take(4)
        .collect();
    let leaks = |text: &str| secrets.iter().find(|s| text.contains(**s)).copied();

    let cut = excerpt(&input.body, &secrets);
    assert!(!cut.is_empty());
    assert!(cut.chars().count() <= MAX_EXCERPT_CHARS, "{cut:?}");
    assert!(!cut.chars().any(char::is_control), "{cut:?}");
    assert_eq!(
        leaks(&cut),
        None,
        "the excerpt leaks a known secret: {cut:?}"
    );

    match account_answer(
        input.status,
        input.retry_after.as_deref(),
        &input.body,
        &secrets,
    ) {
        Ok(account) => {
            assert!((200..300).contains(&input.status) || !(100..1000).contains(&input.status));
            assert!(!account.id.as_str().is_empty());
        }
        Err(error) => {
            if input.status == 401 {
                assert!(matches!(
                    error,
                    LookupError::TokenExpired | LookupError::Unauthorized { .. }
                ));
            }
            let text = error.to_string();
            assert_eq!(
                leaks(&text),
                None,
                "the account error leaks a secret: {text}"
            );
        }
    }
});

fn token_response(body: &[u8]) {
    let Ok(parsed) = serde_json::from_slice::<KitTokenResponse>(body) else {
        return;
    };
    // A plain reading of the same JSON sees an object (RFC 6749 §5.1: a derived `Deserialize`
    // once took `["tok"]` as a token response) and the same token. (serde_json skips the value
    // of an ignored field without checking its UTF-8, so the typed reading may accept a body
    // the plain one refuses: compare only when both read it.)
    if let Ok(plain) = serde_json::from_slice::<serde_json::Value>(body) {
        assert!(plain.is_object(), "a JSON non-object was read as a token response");
        plain_reading_agrees(&plain, &parsed);
    }
    if let Some(scopes) = parsed.scopes() {
        assert!(!scopes.is_empty(), "an empty scope list was kept");
    }
    // serialize → parse is the identity (what a cache or a log of the response would rely on).
    let json = serde_json::to_vec(&parsed).expect("a token response serializes");
    let again: KitTokenResponse =
        serde_json::from_slice(&json).expect("a serialized token response parses");
    assert_eq!(
        again.access_token().secret(),
        parsed.access_token().secret()
    );
    assert_eq!(again.token_type(), parsed.token_type());
    assert_eq!(again.expires_in(), parsed.expires_in());
    assert_eq!(
        again.refresh_token().map(|t| t.secret()),
        parsed.refresh_token().map(|t| t.secret())
    );
    assert_eq!(again.scopes(), parsed.scopes());
    assert_eq!(again.created_at(), parsed.created_at());
}

fn plain_reading_agrees(plain: &serde_json::Value, parsed: &KitTokenResponse) {
    assert_eq!(
        plain.get("access_token").and_then(|v| v.as_str()),
        Some(parsed.access_token().secret().as_str())
    );
    assert_eq!(
        plain.get("refresh_token").and_then(|v| v.as_str()),
        parsed.refresh_token().map(|t| t.secret().as_str())
    );
}
