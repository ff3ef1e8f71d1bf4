//! Broker API keys (`KIT_OAUTH_API_KEYS`): kept only as SHA-256 hashes, compared in constant
//! time, optionally scoped to tenant names.
//!
//! Format: a comma-separated list of entries, each `KEY` (sees every connection) or
//! `TENANT=KEY` (sees only that tenant's connections; repeat the key with another tenant to
//! widen it). A `KEY` may also be given as `sha256:<64 hex digits>` so that the plain key never
//! sits in the deployment's configuration.

use std::collections::BTreeSet;
use std::fmt;

use kit_oauth::ConfigError;
use kit_oauth::core::{Sha256Hash, TenantName};

/// The variable the keys come from.
pub const API_KEYS_VAR: &str = "KIT_OAUTH_API_KEYS";
/// The shortest plain key accepted.
pub const MIN_KEY_LEN: usize = 16;

/// What a key may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every connection.
    All,
    /// Only connections of these tenants.
    Tenants(BTreeSet<TenantName>),
}

impl Scope {
    /// Whether a connection of `tenant` is visible.
    #[must_use]
    pub fn allows(&self, tenant: Option<&TenantName>) -> bool {
        match self {
            Self::All => true,
            Self::Tenants(set) => tenant.is_some_and(|t| set.contains(t)),
        }
    }
}

#[derive(Clone)]
struct Entry {
    hash: Sha256Hash,
    tenant: Option<TenantName>,
}

/// The accepted keys, as hashes. `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct ApiKeys {
    entries: Vec<Entry>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeys({} keys)", self.entries.len())
    }
}

impl ApiKeys {
    /// No keys: the API refuses everyone.
    #[must_use]
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses `KIT_OAUTH_API_KEYS`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the variable, saying which entry (by position, never by value)
    /// is wrong.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let mut entries = Vec::new();
        for (index, item) in raw.split(',').map(str::trim).enumerate() {
            let position = index + 1;
            if item.is_empty() {
                continue;
            }
            let (tenant, key) = match item.split_once('=') {
                Some((tenant, key)) => {
                    let tenant = TenantName::parse(tenant.trim()).map_err(|e| {
                        ConfigError::new(
                            API_KEYS_VAR,
                            format!("entry {position}: the tenant name is invalid ({e})"),
                        )
                    })?;
                    (Some(tenant), key.trim())
                }
                None => (None, item),
            };
            let hash = if let Some(hex) = key.strip_prefix("sha256:") {
                Sha256Hash::from_hex(hex).map_err(|_| {
                    ConfigError::new(
                        API_KEYS_VAR,
                        format!("entry {position}: sha256: must be followed by 64 hex digits"),
                    )
                })?
            } else {
                if key.len() < MIN_KEY_LEN {
                    return Err(ConfigError::new(
                        API_KEYS_VAR,
                        format!(
                            "entry {position}: a key must be at least {MIN_KEY_LEN} characters long"
                        ),
                    ));
                }
                if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                    return Err(ConfigError::new(
                        API_KEYS_VAR,
                        format!("entry {position}: a key cannot contain spaces"),
                    ));
                }
                Sha256Hash::of(key.as_bytes())
            };
            entries.push(Entry { hash, tenant });
        }
        if entries.is_empty() {
            return Err(ConfigError::new(API_KEYS_VAR, "contains no key"));
        }
        Ok(Self { entries })
    }

    /// Adds one unscoped plain key (the demo's generated key).
    #[must_use]
    pub fn with_key(mut self, key: &str) -> Self {
        self.entries.push(Entry {
            hash: Sha256Hash::of(key.as_bytes()),
            tenant: None,
        });
        self
    }

    /// What `presented` may see, or `None` when it is not a key. Every entry is compared, in
    /// constant time, whatever matched first.
    #[must_use]
    pub fn authenticate(&self, presented: &str) -> Option<Scope> {
        let hash = Sha256Hash::of(presented.as_bytes());
        let mut all = false;
        let mut tenants = BTreeSet::new();
        let mut matched = false;
        for entry in &self.entries {
            if entry.hash.ct_eq(&hash) {
                matched = true;
                match &entry.tenant {
                    None => all = true,
                    Some(t) => {
                        tenants.insert(t.clone());
                    }
                }
            }
        }
        match (matched, all) {
            (false, _) => None,
            (true, true) => Some(Scope::All),
            (true, false) => Some(Scope::Tenants(tenants)),
        }
    }

    /// Whether `presented` is an unscoped key (what the dashboard login accepts when no admin
    /// key is configured).
    #[must_use]
    pub fn is_unscoped_key(&self, presented: &str) -> bool {
        self.authenticate(presented) == Some(Scope::All)
    }

    /// How many entries there are.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scoped_and_hashed_keys() {
        let hashed = Sha256Hash::of(b"hashed-key-0123456789");
        let keys = ApiKeys::parse(&format!(
            "admin-key-0123456789, acme=acme-key-0123456789,globex=acme-key-0123456789, sha256:{hashed}"
        ))
        .unwrap();
        assert_eq!(keys.authenticate("admin-key-0123456789"), Some(Scope::All));
        assert_eq!(keys.authenticate("hashed-key-0123456789"), Some(Scope::All));
        let Some(Scope::Tenants(set)) = keys.authenticate("acme-key-0123456789") else {
            panic!("scoped key not recognised");
        };
        assert_eq!(set.len(), 2);
        assert_eq!(keys.authenticate("wrong-key-0123456789"), None);
        assert_eq!(keys.authenticate(""), None);
        assert!(!format!("{keys:?}").contains("admin-key"));
    }

    #[test]
    fn bad_entries_name_the_variable_not_the_key() {
        for raw in ["short", "", " , ", "=long-enough-key-123", "sha256:zz"] {
            let err = ApiKeys::parse(raw).unwrap_err();
            assert_eq!(err.variable, API_KEYS_VAR);
            assert!(!err.to_string().contains("long-enough-key"), "{err}");
        }
    }

    #[test]
    fn a_scope_allows_only_its_tenants() {
        let acme = TenantName::parse("acme").unwrap();
        let scope = Scope::Tenants(BTreeSet::from([acme.clone()]));
        assert!(scope.allows(Some(&acme)));
        assert!(!scope.allows(Some(&TenantName::parse("globex").unwrap())));
        assert!(!scope.allows(None));
        assert!(Scope::All.allows(None));
    }
}
