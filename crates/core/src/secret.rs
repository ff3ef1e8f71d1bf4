//! Secrets: values that never appear in `Debug`, `Display` or logs, and compare in constant time.
//!
//! Each type wraps [`secrecy::SecretString`], so the buffer is zeroized on drop and reading the
//! value takes an explicit `expose_secret()` that is easy to grep for in review. The wrapper is
//! shared behind an `Arc`: the token cache hands the same access token to every caller, and a
//! clone that allocates and copies a secret would be most of the hot path's cost (and leave one
//! more copy to zeroize). The buffer is zeroized when its last holder drops it.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::{CryptoRng, RngCore};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::error::SecretError;

/// What `Debug` and `Display` print instead of a secret.
pub const REDACTED: &str = "[redacted]";

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name(Arc<SecretString>);

        impl $name {
            /// Wraps a value received from the outside (a token response, a query string).
            #[must_use]
            pub fn new(value: impl Into<String>) -> Self {
                Self(Arc::new(SecretString::from(value.into())))
            }

            /// The secret value. Every call site is a place where the secret leaves its
            /// wrapper: keep them few, and never pass the result to a formatter.
            #[must_use]
            pub fn expose_secret(&self) -> &str {
                self.0.expose_secret()
            }

            /// SHA-256 of the value: safe to store, log-free to compare, and the form in which
            /// the store remembers a refresh token "in flight" or an install `state`.
            #[must_use]
            pub fn fingerprint(&self) -> Sha256Hash {
                Sha256Hash::of(self.expose_secret().as_bytes())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({REDACTED})", stringify!($name))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(REDACTED)
            }
        }

        /// Constant-time in the contents (the length may leak, which reveals nothing for
        /// values of fixed length).
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                constant_time_eq(self.expose_secret(), other.expose_secret())
            }
        }

        impl Eq for $name {}

        /// Serializes the value itself: only storage round-trips (which encrypt it) and the
        /// broker's token response (whose whole point is to hand it out) serialize secrets.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.expose_secret())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                String::deserialize(deserializer).map(Self::new)
            }
        }
    };
}

secret_type!(
    /// A Kit access token (`Authorization: Bearer …`).
    AccessToken
);
secret_type!(
    /// A Kit refresh token. It rotates on every use: once spent it must never be sent again.
    RefreshToken
);
secret_type!(
    /// The app's OAuth client secret (absent for public clients).
    ClientSecret
);
secret_type!(
    /// A single-use authorization code from the callback.
    AuthorizationCode
);
secret_type!(
    /// The PKCE code verifier (RFC 7636): 43–128 characters of `A-Z a-z 0-9 - . _ ~`.
    PkceVerifier
);
secret_type!(
    /// The install `state`: 32 random bytes, single use, stored only as its hash.
    CsrfState
);

impl PkceVerifier {
    /// A fresh verifier from 32 random bytes (43 base64url characters, 256 bits).
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self::new(random_base64url::<R, 32>(rng))
    }

    /// Validates a verifier received from elsewhere (a stored row, a caller).
    ///
    /// # Errors
    /// [`SecretError::InvalidVerifier`] when the length or alphabet is outside RFC 7636.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let ok_len = (43..=128).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if ok_len && ok_chars {
            Ok(Self::new(raw))
        } else {
            Err(SecretError::InvalidVerifier)
        }
    }

    /// The `S256` challenge: base64url-no-pad(SHA-256(verifier)).
    #[must_use]
    pub fn challenge(&self) -> PkceChallenge {
        PkceChallenge(URL_SAFE_NO_PAD.encode(Sha256::digest(self.expose_secret().as_bytes())))
    }
}

impl CsrfState {
    /// A fresh state from 32 random bytes.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self::new(random_base64url::<R, 32>(rng))
    }
}

/// The public half of PKCE, sent on the authorize request with `code_challenge_method=S256`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PkceChallenge(String);

impl PkceChallenge {
    /// The challenge text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The only method this toolkit sends (`plain` is never used).
    pub const METHOD: &'static str = "S256";
}

/// A SHA-256 digest of a secret: what the store keeps instead of the secret itself.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hash([u8; 32]);

impl Sha256Hash {
    /// Hashes `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// From a stored digest.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses 64 lowercase or uppercase hex digits.
    ///
    /// # Errors
    /// [`SecretError::InvalidHash`] for anything else.
    pub fn from_hex(hex: &str) -> Result<Self, SecretError> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(SecretError::InvalidHash);
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or(SecretError::InvalidHash)?;
            let lo = hex_value(pair[1]).ok_or(SecretError::InvalidHash)?;
            *slot = (hi << 4) | lo;
        }
        Ok(Self(out))
    }

    /// Constant-time comparison, for checks an attacker can time (browser bindings, API keys).
    #[must_use]
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Hash({self})")
    }
}

/// Compares two strings in time that depends only on their lengths.
#[must_use]
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn random_base64url<R: RngCore + CryptoRng, const N: usize>(rng: &mut R) -> String {
    let mut bytes = [0u8; N];
    rng.fill_bytes(&mut bytes);
    let encoded = URL_SAFE_NO_PAD.encode(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let token = AccessToken::new("super-secret-value");
        assert_eq!(format!("{token:?}"), "AccessToken([redacted])");
        assert_eq!(format!("{token}"), "[redacted]");
        let nested = Some(vec![RefreshToken::new("another-secret")]);
        assert!(!format!("{nested:?}").contains("another-secret"));
        assert!(!format!("{:#?}", ClientSecret::new("s3cr3t")).contains("s3cr3t"));
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(CsrfState::new("abc"), CsrfState::new("abc"));
        assert_ne!(CsrfState::new("abc"), CsrfState::new("abd"));
        assert_ne!(CsrfState::new("abc"), CsrfState::new("abcd"));
    }

    #[test]
    fn pkce_challenge_matches_rfc7636_appendix_b() {
        let verifier = PkceVerifier::parse("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap();
        assert_eq!(
            verifier.challenge().as_str(),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_verifier_and_state_are_valid_and_distinct() {
        let mut rng = rand::rngs::OsRng;
        let v = PkceVerifier::generate(&mut rng);
        assert_eq!(v.expose_secret().len(), 43);
        assert!(PkceVerifier::parse(v.expose_secret()).is_ok());
        let a = CsrfState::generate(&mut rng);
        let b = CsrfState::generate(&mut rng);
        assert_ne!(a, b);
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn verifier_bounds() {
        assert!(PkceVerifier::parse(&"a".repeat(42)).is_err());
        assert!(PkceVerifier::parse(&"a".repeat(43)).is_ok());
        assert!(PkceVerifier::parse(&"a".repeat(128)).is_ok());
        assert!(PkceVerifier::parse(&"a".repeat(129)).is_err());
        assert!(PkceVerifier::parse(&format!("{}+", "a".repeat(43))).is_err());
    }

    #[test]
    fn hash_hex_round_trip() {
        let h = Sha256Hash::of(b"abc");
        assert_eq!(
            h.to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Sha256Hash::from_hex(&h.to_string()), Ok(h));
        assert!(Sha256Hash::from_hex("zz").is_err());
        assert!(h.ct_eq(&Sha256Hash::of(b"abc")));
    }
}
