//! Kit accounts: derived from the name typed on the consent page, so the same name always has the
//! same ids across runs.

use sha2::{Digest as _, Sha256};

/// A Kit account, derived from its name: the same name always has the same ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) id: u64,
    pub(crate) user_id: u64,
    pub(crate) name: String,
}

impl Account {
    /// Ids are spread over 9·10¹² values (still exact in a JSON number read as a double), so a
    /// load test installing 10,000 distinct names never sees two share an account; a range of
    /// 9·10⁶ collided a few times per 10,000.
    pub(crate) fn named(name: &str) -> Self {
        let digest = Sha256::digest(format!("kit-sandbox account:{name}").as_bytes());
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&digest[..8]);
        b.copy_from_slice(&digest[8..16]);
        Self {
            id: 1_000_000 + u64::from_le_bytes(a) % 9_000_000_000_000,
            user_id: 1_000_000 + u64::from_le_bytes(b) % 9_000_000_000_000,
            name: name.to_owned(),
        }
    }

    /// `jane-doe@example.com` for "Jane Doe".
    pub(crate) fn email(&self) -> String {
        let mut local = String::new();
        for c in self.name.chars() {
            if c.is_ascii_alphanumeric() {
                local.push(c.to_ascii_lowercase());
            } else if !local.ends_with('-') && !local.is_empty() {
                local.push('-');
            }
        }
        let local = local.trim_end_matches('-');
        if local.is_empty() {
            format!("account-{}@example.com", self.id)
        } else {
            format!("{local}@example.com")
        }
    }
}
