//! Identifiers: validated newtypes, so an unchecked string never reaches a query or a URL.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::error::IdError;

/// The opaque, URL-safe, random identifier of one connection (one grant).
///
/// 16 random bytes as base64url without padding (22 characters): unguessable, so an id that
/// leaks in a log line reveals nothing and cannot be enumerated.
///
/// Held inline (at most 64 ASCII bytes, no heap buffer): it is the token cache's key, and with
/// 100,000 connections following a pointer to the key's text was a cache miss on every lookup.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ConnectionId {
    len: u8,
    bytes: [u8; Self::MAX_LEN],
}

impl ConnectionId {
    const RANDOM_BYTES: usize = 16;
    const MAX_LEN: usize = 64;
    const EMPTY: Self = Self {
        len: 0,
        bytes: [0; Self::MAX_LEN],
    };

    /// A fresh random identifier.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; Self::RANDOM_BYTES];
        rng.fill_bytes(&mut bytes);
        let mut id = Self::EMPTY;
        // 16 bytes encode to 22 characters, well within MAX_LEN.
        let written = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut id.bytes)
            .unwrap_or_default();
        id.len = u8::try_from(written).unwrap_or_default();
        id
    }

    /// Validates an identifier read from a URL path, a database row or a CLI argument.
    ///
    /// # Errors
    /// [`IdError`] when empty, longer than 64 bytes, or not base64url characters.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty {
                what: "connection id",
            });
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                what: "connection id",
                max: Self::MAX_LEN,
            });
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(IdError::InvalidCharacter {
                what: "connection id",
            });
        }
        let mut id = Self::EMPTY;
        id.bytes[..raw.len()].copy_from_slice(raw.as_bytes());
        id.len = u8::try_from(raw.len()).map_err(|_| IdError::TooLong {
            what: "connection id",
            max: Self::MAX_LEN,
        })?;
        Ok(id)
    }

    /// The identifier as text (safe in URLs and logs).
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only base64url ASCII is ever stored, so this cannot fail.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for ConnectionId {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for ConnectionId {}

impl std::hash::Hash for ConnectionId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for ConnectionId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ConnectionId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

/// The optional `tenant_name` of a multi-tenant app: Kit issues a separate grant per name.
///
/// Rejects what would be ambiguous or dangerous in a URL, a log line or a database key:
/// empty, over 255 bytes, or containing control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantName(String);

impl TenantName {
    /// The longest tenant name accepted, in bytes.
    pub const MAX_LEN: usize = 255;

    /// Validates a tenant name.
    ///
    /// # Errors
    /// [`IdError`] when empty, longer than 255 bytes, or containing a control character.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        if raw.is_empty() {
            return Err(IdError::Empty {
                what: "tenant name",
            });
        }
        if raw.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                what: "tenant name",
                max: Self::MAX_LEN,
            });
        }
        if raw.chars().any(char::is_control) {
            return Err(IdError::InvalidCharacter {
                what: "tenant name",
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The tenant name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Kit's `account.id` from `GET /v4/account`: the identity a connection is keyed by.
///
/// Kit sends a number; it is kept as its decimal text so that another RFC 6749 server's
/// string ids fit too. Printable ASCII only, 1–64 bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KitAccountId(String);

impl KitAccountId {
    const MAX_LEN: usize = 64;

    /// Validates an account id.
    ///
    /// # Errors
    /// [`IdError`] when empty, longer than 64 bytes, or not printable ASCII without spaces.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        validate_token_like(raw, "Kit account id", Self::MAX_LEN)?;
        Ok(Self(raw.to_owned()))
    }

    /// The account id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<u64> for KitAccountId {
    fn from(id: u64) -> Self {
        Self(id.to_string())
    }
}

/// The app's OAuth `client_id` (public, but still validated: it goes into URLs).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    const MAX_LEN: usize = 255;

    /// Validates a client id.
    ///
    /// # Errors
    /// [`IdError`] when empty, longer than 255 bytes, or not printable ASCII without spaces.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        validate_token_like(raw, "client id", Self::MAX_LEN)?;
        Ok(Self(raw.to_owned()))
    }

    /// The client id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_token_like(raw: &str, what: &'static str, max: usize) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { what });
    }
    if raw.len() > max {
        return Err(IdError::TooLong { what, max });
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IdError::InvalidCharacter { what });
    }
    Ok(())
}

/// `Debug`, `Display`, `TryFrom<String>`, `From<Self> for String` and `FromStr` for a
/// validated string newtype with a `parse` constructor.
macro_rules! string_newtype_impls {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.as_str())
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                Self::parse(&raw)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.as_str().to_owned()
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(raw: &str) -> Result<Self, IdError> {
                Self::parse(raw)
            }
        }
    )*};
}

string_newtype_impls!(ConnectionId, TenantName, KitAccountId, ClientId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_connection_ids_are_url_safe_and_distinct() {
        let mut rng = rand::rngs::OsRng;
        let a = ConnectionId::generate(&mut rng);
        let b = ConnectionId::generate(&mut rng);
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(ConnectionId::parse(a.as_str()), Ok(a));
    }

    #[test]
    fn connection_id_rejects_what_is_not_base64url() {
        assert!(ConnectionId::parse("").is_err());
        assert!(ConnectionId::parse("a/b").is_err());
        assert!(ConnectionId::parse("a b").is_err());
        assert!(ConnectionId::parse("%2e%2e").is_err());
        assert!(ConnectionId::parse(&"a".repeat(65)).is_err());
        assert!(ConnectionId::parse("abc-DEF_123").is_ok());
    }

    #[test]
    fn tenant_name_rules() {
        assert_eq!(
            TenantName::parse(""),
            Err(IdError::Empty {
                what: "tenant name"
            })
        );
        assert!(TenantName::parse(&"x".repeat(255)).is_ok());
        assert!(matches!(
            TenantName::parse(&"x".repeat(256)),
            Err(IdError::TooLong { max: 255, .. })
        ));
        // 255 bytes, not 255 characters: a multi-byte name is counted in bytes.
        assert!(TenantName::parse(&"é".repeat(128)).is_err());
        assert!(TenantName::parse("acme\n").is_err());
        assert!(TenantName::parse("acme\u{7f}").is_err());
        assert!(TenantName::parse("acme\u{0}").is_err());
        assert!(TenantName::parse("Acme Corp — Europe").is_ok());
    }

    #[test]
    fn account_and_client_ids() {
        assert_eq!(KitAccountId::from(42).as_str(), "42");
        assert!(KitAccountId::parse("").is_err());
        assert!(KitAccountId::parse("4 2").is_err());
        assert!(ClientId::parse("my-app_client.id").is_ok());
        assert!(ClientId::parse("bad\tid").is_err());
    }

    #[test]
    fn serde_validates_on_the_way_in() {
        let ok: Result<TenantName, _> = serde_json::from_str("\"acme\"");
        assert!(ok.is_ok());
        let bad: Result<TenantName, _> = serde_json::from_str("\"\"");
        assert!(bad.is_err());
        let bad_id: Result<ConnectionId, _> = serde_json::from_str("\"../etc\"");
        assert!(bad_id.is_err());
    }
}
