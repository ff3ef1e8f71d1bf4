//! Encryption at rest: AES-256-GCM with a key ring.
//!
//! Every write draws a fresh 96-bit nonce from the operating system and binds the ciphertext to
//! where it lives with associated data — (table, row key, version, column) — so a ciphertext
//! copied into another row, another column or an older version of the same row fails
//! authentication instead of decrypting. Each row records the id of the key that sealed it, so
//! keys rotate online: add a new key in front of the ring, then re-encrypt in batches.

use std::fmt;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use kit_oauth_core::StoreError;
use rand_core::{OsRng, RngCore as _};
use thiserror::Error;
use zeroize::{Zeroize as _, Zeroizing};

/// The environment variable that holds the key ring.
pub const ENCRYPTION_KEY_ENV: &str = "KIT_OAUTH_ENCRYPTION_KEY";

/// The id a bare key (without `id:`) gets.
pub const DEFAULT_KEY_ID: &str = "default";

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;

/// Length of an AES-GCM nonce in bytes.
pub(crate) const NONCE_LEN: usize = 12;

/// Why a key ring could not be built. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyRingError {
    /// `KIT_OAUTH_ENCRYPTION_KEY` is not set.
    #[error("{ENCRYPTION_KEY_ENV} is not set")]
    Missing,
    /// The value has no keys.
    #[error("{ENCRYPTION_KEY_ENV} contains no key")]
    Empty,
    /// A key id is empty, too long or has characters other than `A-Z a-z 0-9 - _ .`.
    #[error(
        "{ENCRYPTION_KEY_ENV}: key id {id:?} is invalid (1-64 characters of A-Z a-z 0-9 - _ .)"
    )]
    InvalidKeyId {
        /// The offending id.
        id: String,
    },
    /// A key is not valid base64.
    #[error("{ENCRYPTION_KEY_ENV}: key {id:?} is not valid base64")]
    InvalidBase64 {
        /// The key's id.
        id: String,
    },
    /// A key does not decode to 32 bytes.
    #[error("{ENCRYPTION_KEY_ENV}: key {id:?} is {len} bytes; AES-256 needs {KEY_LEN}")]
    WrongLength {
        /// The key's id.
        id: String,
        /// The decoded length.
        len: usize,
    },
    /// Two keys share an id.
    #[error("{ENCRYPTION_KEY_ENV}: key id {id:?} appears twice")]
    DuplicateKeyId {
        /// The repeated id.
        id: String,
    },
}

struct Entry {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
    cipher: Aes256Gcm,
}

/// The encryption keys: the first one seals new writes, all of them open existing rows.
///
/// `Debug` prints the key ids only.
pub struct KeyRing {
    entries: Vec<Entry>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current_key_id())
            .field("key_ids", &self.key_ids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Parses `KIT_OAUTH_ENCRYPTION_KEY`: `id:base64key,id:base64key,…` (the first is current),
    /// or a single bare base64 key, whose id is `default`. Keys are 32 bytes, in standard or
    /// URL-safe base64, padded or not.
    ///
    /// # Errors
    /// [`KeyRingError`] naming the key id at fault; never the key itself.
    pub fn from_env_value(value: &str) -> Result<Self, KeyRingError> {
        let mut entries: Vec<Entry> = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, encoded) = match item.split_once(':') {
                Some((id, encoded)) => (id.trim(), encoded.trim()),
                None => (DEFAULT_KEY_ID, item),
            };
            validate_key_id(id)?;
            if entries.iter().any(|e| e.id == id) {
                return Err(KeyRingError::DuplicateKeyId { id: id.to_owned() });
            }
            let key = decode_key(id, encoded)?;
            entries.push(Entry::new(id.to_owned(), key));
        }
        if entries.is_empty() {
            return Err(KeyRingError::Empty);
        }
        Ok(Self { entries })
    }

    /// Reads and parses [`ENCRYPTION_KEY_ENV`].
    ///
    /// # Errors
    /// [`KeyRingError::Missing`] when unset, else as [`KeyRing::from_env_value`].
    pub fn from_env() -> Result<Self, KeyRingError> {
        let value =
            Zeroizing::new(std::env::var(ENCRYPTION_KEY_ENV).map_err(|_| KeyRingError::Missing)?);
        Self::from_env_value(&value)
    }

    /// A ring with one fresh random key, with id `default`.
    #[must_use]
    pub fn generate() -> Self {
        Self {
            entries: vec![Entry::random(DEFAULT_KEY_ID.to_owned())],
        }
    }

    /// A ring with one fresh random key with the given id.
    ///
    /// # Errors
    /// [`KeyRingError::InvalidKeyId`] for an unusable id.
    pub fn generate_with_id(id: &str) -> Result<Self, KeyRingError> {
        validate_key_id(id)?;
        Ok(Self {
            entries: vec![Entry::random(id.to_owned())],
        })
    }

    /// This ring with `other`'s keys in front (the first of `other` becomes current), for
    /// rotation. Keys whose id is already present keep their existing material.
    #[must_use]
    pub fn rotated_to(mut self, other: Self) -> Self {
        let mut entries = other.entries;
        self.entries
            .retain(|e| !entries.iter().any(|n| n.id == e.id));
        entries.append(&mut self.entries);
        Self { entries }
    }

    /// The ring in the `KIT_OAUTH_ENCRYPTION_KEY` format. This IS the secret: write it only to
    /// a file readable by the service (demo mode keeps it beside the SQLite file).
    #[must_use]
    pub fn to_env_value(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        for (i, entry) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&entry.id);
            out.push(':');
            let mut encoded = STANDARD.encode(entry.key.as_ref());
            out.push_str(&encoded);
            encoded.zeroize();
        }
        out
    }

    /// The id of the key that seals new writes.
    #[must_use]
    pub fn current_key_id(&self) -> &str {
        self.entries.first().map_or("", |e| e.id.as_str())
    }

    /// Every key id, current first.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.id.as_str())
    }

    fn entry(&self, key_id: &str) -> Result<&Entry, StoreError> {
        self.entries
            .iter()
            .find(|e| e.id == key_id)
            .ok_or_else(|| StoreError::UnknownKey {
                key_id: key_id.to_owned(),
            })
    }

    /// Seals `plaintext` with the current key; returns (nonce, ciphertext with tag).
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, StoreError> {
        let entry = self.entries.first().ok_or_else(|| StoreError::UnknownKey {
            key_id: String::new(),
        })?;
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = entry
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| StoreError::Backend("encryption failed".into()))?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a ciphertext sealed with `key_id`.
    pub(crate) fn open(
        &self,
        key_id: &str,
        nonce: &[u8],
        ciphertext: &[u8],
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let entry = self.entry(key_id)?;
        if nonce.len() != NONCE_LEN {
            return Err(StoreError::Corrupt(format!(
                "nonce is {} bytes, expected {NONCE_LEN}",
                nonce.len()
            )));
        }
        entry
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| StoreError::Integrity {
                key_id: key_id.to_owned(),
            })
    }
}

impl Entry {
    fn random(id: String) -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut());
        Self::new(id, key)
    }

    fn new(id: String, key: Zeroizing<[u8; KEY_LEN]>) -> Self {
        let cipher = Aes256Gcm::new(key.as_ref().into());
        Self { id, key, cipher }
    }
}

/// A sealed secret: the nonce and the ciphertext (with its 16-byte tag).
pub(crate) struct Sealed {
    pub(crate) nonce: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
}

fn validate_key_id(id: &str) -> Result<(), KeyRingError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(KeyRingError::InvalidKeyId { id: id.to_owned() })
    }
}

fn decode_key(id: &str, encoded: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyRingError> {
    let decoded = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(encoded).ok())
        .map(Zeroizing::new)
        .ok_or_else(|| KeyRingError::InvalidBase64 { id: id.to_owned() })?;
    if decoded.len() != KEY_LEN {
        return Err(KeyRingError::WrongLength {
            id: id.to_owned(),
            len: decoded.len(),
        });
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&decoded);
    Ok(key)
}

/// The associated data binding a connection's secret to its row, version and column.
pub(crate) fn connection_aad(id: &str, version: u64, column: &str) -> Vec<u8> {
    format!("kit-oauth/v1|connections|{id}|{version}|{column}").into_bytes()
}

/// The associated data binding a pending install's verifier to its state hash.
pub(crate) fn pending_aad(state_hash_hex: &str, column: &str) -> Vec<u8> {
    format!("kit-oauth/v1|pending_authorizations|{state_hash_hex}|{column}").into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn key_b64(byte: u8) -> String {
        STANDARD.encode([byte; KEY_LEN])
    }

    #[test]
    fn parses_ids_and_bare_keys() {
        let ring =
            KeyRing::from_env_value(&format!("new:{},old:{}", key_b64(1), key_b64(2))).unwrap();
        assert_eq!(ring.current_key_id(), "new");
        assert_eq!(ring.key_ids().collect::<Vec<_>>(), ["new", "old"]);
        let bare = KeyRing::from_env_value(&key_b64(3)).unwrap();
        assert_eq!(bare.current_key_id(), "default");
        let url_safe =
            KeyRing::from_env_value(&format!("k:{}", URL_SAFE_NO_PAD.encode([0xfb; 32])));
        assert!(url_safe.is_ok());
    }

    #[test]
    fn rejects_bad_values_without_echoing_keys() {
        assert_eq!(
            KeyRing::from_env_value(" , ").unwrap_err(),
            KeyRingError::Empty
        );
        let short = STANDARD.encode([7u8; 16]);
        let err = KeyRing::from_env_value(&format!("k1:{short}")).unwrap_err();
        assert_eq!(
            err,
            KeyRingError::WrongLength {
                id: "k1".into(),
                len: 16
            }
        );
        assert!(!err.to_string().contains(&short));
        assert!(matches!(
            KeyRing::from_env_value("k1:!!!notbase64"),
            Err(KeyRingError::InvalidBase64 { .. })
        ));
        assert!(matches!(
            KeyRing::from_env_value(&format!("a b:{}", key_b64(1))),
            Err(KeyRingError::InvalidKeyId { .. })
        ));
        assert!(matches!(
            KeyRing::from_env_value(&format!("a:{},a:{}", key_b64(1), key_b64(2))),
            Err(KeyRingError::DuplicateKeyId { .. })
        ));
    }

    #[test]
    fn debug_shows_ids_only() {
        let ring = KeyRing::from_env_value(&format!("main:{}", key_b64(9))).unwrap();
        let debug = format!("{ring:?}");
        assert!(debug.contains("main"));
        assert!(!debug.contains(&key_b64(9)));
        assert!(!debug.contains("9, 9"));
    }

    #[test]
    fn seal_open_round_trip_and_binding() {
        let ring = KeyRing::generate();
        let aad = connection_aad("abc", 1, "access_token");
        let sealed = ring.seal(b"secret-token", &aad).unwrap();
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        let opened = ring
            .open("default", &sealed.nonce, &sealed.ciphertext, &aad)
            .unwrap();
        assert_eq!(opened.as_slice(), b"secret-token");
        // Another version, row or column: integrity error.
        for other in [
            connection_aad("abc", 2, "access_token"),
            connection_aad("abd", 1, "access_token"),
            connection_aad("abc", 1, "refresh_token"),
        ] {
            assert!(matches!(
                ring.open("default", &sealed.nonce, &sealed.ciphertext, &other),
                Err(StoreError::Integrity { .. })
            ));
        }
        assert!(matches!(
            ring.open("gone", &sealed.nonce, &sealed.ciphertext, &aad),
            Err(StoreError::UnknownKey { key_id }) if key_id == "gone"
        ));
        // Fresh nonce per write.
        let again = ring.seal(b"secret-token", &aad).unwrap();
        assert_ne!(again.nonce, sealed.nonce);
        assert_ne!(again.ciphertext, sealed.ciphertext);
    }

    #[test]
    fn env_value_round_trips_and_rotation_puts_new_key_first() {
        let old = KeyRing::generate_with_id("old").unwrap();
        let new = KeyRing::generate_with_id("new").unwrap();
        let rotated = old.rotated_to(new);
        assert_eq!(rotated.key_ids().collect::<Vec<_>>(), ["new", "old"]);
        let again = KeyRing::from_env_value(&rotated.to_env_value()).unwrap();
        let aad = pending_aad("00", "verifier");
        let sealed = rotated.seal(b"v", &aad).unwrap();
        assert_eq!(
            again
                .open("new", &sealed.nonce, &sealed.ciphertext, &aad)
                .unwrap()
                .as_slice(),
            b"v"
        );
    }
}
