//! The hot path: a concurrent map from connection to its current access token.
//!
//! A read takes one shard's read lock for the length of a hash lookup and a clone — never across
//! an `.await`, never a global lock — and does no I/O. An entry is served only while the token
//! is outside its refresh margin; after that the caller takes the slow path.

use dashmap::DashMap;
use kit_oauth_core::{AccessToken, ConnectionId, Timestamp, TokenSet, Version};

#[derive(Debug)]
struct Cached {
    access: AccessToken,
    due_at: Timestamp,
    version: Version,
}

/// Access tokens by connection.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: DashMap<ConnectionId, Cached>,
}

impl TokenCache {
    /// The cached token, if it is not yet due at `now`.
    pub(crate) fn get(&self, id: &ConnectionId, now: Timestamp) -> Option<AccessToken> {
        let entry = self.entries.get(id)?;
        (now < entry.due_at).then(|| entry.access.clone())
    }

    /// Remembers `tokens` as of row `version`, unless a newer version is already cached (a
    /// slow reader must not replace what a faster refresh stored).
    pub(crate) fn put(&self, id: &ConnectionId, tokens: &TokenSet, version: Version) {
        let fresh = Cached {
            access: tokens.access().clone(),
            due_at: tokens.due_at(),
            version,
        };
        self.entries
            .entry(id.clone())
            .and_modify(|current| {
                if current.version <= version {
                    *current = Cached {
                        access: fresh.access.clone(),
                        due_at: fresh.due_at,
                        version,
                    };
                }
            })
            .or_insert(fresh);
    }

    /// Forgets a connection (revoked, dead, removed, or its token rejected by Kit).
    pub(crate) fn evict(&self, id: &ConnectionId) {
        self.entries.remove(id);
    }

    /// Forgets a connection only if the cached token is `rejected` (so a token another task
    /// has just stored survives).
    pub(crate) fn evict_if(&self, id: &ConnectionId, rejected: &AccessToken) {
        self.entries
            .remove_if(id, |_, cached| &cached.access == rejected);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kit_oauth_core::RefreshToken;

    fn tokens(access: &str, due_s: i64) -> TokenSet {
        TokenSet::from_parts(
            AccessToken::new(access),
            RefreshToken::new("r"),
            None,
            Timestamp::from_unix_seconds(0),
            // lifetime 10 000 s: margin 900 s
            Timestamp::from_unix_seconds(due_s + 900),
        )
    }

    #[test]
    fn serves_until_due_then_misses() {
        let cache = TokenCache::default();
        let id = ConnectionId::parse("c").unwrap();
        cache.put(&id, &tokens("a", 9_100), Version(1));
        assert!(
            cache
                .get(&id, Timestamp::from_unix_seconds(9_099))
                .is_some()
        );
        assert!(
            cache
                .get(&id, Timestamp::from_unix_seconds(9_100))
                .is_none()
        );
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = TokenCache::default();
        let id = ConnectionId::parse("c").unwrap();
        cache.put(&id, &tokens("new", 9_100), Version(3));
        cache.put(&id, &tokens("old", 9_100), Version(2));
        let now = Timestamp::from_unix_seconds(1);
        assert_eq!(cache.get(&id, now).unwrap(), AccessToken::new("new"));
        cache.evict_if(&id, &AccessToken::new("old"));
        assert!(cache.get(&id, now).is_some());
        cache.evict_if(&id, &AccessToken::new("new"));
        assert!(cache.get(&id, now).is_none());
    }
}
