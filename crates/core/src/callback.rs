//! The OAuth callback query (`/kit/oauth/callback?code=…&state=…`), parsed strictly.

use crate::error::CallbackError;
use crate::secret::{AuthorizationCode, CsrfState};

/// The longest callback query accepted; real ones are a few hundred bytes.
pub const MAX_CALLBACK_QUERY: usize = 8 * 1024;
/// The longest single parameter value accepted.
const MAX_VALUE: usize = 2048;

/// What Kit sent back to the Redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callback {
    /// Consent was given: a single-use code for the token endpoint.
    Code {
        /// The authorization code.
        code: AuthorizationCode,
        /// The echoed `state`.
        state: CsrfState,
    },
    /// Consent was refused, or Kit reported another error (RFC 6749 §4.1.2.1).
    Error {
        /// The OAuth `error` code, e.g. `access_denied`.
        error: String,
        /// `error_description`, when sent.
        description: Option<String>,
        /// The echoed `state`, when sent.
        state: Option<CsrfState>,
    },
}

impl Callback {
    /// Parses a raw query string (without the leading `?`).
    ///
    /// Duplicated parameters are refused (a classic parameter-pollution trick), as are oversized
    /// queries and values, and a query carrying both `code` and `error`. Unknown parameters are
    /// ignored, as RFC 6749 requires.
    ///
    /// # Errors
    /// [`CallbackError::Malformed`] naming what is wrong.
    pub fn from_query(query: &str) -> Result<Self, CallbackError> {
        if query.len() > MAX_CALLBACK_QUERY {
            return Err(CallbackError::Malformed("the query is too long"));
        }
        let mut code = None;
        let mut state = None;
        let mut error = None;
        let mut description = None;
        for (key, value) in form_pairs(query)? {
            let slot = match key.as_str() {
                "code" => &mut code,
                "state" => &mut state,
                "error" => &mut error,
                "error_description" => &mut description,
                _ => continue,
            };
            if slot.is_some() {
                return Err(CallbackError::Malformed("a parameter is repeated"));
            }
            if value.len() > MAX_VALUE {
                return Err(CallbackError::Malformed("a parameter is too long"));
            }
            *slot = Some(value);
        }
        let state = state.filter(|s| !s.is_empty()).map(CsrfState::new);
        match (code, error) {
            (Some(_), Some(_)) => Err(CallbackError::Malformed("both code and error are present")),
            (None, Some(error)) if error.is_empty() => {
                Err(CallbackError::Malformed("error is empty"))
            }
            (None, Some(error)) => Ok(Self::Error {
                error,
                description: description.filter(|d| !d.is_empty()),
                state,
            }),
            (Some(code), None) if code.is_empty() => Err(CallbackError::Malformed("code is empty")),
            (Some(code), None) => Ok(Self::Code {
                code: AuthorizationCode::new(code),
                state: state.ok_or(CallbackError::Malformed("state is missing"))?,
            }),
            (None, None) => Err(CallbackError::Malformed(
                "neither code nor error is present",
            )),
        }
    }

    /// The echoed `state`, if any: how the store finds the pending authorization.
    #[must_use]
    pub fn state(&self) -> Option<&CsrfState> {
        match self {
            Self::Code { state, .. } => Some(state),
            Self::Error { state, .. } => state.as_ref(),
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs, refusing invalid percent-encoding and
/// invalid UTF-8 rather than replacing them.
fn form_pairs(query: &str) -> Result<Vec<(String, String)>, CallbackError> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(key)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(raw: &str) -> Result<String, CallbackError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                // Two hex digits exactly: `from_str_radix` alone would also take a sign
                // (`%+D` is not an encoding of `\r`).
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(CallbackError::Malformed("invalid percent-encoding"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| CallbackError::Malformed("invalid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_and_state() {
        let cb = Callback::from_query("code=abc%2Fdef&state=s1&extra=ignored").unwrap();
        match cb {
            Callback::Code { code, state } => {
                assert_eq!(code.expose_secret(), "abc/def");
                assert_eq!(state.expose_secret(), "s1");
            }
            Callback::Error { .. } => panic!("expected a code"),
        }
    }

    #[test]
    fn access_denied() {
        let cb = Callback::from_query(
            "error=access_denied&error_description=The+resource+owner+denied&state=s1",
        )
        .unwrap();
        assert_eq!(
            cb,
            Callback::Error {
                error: "access_denied".into(),
                description: Some("The resource owner denied".into()),
                state: Some(CsrfState::new("s1")),
            }
        );
    }

    #[test]
    fn malformed_callbacks_are_refused() {
        for bad in [
            "",
            "state=s1",
            "code=abc",
            "code=&state=s1",
            "code=a&code=b&state=s1",
            "code=a&state=s1&state=s2",
            "code=a&error=x&state=s",
            "code=%zz&state=s",
            "code=%ff&state=s",
            "code=%4&state=s",
            "error=",
        ] {
            assert!(
                matches!(Callback::from_query(bad), Err(CallbackError::Malformed(_))),
                "{bad:?} must be malformed"
            );
        }
        let long = format!("code={}&state=s", "a".repeat(3000));
        assert!(Callback::from_query(&long).is_err());
        let huge = "x".repeat(MAX_CALLBACK_QUERY + 1);
        assert!(Callback::from_query(&huge).is_err());
    }
}
