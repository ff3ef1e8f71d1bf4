//! `TokenManager::access_token_for` — what the broker's `POST /v1/connections/{id}/token` calls —
//! counted at the storage port: a fresh cached token is handed out with its expiry and tenant
//! check and *no* storage call at all; a cold or hidden connection costs one read; a hidden
//! connection is never refreshed, whatever its grant's state.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit_oauth::core::{
    AccessToken, Callback, Clock, Connection, ConnectionId, ConnectionRecord, ConnectionStore,
    CsrfState, Event, InFlight, InstallStart, Installed, KitAccount, KitAccountId, KitRedirect,
    Lease, LeaseOutcome, LeaseOwner, ListQuery, ManualClock, PendingRecord, PendingTake,
    PkceVerifier, RedirectAllowlist, RefreshHealth, RefreshToken, Removed, Restore, Settled,
    Sha256Hash, StoreError, StoredConnection, TenantName, Timestamp, TokenSet, Unauthorized,
    Version,
};
use kit_oauth::http::{KitEndpoints, KitOAuthClient};
use kit_oauth::store::{KeyRing, SeaOrmStore};
use kit_oauth::{ManagerConfig, ManagerError, TokenManager, TracingEvents};

/// A store that counts every call made to it.
#[derive(Clone)]
struct Counting {
    inner: SeaOrmStore,
    calls: Arc<AtomicUsize>,
}

impl Counting {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn tick(&self) -> &SeaOrmStore {
        self.calls.fetch_add(1, Ordering::SeqCst);
        &self.inner
    }
}

impl ConnectionStore for Counting {
    fn get(
        &self,
        id: &ConnectionId,
    ) -> impl Future<Output = Result<Option<ConnectionRecord>, StoreError>> + Send {
        self.tick().get(id)
    }
    fn find_by_account(
        &self,
        tenant: Option<&TenantName>,
        account: &KitAccountId,
    ) -> impl Future<Output = Result<Option<ConnectionRecord>, StoreError>> + Send {
        self.tick().find_by_account(tenant, account)
    }
    fn upsert_installed(
        &self,
        installed: &Installed<'_>,
    ) -> impl Future<Output = Result<ConnectionRecord, StoreError>> + Send {
        self.tick().upsert_installed(installed)
    }
    fn put(
        &self,
        settled: &Settled<'_>,
        expected: Version,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send {
        self.tick().put(settled, expected)
    }
    fn delete(&self, removed: &Removed) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.tick().delete(removed)
    }
    fn list(
        &self,
        query: &ListQuery,
    ) -> impl Future<Output = Result<Vec<ConnectionRecord>, StoreError>> + Send {
        self.tick().list(query)
    }
    fn list_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<ConnectionId>, StoreError>> + Send {
        self.tick().list_due(now, limit)
    }
    fn insert_pending(
        &self,
        pending: &PendingRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.tick().insert_pending(pending)
    }
    fn consume_pending_with(
        &self,
        state_hash: &Sha256Hash,
        browser_binding: Option<&Sha256Hash>,
        restore: Restore,
    ) -> impl Future<Output = Result<PendingTake, StoreError>> + Send {
        self.tick()
            .consume_pending_with(state_hash, browser_binding, restore)
    }
    fn purge_expired_pending(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.tick().purge_expired_pending(now)
    }
    fn acquire_lease_with(
        &self,
        id: &ConnectionId,
        owner: &LeaseOwner,
        now: Timestamp,
        ttl: Duration,
        restore: Restore,
    ) -> impl Future<Output = Result<LeaseOutcome, StoreError>> + Send {
        self.tick().acquire_lease_with(id, owner, now, ttl, restore)
    }
    fn load_with(
        &self,
        id: &ConnectionId,
        restore: Restore,
    ) -> impl Future<Output = Result<Option<(ConnectionRecord, StoredConnection)>, StoreError>> + Send
    {
        self.tick().load_with(id, restore)
    }
    fn mark_in_flight(
        &self,
        lease: &Lease,
        in_flight: &InFlight,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.tick().mark_in_flight(lease, in_flight)
    }
    fn renew_lease(
        &self,
        lease: &Lease,
        now: Timestamp,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.tick().renew_lease(lease, now, ttl)
    }
    fn commit_refresh(
        &self,
        lease: &Lease,
        settled: &Settled<'_>,
        expected: Version,
    ) -> impl Future<Output = Result<Version, StoreError>> + Send {
        self.tick().commit_refresh(lease, settled, expected)
    }
    fn release_lease(
        &self,
        lease: &Lease,
        health: Option<&RefreshHealth>,
        refresh_token_unspent: bool,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.tick()
            .release_lease(lease, health, refresh_token_unspent)
    }
    fn wait_for_change(
        &self,
        id: &ConnectionId,
        seen: Version,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.tick().wait_for_change(id, seen, timeout)
    }
    fn append_event(&self, event: &Event) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.tick().append_event(event)
    }
    fn purge_events_before(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.tick().purge_events_before(before, limit)
    }
}

const LIFETIME: Duration = Duration::from_secs(172_800);
/// Token calls per phase.
const N: usize = 1_000;

struct Fixture {
    manager: TokenManager<KitOAuthClient, Counting>,
    store: Counting,
    clock: ManualClock,
    _dir: tempfile::TempDir,
}

/// A manager over a counting SQLite store, whose token endpoint nobody listens on: any refresh
/// attempt fails as transient, so a test sees whether one was made.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("reads.db").display()
    );
    let inner = SeaOrmStore::connect(&url, KeyRing::generate())
        .await
        .unwrap();
    let store = Counting {
        inner,
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let clock = ManualClock::new(Timestamp::from_unix_seconds(1_800_000_000));
    let endpoint = KitOAuthClient::new(
        KitEndpoints::builder()
            .base_url("http://127.0.0.1:9")
            .client_id("reads")
            .redirect_uri("http://127.0.0.1:9/cb")
            .build()
            .unwrap(),
    )
    .unwrap();
    let manager = TokenManager::new(
        endpoint,
        store.clone(),
        Arc::new(clock.clone()),
        Arc::new(TracingEvents),
        ManagerConfig::default(),
    );
    Fixture {
        manager,
        store,
        clock,
        _dir: dir,
    }
}

/// Stores a connection of `tenant` with a fresh two-day token; returns its id and expiry.
async fn install(f: &Fixture, tenant: Option<&str>, account: u64) -> (ConnectionId, Timestamp) {
    let now = f.clock.now();
    let id = ConnectionId::generate(&mut rand::rngs::OsRng);
    let tokens = TokenSet::from_parts(
        AccessToken::new(format!("access-{account}")),
        RefreshToken::new(format!("refresh-{account}")),
        Some("public".into()),
        now,
        now.saturating_add(LIFETIME),
    );
    // Through the install flow (without Kit): the only way to an `Authorized` outside a store.
    let start = InstallStart {
        state: CsrfState::new("s"),
        verifier: PkceVerifier::generate(&mut rand::rngs::OsRng),
        kit_redirect: KitRedirect::parse("https://app.kit.com/", &RedirectAllowlist::default())
            .unwrap(),
    };
    let connection = Connection::<Unauthorized>::new(tenant.map(|t| TenantName::parse(t).unwrap()))
        .begin(start, &f.clock)
        .callback(Callback::from_query("code=c&state=s").unwrap(), &f.clock)
        .unwrap()
        .authorize(
            id.clone(),
            KitAccount {
                id: KitAccountId::from(account),
                name: format!("account {account}"),
                primary_email: None,
            },
            tokens.clone(),
        );
    let stored = f
        .store
        .inner
        .upsert_installed(&Installed::new(&connection, tokens.due_at(), now))
        .await
        .unwrap();
    (stored.id, tokens.expires_at())
}

fn only(tenant: &'static str) -> impl Fn(Option<&TenantName>) -> bool {
    move |t| t.is_some_and(|t| t.as_str() == tenant)
}

#[tokio::test]
async fn a_fresh_token_is_handed_out_with_its_expiry_without_touching_the_store() {
    let f = fixture().await;
    let (id, expires_at) = install(&f, Some("acme"), 1).await;

    let first = f.manager.access_token_for(&id, only("acme")).await.unwrap();
    assert_eq!(first.access_token, AccessToken::new("access-1"));
    assert_eq!(first.expires_at, Some(expires_at));
    assert_eq!(f.store.calls(), 1, "a cold cache costs exactly one read");

    for _ in 0..N {
        let issued = f.manager.access_token_for(&id, only("acme")).await.unwrap();
        assert_eq!(issued.access_token, first.access_token);
        assert_eq!(issued.expires_at, Some(expires_at));
    }
    assert_eq!(f.store.calls(), 1, "{N} warm calls made no storage call");

    // Another tenant's key: not found, from memory too.
    for _ in 0..N {
        let hidden = f.manager.access_token_for(&id, only("globex")).await;
        assert!(
            matches!(hidden, Err(ManagerError::NotFound(_))),
            "{hidden:?}"
        );
    }
    assert_eq!(f.store.calls(), 1);

    // `access_token` (the library's own hot path) shares the cache.
    f.manager.access_token(&id).await.unwrap();
    assert_eq!(f.store.calls(), 1);
}

#[tokio::test]
async fn a_hidden_connection_is_not_found_and_never_refreshed() {
    let f = fixture().await;
    let (id, _) = install(&f, Some("acme"), 1).await;
    let (unscoped, _) = install(&f, None, 2).await;

    // Past the refresh margin: a visible caller would refresh now. A hidden one must not.
    f.clock.advance(LIFETIME);
    let hidden = f.manager.access_token_for(&id, only("globex")).await;
    assert!(
        matches!(hidden, Err(ManagerError::NotFound(_))),
        "{hidden:?}"
    );
    assert_eq!(f.store.calls(), 1, "one read, no lease, no refresh");
    // A connection without a tenant is visible to no tenant-scoped key either.
    let hidden = f.manager.access_token_for(&unscoped, only("acme")).await;
    assert!(
        matches!(hidden, Err(ManagerError::NotFound(_))),
        "{hidden:?}"
    );
    assert_eq!(f.store.calls(), 2);
    let missing = ConnectionId::generate(&mut rand::rngs::OsRng);
    let missing = f.manager.access_token_for(&missing, |_| true).await;
    assert!(
        matches!(missing, Err(ManagerError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(f.store.calls(), 3);

    // The visible caller takes the slow path: the refresh is attempted (and fails here, as
    // nobody answers at the token endpoint), so the expired token is not handed out.
    let before = f.store.calls();
    let visible = f.manager.access_token_for(&id, only("acme")).await;
    assert!(
        matches!(visible, Err(ManagerError::Unavailable { .. })),
        "{visible:?}"
    );
    assert!(f.store.calls() > before + 1, "the refresh protocol ran");
}
