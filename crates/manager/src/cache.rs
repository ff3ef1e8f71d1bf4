//! The hot path: a concurrent map from connection to its current access token.
//!
//! A read takes one shard's read lock for the length of a hash lookup and a clone — never across
//! an `.await`, never a global lock — and does no I/O. An entry is served only while the token
//! is outside its refresh margin and before the background refresher's scheduled renewal
//! (Kit may revoke the previous access token when it rotates, so a token that another instance
//! is about to replace is not served from memory); after that the caller takes the slow path.
//!
//! The map hashes with foldhash rather than SipHash: keys are server-generated random ids, and
//! with 100,000 connections the hash is a measurable share of a lookup (docs/benchmarks.md).
//! foldhash is seeded per process, so ids chosen by a caller still cannot be aimed at one bucket
//! cheaply.

use dashmap::DashMap;
use kit_oauth_core::{AccessToken, ConnectionId, Timestamp, TokenSet, Version};

#[derive(Debug)]
struct Cached {
    access: AccessToken,
    serve_until: Timestamp,
    version: Version,
}

/// Access tokens by connection.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    entries: DashMap<ConnectionId, Cached, foldhash::fast::RandomState>,
}

impl TokenCache {
    /// The cached token, if it is not yet due at `now`.
    pub(crate) fn get(&self, id: &ConnectionId, now: Timestamp) -> Option<AccessToken> {
        let entry = self.entries.get(id)?;
        (now < entry.serve_until).then(|| entry.access.clone())
    }

    /// Remembers `tokens` as of row `version`, to be served until they are due or the
    /// scheduled refresh (`next_refresh_at`) comes, whichever is first — unless a newer
    /// version is already cached (a slow reader must not replace what a faster refresh stored).
    pub(crate) fn put(
        &self,
        id: &ConnectionId,
        tokens: &TokenSet,
        version: Version,
        next_refresh_at: Option<Timestamp>,
    ) {
        let serve_until = next_refresh_at.map_or(tokens.due_at(), |at| at.min(tokens.due_at()));
        let fresh = Cached {
            access: tokens.access().clone(),
            serve_until,
            version,
        };
        self.entries
            .entry(id.clone())
            .and_modify(|current| {
                if current.version <= version {
                    *current = Cached {
                        access: fresh.access.clone(),
                        serve_until: fresh.serve_until,
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
        let at = Timestamp::from_unix_seconds;
        cache.put(&id, &tokens("a", 9_100), Version(1), None);
        assert!(cache.get(&id, at(9_099)).is_some());
        assert!(cache.get(&id, at(9_100)).is_none());
        // The scheduled refresh comes first: served until then only.
        cache.put(&id, &tokens("a", 9_100), Version(2), Some(at(9_000)));
        assert!(cache.get(&id, at(8_999)).is_some());
        assert!(cache.get(&id, at(9_000)).is_none());
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = TokenCache::default();
        let id = ConnectionId::parse("c").unwrap();
        cache.put(&id, &tokens("new", 9_100), Version(3), None);
        cache.put(&id, &tokens("old", 9_100), Version(2), None);
        let now = Timestamp::from_unix_seconds(1);
        assert_eq!(cache.get(&id, now).unwrap(), AccessToken::new("new"));
        cache.evict_if(&id, &AccessToken::new("old"));
        assert!(cache.get(&id, now).is_some());
        cache.evict_if(&id, &AccessToken::new("new"));
        assert!(cache.get(&id, now).is_none());
    }
}
