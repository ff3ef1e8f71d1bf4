//! The hot path: a concurrent map from connection to its current access token.
//!
//! A read takes one shard's read lock for the length of a hash lookup and a clone — never across
//! an `.await`, never a global lock — and does no I/O. An entry is served only while the token
//! is outside its refresh margin, before the background refresher's scheduled renewal (Kit may
//! revoke the previous access token when it rotates, so a token that another instance is about
//! to replace is not served from memory), and for at most `max_age` after it was read or
//! written (so a revocation or removal made by another instance reaches this one); after that
//! the caller takes the slow path, which re-reads the row.
//!
//! The map hashes with foldhash rather than SipHash: keys are server-generated random ids, and
//! with 100,000 connections the hash is a measurable share of a lookup (docs/benchmarks.md).
//! foldhash is seeded per process, so ids chosen by a caller still cannot be aimed at one bucket
//! cheaply.
//!
//! The map holds at most `capacity` entries (`ManagerConfig::cache_capacity`), whatever the
//! number of connections ever read: a broker in front of a million connections must not grow
//! by every token it has served once. Eviction stays off the hot path: only the slow path's
//! insertion of a *new* entry checks the size, and when it is over the capacity, one sweep
//! shard by shard (each shard's write lock in turn, never all at once) drops first every entry
//! that could no longer be served anyway (past its `serve_until`), then, if that is not enough,
//! arbitrary entries, down to [`LOW_WATER`] of the capacity — so a full cache sweeps once per
//! tenth of its capacity of new entries, not on every insertion. An evicted entry costs its
//! next reader one database read, as an expired one does.

use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;
use kit_oauth_core::{AccessToken, ConnectionId, TenantName, Timestamp, TokenSet, Version};

#[derive(Debug)]
struct Cached {
    access: AccessToken,
    expires_at: Timestamp,
    serve_until: Timestamp,
    version: Version,
    /// The connection's tenant, once a reader of the row has told us. A row's tenant never
    /// changes (it is part of the install's unique key, and no write updates it), so once known
    /// it stays true for as long as the entry lives.
    tenant: Option<Option<TenantName>>,
}

/// What [`TokenCache::lookup`] found for a caller that may see only some tenants.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// No entry, or its tenant is not known yet: read the row.
    Miss,
    /// The connection belongs to a tenant the caller may not see.
    Hidden,
    /// Visible, but the token is not served from memory any more: take the slow path.
    Due,
    /// Visible and fresh: the token and when it expires.
    Fresh(AccessToken, Timestamp),
}

/// A sweep leaves at most this share of the capacity (in tenths), so that the next one is
/// a tenth of the capacity of new entries away.
const LOW_WATER: usize = 9;

/// Access tokens by connection.
#[derive(Debug)]
pub(crate) struct TokenCache {
    entries: DashMap<ConnectionId, Cached, foldhash::fast::RandomState>,
    max_age: std::time::Duration,
    capacity: usize,
    /// Set while one caller sweeps, so that concurrent insertions do not all sweep at once.
    sweeping: AtomicBool,
}

impl TokenCache {
    /// An empty cache whose entries are served for at most `max_age` after each store, holding
    /// at most `capacity` entries (at least one).
    pub(crate) fn new(max_age: std::time::Duration, capacity: usize) -> Self {
        Self {
            entries: DashMap::default(),
            max_age,
            capacity: capacity.max(1),
            sweeping: AtomicBool::new(false),
        }
    }

    /// How many connections have an entry.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The cached token, if it is not yet due at `now`.
    pub(crate) fn get(&self, id: &ConnectionId, now: Timestamp) -> Option<AccessToken> {
        let entry = self.entries.get(id)?;
        (now < entry.serve_until).then(|| entry.access.clone())
    }

    /// The cached token and its expiry for a caller that sees a connection only when
    /// `visible(tenant)` holds. The visibility check comes first, whatever the token's age.
    pub(crate) fn lookup(
        &self,
        id: &ConnectionId,
        now: Timestamp,
        visible: impl FnOnce(Option<&TenantName>) -> bool,
    ) -> Lookup {
        let Some(entry) = self.entries.get(id) else {
            return Lookup::Miss;
        };
        let Some(tenant) = &entry.tenant else {
            return Lookup::Miss;
        };
        if !visible(tenant.as_ref()) {
            Lookup::Hidden
        } else if now < entry.serve_until {
            Lookup::Fresh(entry.access.clone(), entry.expires_at)
        } else {
            Lookup::Due
        }
    }

    /// When `access` expires, if it is the token cached for `id` (whatever its age).
    pub(crate) fn expiry_of(&self, id: &ConnectionId, access: &AccessToken) -> Option<Timestamp> {
        let entry = self.entries.get(id)?;
        (&entry.access == access).then_some(entry.expires_at)
    }

    /// Records the connection's tenant on its entry (if there is one).
    pub(crate) fn learn_tenant(&self, id: &ConnectionId, tenant: Option<&TenantName>) {
        if let Some(mut entry) = self.entries.get_mut(id)
            && entry.tenant.is_none()
        {
            entry.tenant = Some(tenant.cloned());
        }
    }

    /// Remembers `tokens` as of row `version`, read or written at `now`, to be served until they
    /// are due, the scheduled refresh (`next_refresh_at`) comes, or `max_age` has passed,
    /// whichever is first — unless a newer version is already cached (a slow reader must not
    /// replace what a faster refresh stored).
    pub(crate) fn put(
        &self,
        id: &ConnectionId,
        tokens: &TokenSet,
        version: Version,
        next_refresh_at: Option<Timestamp>,
        now: Timestamp,
    ) {
        let due = tokens.due_at().min(now.saturating_add(self.max_age));
        let serve_until = next_refresh_at.map_or(due, |at| at.min(due));
        let expires_at = tokens.expires_at();
        let mut inserted = false;
        self.entries
            .entry(id.clone())
            .and_modify(|current| {
                if current.version <= version {
                    current.access = tokens.access().clone();
                    current.expires_at = expires_at;
                    current.serve_until = serve_until;
                    current.version = version;
                }
            })
            .or_insert_with(|| {
                inserted = true;
                Cached {
                    access: tokens.access().clone(),
                    expires_at,
                    serve_until,
                    version,
                    tenant: None,
                }
            });
        if inserted && self.entries.len() > self.capacity {
            self.shrink(id, now);
        }
    }

    /// Brings the map down to [`LOW_WATER`] tenths of the capacity, keeping `keep` (the entry
    /// just stored, which its caller is about to use). Stale entries go first; then arbitrary
    /// ones — which ones does not matter for correctness, only for the hit rate.
    fn shrink(&self, keep: &ConnectionId, now: Timestamp) {
        if self.sweeping.swap(true, Ordering::Acquire) {
            return;
        }
        let target = (self.capacity / 10 * LOW_WATER).max(1);
        self.entries
            .retain(|id, cached| id == keep || now < cached.serve_until);
        let mut over = self.entries.len().saturating_sub(target);
        if over > 0 {
            self.entries.retain(|id, _| {
                if over == 0 || id == keep {
                    return true;
                }
                over -= 1;
                false
            });
        }
        self.sweeping.store(false, Ordering::Release);
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
        let cache = TokenCache::new(std::time::Duration::from_secs(1_000_000), 100);
        let id = ConnectionId::parse("c").unwrap();
        let at = Timestamp::from_unix_seconds;
        cache.put(&id, &tokens("a", 9_100), Version(1), None, at(0));
        assert!(cache.get(&id, at(9_099)).is_some());
        assert!(cache.get(&id, at(9_100)).is_none());
        // The scheduled refresh comes first: served until then only.
        cache.put(&id, &tokens("a", 9_100), Version(2), Some(at(9_000)), at(0));
        assert!(cache.get(&id, at(8_999)).is_some());
        assert!(cache.get(&id, at(9_000)).is_none());
    }

    #[test]
    fn lookup_checks_the_tenant_first_and_only_once_it_is_known() {
        let cache = TokenCache::new(std::time::Duration::from_secs(1_000_000), 100);
        let id = ConnectionId::parse("c").unwrap();
        let acme = TenantName::parse("acme").unwrap();
        let only_acme = |t: Option<&TenantName>| t.is_some_and(|t| t.as_str() == "acme");
        let nobody = |_: Option<&TenantName>| false;
        let at = Timestamp::from_unix_seconds;
        assert!(matches!(cache.lookup(&id, at(1), only_acme), Lookup::Miss));
        cache.put(&id, &tokens("a", 9_100), Version(1), None, at(0));
        // A refresh stored the token, but nobody has told the cache whose it is yet.
        assert!(matches!(cache.lookup(&id, at(1), only_acme), Lookup::Miss));
        cache.learn_tenant(&id, Some(&acme));
        match cache.lookup(&id, at(1), only_acme) {
            Lookup::Fresh(token, expires_at) => {
                assert_eq!(token, AccessToken::new("a"));
                assert_eq!(expires_at, at(10_000));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(cache.lookup(&id, at(1), nobody), Lookup::Hidden));
        // Hidden whatever the token's age; visible and due means the slow path.
        assert!(matches!(
            cache.lookup(&id, at(9_100), nobody),
            Lookup::Hidden
        ));
        assert!(matches!(
            cache.lookup(&id, at(9_100), only_acme),
            Lookup::Due
        ));
        // A newer version keeps the tenant and brings its own expiry.
        let renewed = TokenSet::from_parts(
            AccessToken::new("b"),
            RefreshToken::new("r2"),
            None,
            at(9_100),
            at(19_100),
        );
        cache.put(&id, &renewed, Version(2), None, at(0));
        assert!(matches!(
            cache.lookup(&id, at(9_100), only_acme),
            Lookup::Fresh(_, e) if e == at(19_100)
        ));
        assert_eq!(
            cache.expiry_of(&id, &AccessToken::new("b")),
            Some(at(19_100))
        );
        assert_eq!(cache.expiry_of(&id, &AccessToken::new("a")), None);
        cache.evict(&id);
        assert!(matches!(cache.lookup(&id, at(1), only_acme), Lookup::Miss));
    }

    #[test]
    fn an_entry_is_served_for_max_age_after_each_store_at_most() {
        let cache = TokenCache::new(std::time::Duration::from_secs(15), 100);
        let id = ConnectionId::parse("c").unwrap();
        let at = Timestamp::from_unix_seconds;
        cache.put(&id, &tokens("a", 9_100), Version(1), None, at(100));
        assert!(cache.get(&id, at(114)).is_some());
        assert!(cache.get(&id, at(115)).is_none(), "re-read after max_age");
        // A re-read of the same version serves it for another period.
        cache.put(&id, &tokens("a", 9_100), Version(1), None, at(115));
        assert!(cache.get(&id, at(129)).is_some());
        // Near the margin, the margin comes first.
        cache.put(&id, &tokens("a", 9_100), Version(1), None, at(9_095));
        assert!(cache.get(&id, at(9_100)).is_none());
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = TokenCache::new(std::time::Duration::from_secs(1_000_000), 100);
        let id = ConnectionId::parse("c").unwrap();
        cache.put(
            &id,
            &tokens("new", 9_100),
            Version(3),
            None,
            Timestamp::from_unix_seconds(0),
        );
        cache.put(
            &id,
            &tokens("old", 9_100),
            Version(2),
            None,
            Timestamp::from_unix_seconds(0),
        );
        let now = Timestamp::from_unix_seconds(1);
        assert_eq!(cache.get(&id, now).unwrap(), AccessToken::new("new"));
        cache.evict_if(&id, &AccessToken::new("old"));
        assert!(cache.get(&id, now).is_some());
        cache.evict_if(&id, &AccessToken::new("new"));
        assert!(cache.get(&id, now).is_none());
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let capacity = 1000;
        let cache = TokenCache::new(std::time::Duration::from_secs(1_000_000), capacity);
        let now = Timestamp::from_unix_seconds(0);
        let mut most = 0;
        for n in 0..25_000 {
            let id = ConnectionId::parse(&format!("c{n}")).unwrap();
            cache.put(&id, &tokens("a", 9_100), Version(1), None, now);
            assert!(
                cache.get(&id, now).is_some(),
                "the entry just stored survives its own sweep"
            );
            most = most.max(cache.len());
        }
        assert_eq!(most, capacity, "full, never over");
        assert!(cache.len() >= capacity / 10 * LOW_WATER);
    }

    #[test]
    fn a_sweep_drops_stale_entries_before_fresh_ones() {
        let cache = TokenCache::new(std::time::Duration::from_secs(15), 10);
        let at = Timestamp::from_unix_seconds;
        let id = |n: u32| ConnectionId::parse(&format!("c{n}")).unwrap();
        // Ten entries stored at 0 (served until 15), then one at 100: the old ten are stale.
        for n in 0..10 {
            cache.put(&id(n), &tokens("a", 9_100), Version(1), None, at(0));
        }
        cache.put(&id(10), &tokens("b", 9_100), Version(1), None, at(100));
        assert_eq!(cache.len(), 1, "only the fresh entry is left");
        assert!(cache.get(&id(10), at(101)).is_some());
        // All fresh: the sweep keeps nine (the low-water mark) and the newest among them.
        for n in 11..20 {
            cache.put(&id(n), &tokens("b", 9_100), Version(1), None, at(100));
        }
        assert_eq!(cache.len(), 10);
        cache.put(&id(20), &tokens("b", 9_100), Version(1), None, at(100));
        assert_eq!(cache.len(), 9);
        assert!(cache.get(&id(20), at(101)).is_some());
    }
}
