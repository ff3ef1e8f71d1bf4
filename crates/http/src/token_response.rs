//! Kit's token response as an `oauth2` token response type: lenient where servers vary,
//! strict about the shape.

use std::time::Duration;

use kit_oauth_core::{AccessToken, EndpointError, RefreshToken, TokenResponse};
use oauth2::Scope;
use oauth2::basic::BasicTokenType;
use serde::{Deserialize, Deserializer, Serialize};

use crate::redact::excerpt;

/// Kit's token response, as an `oauth2` token response type.
///
/// Lenient where Kit and other servers vary (docs/kit-protocol.md §4): `token_type` in any case or
/// absent (then `Bearer`), `scope` absent, `expires_in`/`created_at` as numbers or numeric
/// strings, unknown fields (`id_token`, …) ignored. Strict about the shape: the body must be a
/// JSON object (RFC 6749 §5.1); a derived `Deserialize` would also take an array of the fields
/// in order, so `["tok"]` would read as a token.
#[derive(Debug, Clone, Serialize)]
pub struct KitTokenResponse {
    access_token: oauth2::AccessToken,
    token_type: BasicTokenType,
    expires_in: Option<u64>,
    refresh_token: Option<oauth2::RefreshToken>,
    scope: Option<Vec<Scope>>,
    created_at: Option<i64>,
}

/// The fields of a token response, read from a map only (see [`KitTokenResponse`]).
#[derive(Deserialize)]
struct TokenFields {
    access_token: oauth2::AccessToken,
    #[serde(default = "bearer", deserialize_with = "lenient_token_type")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "lenient_u64")]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<oauth2::RefreshToken>,
    #[serde(default, deserialize_with = "lenient_scopes")]
    scope: Option<Vec<Scope>>,
    #[serde(default, deserialize_with = "lenient_i64")]
    created_at: Option<i64>,
}

impl<'de> Deserialize<'de> for KitTokenResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ObjectOnly;

        impl<'de> serde::de::Visitor<'de> for ObjectOnly {
            type Value = TokenFields;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a token response object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<TokenFields, A::Error> {
                TokenFields::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }

        let f = d.deserialize_map(ObjectOnly)?;
        Ok(Self {
            access_token: f.access_token,
            token_type: f.token_type,
            expires_in: f.expires_in,
            refresh_token: f.refresh_token,
            scope: f.scope,
            created_at: f.created_at,
        })
    }
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

fn lenient_token_type<'de, D: Deserializer<'de>>(d: D) -> Result<BasicTokenType, D::Error> {
    Ok(match Option::<String>::deserialize(d)? {
        None => BasicTokenType::Bearer,
        Some(s) if s.eq_ignore_ascii_case("bearer") => BasicTokenType::Bearer,
        Some(s) if s.eq_ignore_ascii_case("mac") => BasicTokenType::Mac,
        Some(s) => BasicTokenType::Extension(s),
    })
}

fn number_like<'de, D: Deserializer<'de>>(d: D) -> Result<Option<serde_json::Number>, D::Error> {
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) => Ok(Some(n)),
        Some(serde_json::Value::String(s)) => s
            .trim()
            .parse::<serde_json::Number>()
            .map(Some)
            .map_err(|_| D::Error::custom("expected a number")),
        Some(_) => Err(D::Error::custom("expected a number")),
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error as _;
    number_like(d)?
        .map(|n| {
            n.as_u64()
                .ok_or_else(|| D::Error::custom("expected a non-negative integer"))
        })
        .transpose()
}

fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    number_like(d)?
        .map(|n| {
            n.as_i64()
                .ok_or_else(|| D::Error::custom("expected an integer"))
        })
        .transpose()
}

fn lenient_scopes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Scope>>, D::Error> {
    use serde::de::Error as _;
    let scopes: Vec<String> = match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(D::Error::custom("expected scope strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(D::Error::custom("expected a scope string")),
    };
    Ok((!scopes.is_empty()).then(|| scopes.into_iter().map(Scope::new).collect()))
}

impl oauth2::TokenResponse for KitTokenResponse {
    type TokenType = BasicTokenType;

    fn access_token(&self) -> &oauth2::AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&oauth2::RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scope.as_ref()
    }
}

impl KitTokenResponse {
    /// Kit's `created_at` (Unix seconds), absent on other RFC 6749 servers.
    #[must_use]
    pub fn created_at(&self) -> Option<i64> {
        self.created_at
    }

    /// Into the core's token response. Only bearer tokens are usable with Kit's API.
    pub(crate) fn into_core(self) -> Result<TokenResponse, EndpointError> {
        if self.token_type != BasicTokenType::Bearer {
            return Err(EndpointError::Protocol {
                status: Some(200),
                excerpt: format!(
                    "unsupported token_type {:?}",
                    excerpt(self.token_type.as_ref().as_bytes(), &[])
                ),
            });
        }
        Ok(TokenResponse {
            access_token: AccessToken::new(self.access_token.into_secret()),
            refresh_token: self
                .refresh_token
                .map(|t| RefreshToken::new(t.into_secret())),
            expires_in: self.expires_in,
            created_at: self.created_at,
            scope: self
                .scope
                .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" ")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<KitTokenResponse, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn kit_token_response_is_lenient() -> Result<(), Box<dyn std::error::Error>> {
        let full = parse(
            r#"{"access_token":"a","token_type":"Bearer","expires_in":172800,
                "refresh_token":"r","scope":"public","created_at":1710270147,"id_token":"x"}"#,
        )?;
        assert_eq!(full.created_at(), Some(1_710_270_147));
        let core = full.into_core()?;
        assert_eq!(core.expires_in, Some(172_800));
        assert_eq!(core.scope.as_deref(), Some("public"));
        assert_eq!(
            core.refresh_token
                .map(|r| r.expose_secret().to_owned())
                .as_deref(),
            Some("r")
        );

        let lower = parse(r#"{"access_token":"a","token_type":"bearer","expires_in":"7200"}"#)?;
        let core = lower.into_core()?;
        assert_eq!(core.expires_in, Some(7200));
        assert_eq!(core.scope, None);
        assert_eq!(core.created_at, None);

        let bare = parse(r#"{"access_token":"a","scope":null,"token_type":null}"#)?;
        assert!(bare.into_core().is_ok());

        let mac = parse(r#"{"access_token":"a","token_type":"mac"}"#)?;
        assert!(matches!(
            mac.into_core(),
            Err(EndpointError::Protocol { .. })
        ));

        assert!(parse(r#"{"token_type":"bearer"}"#).is_err());
        assert!(parse(r#"{"access_token":"a","expires_in":-5}"#).is_err());
        Ok(())
    }

    /// Found by the `token_response` fuzz target: a derived `Deserialize` reads a struct from a
    /// JSON array of its fields in order, so `["tok"]` was a token response.
    #[test]
    fn only_a_json_object_is_a_token_response() -> Result<(), Box<dyn std::error::Error>> {
        for body in [
            r#"["tok"]"#,
            r#"["tok","bearer",7200,"r","public",1710270147]"#,
            "[]",
            r#""tok""#,
            "7200",
            "null",
            "true",
        ] {
            let error = match parse(body) {
                Ok(parsed) => panic!("{body} was read as a token response: {parsed:?}"),
                Err(error) => error,
            };
            assert!(error.is_data(), "{body}: {error}");
            assert!(
                error.to_string().contains("token response object"),
                "{error}"
            );
        }
        // The object form is read as before, and what it serializes to reads back the same.
        let parsed = parse(r#"{"access_token":"tok","expires_in":7200,"scope":"public"}"#)?;
        let again: KitTokenResponse = serde_json::from_str(&serde_json::to_string(&parsed)?)?;
        assert_eq!(again.access_token.secret(), "tok");
        assert_eq!(again.expires_in, Some(7200));
        assert_eq!(again.scope, parsed.scope);
        Ok(())
    }
}
