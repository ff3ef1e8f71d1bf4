//! Turning whatever a server sent into a short excerpt that is safe to put in an error or a log
//! line: no token, code, verifier or secret survives.

use kit_oauth_core::REDACTED;

/// Longest excerpt kept, in characters.
pub(crate) const EXCERPT_CHARS: usize = 160;

/// Fields whose values are secrets, in JSON (`"key":"value"`) or form (`key=value`) shape.
const SECRET_KEYS: [&str; 7] = [
    "access_token",
    "refresh_token",
    "id_token",
    "code",
    "code_verifier",
    "client_secret",
    "token",
];

/// A secret-free, truncated, single-line excerpt of `raw`.
///
/// 1. every value in `known` (the secrets this request carried) is replaced;
/// 2. values of secret-named fields are replaced, even when the body was cut off mid-value;
/// 3. any long run of token-like characters that looks random (a digit, or mixed case) is
///    replaced, which catches tokens under field names nobody anticipated;
/// 4. control characters become spaces, and the result is cut to [`EXCERPT_CHARS`].
pub(crate) fn excerpt(raw: &[u8], known: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(raw).into_owned();
    for secret in known {
        if !secret.is_empty() {
            text = text.replace(secret, REDACTED);
        }
    }
    let text = redact_secret_fields(&text);
    let text = redact_random_runs(&text);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    if out.trim().is_empty() {
        "(empty body)".to_owned()
    } else {
        out
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=' | '%')
}

/// Replaces the value after `"key"\s*:\s*"` (up to the closing quote or the end) and after
/// `key=` (up to `&` or whitespace).
fn redact_secret_fields(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    'outer: while i < text.len() {
        for key in SECRET_KEYS {
            // JSON form.
            if text[i..].starts_with('"') && text[i + 1..].starts_with(key) {
                let mut j = i + 1 + key.len();
                if text[j..].starts_with('"') {
                    j += 1;
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if j < bytes.len() && bytes[j] == b':' {
                        j += 1;
                        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                            j += 1;
                        }
                        if j < bytes.len() && bytes[j] == b'"' {
                            out.push_str(&text[i..=j]);
                            out.push_str(REDACTED);
                            let mut k = j + 1;
                            while k < bytes.len() && bytes[k] != b'"' {
                                k += if bytes[k] == b'\\' { 2 } else { 1 };
                            }
                            i = k.min(text.len());
                            continue 'outer;
                        }
                    }
                }
            }
            // Form form: at the start or after `&`/`?`/whitespace.
            let boundary = i == 0 || matches!(bytes[i - 1], b'&' | b'?' | b' ' | b'\n');
            if boundary && text[i..].starts_with(key) && text[i + key.len()..].starts_with('=') {
                let j = i + key.len() + 1;
                out.push_str(&text[i..j]);
                out.push_str(REDACTED);
                let mut k = j;
                while k < bytes.len() && bytes[k] != b'&' && !bytes[k].is_ascii_whitespace() {
                    k += 1;
                }
                i = k;
                continue 'outer;
            }
        }
        // Advance one character.
        let Some(c) = text[i..].chars().next() else {
            break;
        };
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Replaces runs of at least 20 token characters that contain a digit or both cases: random
/// tokens, not words like `unsupported_grant_type`.
fn redact_random_runs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let looks_random = run.len() >= 20
            && (run.chars().any(|c| c.is_ascii_digit())
                || (run.chars().any(|c| c.is_ascii_uppercase())
                    && run.chars().any(|c| c.is_ascii_lowercase())));
        if looks_random && run.as_str() != REDACTED {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if is_token_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_secrets_and_secret_fields_are_gone() {
        let body = br#"{"access_token":"abc","refresh_token" : "r3fr3sh-partial"#;
        let e = excerpt(body, &[]);
        assert!(!e.contains("abc"), "{e}");
        assert!(!e.contains("r3fr3sh"), "{e}");
        assert!(e.contains("access_token"), "{e}");

        let form = b"grant_type=refresh_token&refresh_token=zzz&client_secret=shh";
        let e = excerpt(form, &[]);
        assert!(!e.contains("zzz") && !e.contains("shh"), "{e}");
        assert!(e.contains("grant_type=refresh_token"), "{e}");

        let e = excerpt(b"oops my-secret-value leaked", &["my-secret-value"]);
        assert_eq!(e, "oops [redacted] leaked");
    }

    #[test]
    fn random_runs_go_words_stay() {
        let e = excerpt(b"unsupported_grant_type for Xk29aQ0pLmZ81vBq7RtYw3eN", &[]);
        assert_eq!(e, "unsupported_grant_type for [redacted]");
    }

    #[test]
    fn truncated_single_line_and_never_empty() {
        let long = "a\n".repeat(500);
        let e = excerpt(long.as_bytes(), &[]);
        assert!(!e.contains('\n'));
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1);
        assert_eq!(excerpt(b"", &[]), "(empty body)");
        // Invalid UTF-8 does not panic.
        assert!(!excerpt(&[0xff, 0xfe, b'"', b'c', b'o'], &[]).is_empty());
    }
}
