//! Strict parsing of OAuth parameters from query strings, form bodies and JSON bodies.
//!
//! RFC 6749 §3.1: parameters sent without a value are treated as omitted, and parameters must
//! not be repeated. Percent-decoded values must be valid UTF-8.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};

/// Why a parameter set could not be read. Always maps to `invalid_request`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParamError {
    #[error("malformed percent-encoding")]
    BadEscape,
    #[error("parameters are not valid UTF-8")]
    NotUtf8,
    #[error("parameter {0:?} is repeated")]
    Duplicate(String),
    #[error("too many parameters (at most 64)")]
    TooMany,
    #[error("body is not a JSON object of string values: {0}")]
    BadJson(String),
}

const MAX_PARAMS: usize = 64;

/// An ordered list of decoded parameters, with no name repeated.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    fn from_pairs(pairs: Vec<(String, String)>) -> Result<Self, ParamError> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(ParamError::Duplicate(truncate(name)));
            }
        }
        Ok(Self(pairs))
    }

    /// The value of `name`, `None` when absent or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Parses `application/x-www-form-urlencoded` (also a query string).
pub(crate) fn parse_form(input: &[u8]) -> Result<Params, ParamError> {
    let mut pairs = Vec::new();
    for part in input.split(|&b| b == b'&') {
        if part.is_empty() {
            continue;
        }
        if pairs.len() >= MAX_PARAMS {
            return Err(ParamError::TooMany);
        }
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        pairs.push((decode(name)?, decode(value)?));
    }
    Params::from_pairs(pairs)
}

fn decode(input: &[u8]) -> Result<String, ParamError> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = input.get(i + 1).and_then(|&b| hex_val(b));
                let lo = input.get(i + 2).and_then(|&b| hex_val(b));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(ParamError::BadEscape),
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParamError::NotUtf8)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a JSON object whose values are strings (or `null`, treated as omitted). Repeated keys
/// are refused rather than silently keeping the last one.
pub(crate) fn parse_json(input: &[u8]) -> Result<Params, ParamError> {
    let mut de = serde_json::Deserializer::from_slice(input);
    let pairs = de
        .deserialize_map(PairsVisitor)
        .and_then(|p| de.end().map(|()| p))
        .map_err(|e| ParamError::BadJson(e.to_string()))?;
    Params::from_pairs(pairs)
}

struct PairsVisitor;

impl<'de> Visitor<'de> for PairsVisitor {
    type Value = Vec<(String, String)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: Option<String> = map.next_value()?;
            if pairs.len() >= MAX_PARAMS {
                return Err(de::Error::custom("too many parameters"));
            }
            pairs.push((key, value.unwrap_or_default()));
        }
        Ok(pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decodes_and_treats_empty_as_absent() {
        let p = parse_form(b"a=x+y%21&b=&c").unwrap();
        assert_eq!(p.get("a"), Some("x y!"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), None);
        assert_eq!(p.get("d"), None);
    }

    #[test]
    fn form_refuses_repeats_bad_escapes_and_bad_utf8() {
        assert_eq!(
            parse_form(b"a=1&a=2").unwrap_err(),
            ParamError::Duplicate("a".into())
        );
        assert_eq!(parse_form(b"a=%zz").unwrap_err(), ParamError::BadEscape);
        assert_eq!(parse_form(b"a=%4").unwrap_err(), ParamError::BadEscape);
        assert_eq!(parse_form(b"a=%ff").unwrap_err(), ParamError::NotUtf8);
        assert_eq!(parse_form(b"a=\xff").unwrap_err(), ParamError::NotUtf8);
    }

    #[test]
    fn json_accepts_strings_and_null_only() {
        let p = parse_json(br#"{"a":"1","b":null}"#).unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert!(matches!(
            parse_json(br#"{"a":1}"#),
            Err(ParamError::BadJson(_))
        ));
        assert!(matches!(parse_json(b"[]"), Err(ParamError::BadJson(_))));
        assert!(matches!(
            parse_json(br#"{"a":"1"} x"#),
            Err(ParamError::BadJson(_))
        ));
        assert_eq!(
            parse_json(br#"{"a":"1","a":"2"}"#).unwrap_err(),
            ParamError::Duplicate("a".into())
        );
    }
}
