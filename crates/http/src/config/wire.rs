//! The request-shape choices of [`super::KitEndpoints`]: how a token request's body is
//! encoded, and which path family the default endpoint URLs use.

use std::fmt;
use std::str::FromStr;

use super::ConfigError;

/// How the token endpoint's request body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenBody {
    /// `application/json`, as Kit's documentation and SDKs send it (the default).
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, the RFC 6749 standard.
    Form,
}

impl TokenBody {
    /// `json` or `form`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Form => "form",
        }
    }
}

impl fmt::Display for TokenBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TokenBody {
    type Err = ConfigError;

    /// `json` or `form`, case-insensitive (the `KIT_TOKEN_BODY` variable).
    fn from_str(raw: &str) -> Result<Self, ConfigError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "form" => Ok(Self::Form),
            _ => Err(ConfigError::UnknownTokenBody),
        }
    }
}

/// Which path family the default endpoint URLs use (docs/kit-protocol.md: both are served by Kit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PathFamily {
    /// `/v4/oauth/authorize`, `/v4/oauth/token`, `/v4/oauth/revoke` (documented; the default).
    #[default]
    V4,
    /// `/oauth/authorize`, `/oauth/token`, `/oauth/revoke` (used by Kit's own code).
    Legacy,
}

impl PathFamily {
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Self::V4 => "/v4/oauth",
            Self::Legacy => "/oauth",
        }
    }
}
