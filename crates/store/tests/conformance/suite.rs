//! The suite itself: generic over the backend, every assertion count-based.

use std::sync::Arc;
use std::time::Duration;

use kit_oauth_core::{
    AccessToken, Authorized, Connection, ConnectionId, ConnectionRecord, ConnectionStore,
    ConnectionStoreExt as _, CsrfState, Due, Event, EventId, EventKind, Freshness, Grant, InFlight,
    Installed, KitAccount, KitAccountId, KitRedirect, LeaseOutcome, LeaseOwner, ListQuery,
    ManualClock, PendingRecord, PendingTake, PkceVerifier, RefreshHealth, RefreshToken, Renewed,
    Settled, SettledRow, Sha256Hash, StateName, StoreError, StoredConnection, TenantName,
    Timestamp, TokenSet, Unauthorized, UnauthorizedReason, Version,
};
use kit_oauth_store::{CreateTables, KeyRing, Migrator, MigratorTrait as _, SeaOrmStore};
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use sea_orm_migration::MigrationName as _;

use crate::fixture::{Fixture, Kind};

const NOW: Timestamp = Timestamp::from_unix_seconds(1_750_000_000);
const MINUTE: Duration = Duration::from_secs(60);

fn rng() -> rand::rngs::OsRng {
    rand::rngs::OsRng
}

fn tokens(tag: &str) -> TokenSet {
    TokenSet::from_parts(
        AccessToken::new(format!("access-{tag}-PLAINTEXT-MARKER")),
        RefreshToken::new(format!("refresh-{tag}-PLAINTEXT-MARKER")),
        Some("public".into()),
        NOW,
        NOW.saturating_add(Duration::from_secs(7200)),
    )
}

fn account(account: &str, name: &str) -> KitAccount {
    KitAccount {
        id: KitAccountId::parse(account).unwrap(),
        name: name.to_owned(),
        primary_email: Some(format!("{account}@example.com")),
    }
}

/// A connection as the flow makes one: the import transition, for a grant proven live at Kit.
fn imported(tenant: Option<&str>, account_id: &str, tag: &str) -> Connection<Authorized> {
    Connection::<Unauthorized>::new(tenant.map(|t| TenantName::parse(t).unwrap())).import(
        ConnectionId::generate(&mut rng()),
        account(account_id, &format!("Account {account_id}")),
        tokens(tag),
    )
}

/// Where every test install schedules its first refresh, unless it says otherwise.
const NEXT_REFRESH: Timestamp = Timestamp::from_unix_seconds(1_750_006_000);

async fn install_at(
    store: &SeaOrmStore,
    connection: &Connection<Authorized>,
    next_refresh_at: Timestamp,
) -> ConnectionRecord {
    store
        .upsert_installed(&Installed::new(connection, next_refresh_at, NOW))
        .await
        .unwrap()
}

/// The stored row, typed, as the flow reads it back.
async fn typed(store: &SeaOrmStore, id: &ConnectionId) -> StoredConnection {
    store.load(id).await.unwrap().unwrap().1
}

fn active(connection: StoredConnection) -> Connection<Authorized> {
    let StoredConnection::Active(connection) = connection else {
        panic!("an active row is typed `Authorized`")
    };
    connection
}

/// The row a [`Settled`] write leaves, over what it does not touch.
fn stored(before: &ConnectionRecord, row: &SettledRow, version: Version) -> ConnectionRecord {
    ConnectionRecord {
        id: row.id.clone(),
        tenant: before.tenant.clone(),
        account: row.account.clone(),
        grant: row.grant.clone(),
        version,
        health: row.health.clone(),
        next_refresh_at: row.next_refresh_at,
        created_at: before.created_at,
        updated_at: row.updated_at,
    }
}

/// Ends the stored grant as the flow does (`revoke`, `reauth_required`), by compare-and-swap;
/// returns the row as stored.
async fn end(
    store: &SeaOrmStore,
    row: &ConnectionRecord,
    end: fn(Connection<Authorized>) -> Connection<Unauthorized>,
) -> ConnectionRecord {
    let ended = end(active(typed(store, &row.id).await));
    let settled = Settled::Ended {
        connection: &ended,
        health: row.health.clone(),
        at: NOW,
    };
    let version = store.put(&settled, row.version).await.unwrap();
    let read = store.get(&row.id).await.unwrap().unwrap();
    assert_eq!(read, stored(row, &settled.row().unwrap(), version));
    read
}

fn pending(tag: u8) -> (CsrfState, PendingRecord) {
    let state = CsrfState::generate(&mut rng());
    let record = PendingRecord {
        state_hash: state.fingerprint(),
        verifier: PkceVerifier::parse(&format!("verifier{tag:03}{}", "V".repeat(40))).unwrap(),
        kit_redirect: KitRedirect::try_from("https://app.kit.com/apps/1?success=true".to_owned())
            .unwrap(),
        tenant: Some(TenantName::parse("acme").unwrap()),
        reinstall_of: Some(ConnectionId::generate(&mut rng())),
        browser_binding: Sha256Hash::of(b"cookie"),
        started_at: NOW,
        expires_at: NOW.saturating_add(Duration::from_secs(600)),
    };
    (state, record)
}

async fn sql(store: &SeaOrmStore, statement: &str) -> u64 {
    store
        .connection()
        .execute_unprepared(statement)
        .await
        .unwrap()
        .rows_affected()
}

async fn scalar_i64(store: &SeaOrmStore, statement: &str) -> i64 {
    let backend = store.backend();
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(backend, statement.to_owned()))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn insert(store: &SeaOrmStore, tenant: Option<&str>, account: &str) -> ConnectionRecord {
    install_at(store, &imported(tenant, account, account), NEXT_REFRESH).await
}

/// What the flow makes of a leased row: its `Authorized`, made due by Kit's refusal of its
/// access token, refreshed with `tag`'s tokens.
fn renewed(connection: StoredConnection, tag: &str) -> Renewed {
    let connection = active(connection);
    let refused = connection.tokens().access().fingerprint();
    let clock = ManualClock::new(NOW);
    let Freshness::Due(expired) = connection.observe_for(Due::Replacing(refused), &clock) else {
        panic!("the token Kit refused is due")
    };
    expired.refreshed(tokens(tag))
}

fn settled<'a>(connection: &'a Renewed, row: &ConnectionRecord) -> Settled<'a> {
    Settled::Refreshed {
        connection,
        next_refresh_at: NEXT_REFRESH,
        at: row.updated_at,
    }
}

/// `active_by_account`: what an import compares its refresh token with. Every tenant's live
/// row of the account, tokens opened; not an ended one, not another account's.
pub(crate) async fn an_accounts_live_connections_in_every_tenant(f: &Fixture) {
    let store = f.store().await;
    let single = insert(&store, None, "1").await;
    let shop_a = insert(&store, Some("shop-a"), "1").await;
    let shop_b = insert(&store, Some("shop-b"), "1").await;
    insert(&store, Some("shop-a"), "2").await;
    end(&store, &shop_b, Connection::<Authorized>::revoke).await;

    let mut live = store
        .active_by_account(&KitAccountId::parse("1").unwrap())
        .await
        .unwrap();
    live.sort_by(|x, y| x.id.as_str().cmp(y.id.as_str()));
    let mut expected = vec![single, shop_a];
    expected.sort_by(|x, y| x.id.as_str().cmp(y.id.as_str()));
    assert_eq!(live, expected, "the ended row and account 2 are left out");
    assert!(
        live.iter()
            .all(|r| matches!(&r.grant, Grant::Active(t) if t.refresh() == tokens("1").refresh())),
        "tokens are opened"
    );
    assert_eq!(
        store
            .active_by_account(&KitAccountId::parse("3").unwrap())
            .await
            .unwrap(),
        []
    );
}

// ----- round trips -----

pub(crate) async fn round_trips_every_state(f: &Fixture) {
    let store = f.store().await;
    let single = insert(&store, None, "1").await;
    let tenant = insert(&store, Some("Acme — EU"), "1").await;
    assert_ne!(
        single.id, tenant.id,
        "same account, another tenant: another grant"
    );
    assert_eq!(store.get(&single.id).await.unwrap().unwrap(), single);
    assert_eq!(store.get(&tenant.id).await.unwrap().unwrap(), tenant);
    assert_eq!(
        store
            .find_by_account(None, &KitAccountId::parse("1").unwrap())
            .await
            .unwrap()
            .unwrap()
            .id,
        single.id
    );
    let acme = TenantName::parse("Acme — EU").unwrap();
    assert_eq!(
        store
            .find_by_account(Some(&acme), &KitAccountId::parse("1").unwrap())
            .await
            .unwrap()
            .unwrap()
            .id,
        tenant.id
    );
    assert!(
        store
            .get(&ConnectionId::generate(&mut rng()))
            .await
            .unwrap()
            .is_none()
    );

    // The reasons the flow stores on a row: Kit refused the grant, the app revoked it. (The
    // install-time reasons end installs that never had a row; the codec's own test reads them
    // back from old rows.) After each, a reinstall makes the row authorized again.
    let health = RefreshHealth {
        consecutive_failures: 3,
        cooldown_until: Some(NOW),
        early_retry_after: Some(NOW),
        last_error: Some("boom".into()),
        last_refresh_at: Some(NOW),
    };
    let ends: [fn(Connection<Authorized>) -> Connection<Unauthorized>; 2] = [
        |c| c.reauth_required("invalid_grant".into()),
        Connection::<Authorized>::revoke,
    ];
    let mut current = single;
    for (i, end) in (1u32..).zip(ends) {
        let ended = end(active(typed(&store, &current.id).await));
        let settled = Settled::Ended {
            connection: &ended,
            health: health.clone(),
            at: NOW.saturating_add(MINUTE * i),
        };
        let version = store.put(&settled, current.version).await.unwrap();
        assert_eq!(version, current.version.next());
        let read = store.get(&current.id).await.unwrap().unwrap();
        assert_eq!(read, stored(&current, &settled.row().unwrap(), version));
        assert_eq!(read.grant, Grant::Ended(ended.reason().clone()));
        assert_eq!(read.state_name(), StateName::Unauthorized);
        let StoredConnection::Ended(back) = typed(&store, &current.id).await else {
            panic!("an ended row is typed `Unauthorized`")
        };
        assert_eq!(back.reason(), ended.reason());
        // Reinstalled, with no scope this time.
        let again = Connection::<Unauthorized>::new(None).import(
            ConnectionId::generate(&mut rng()),
            account("1", "Account 1"),
            TokenSet::from_parts(
                AccessToken::new(format!("a{i}")),
                RefreshToken::new(format!("r{i}")),
                None,
                NOW,
                NOW.saturating_add(MINUTE),
            ),
        );
        let reinstalled = install_at(&store, &again, NEXT_REFRESH).await;
        assert_eq!(
            reinstalled.id, current.id,
            "a reinstall keeps the connection"
        );
        assert_eq!(reinstalled.grant, Grant::Active(again.tokens().clone()));
        assert_eq!(store.get(&current.id).await.unwrap().unwrap(), reinstalled);
        current = reinstalled;
    }
}

pub(crate) async fn upsert_keeps_id_and_created_at(f: &Fixture) {
    let store = f.store().await;
    let first = insert(&store, Some("t"), "42").await;
    assert_eq!(first.version, Version::INITIAL);
    let again = Connection::<Unauthorized>::new(Some(TenantName::parse("t").unwrap())).import(
        ConnectionId::generate(&mut rng()),
        account("42", "Renamed"),
        tokens("second"),
    );
    let stored = store
        .upsert_installed(&Installed::new(
            &again,
            NEXT_REFRESH,
            NOW.saturating_add(MINUTE),
        ))
        .await
        .unwrap();
    assert_eq!(stored.id, first.id);
    assert_eq!(stored.created_at, first.created_at);
    assert_eq!(stored.version, Version(2));
    let read = store.get(&first.id).await.unwrap().unwrap();
    assert_eq!(read, stored);
    assert_eq!(read.grant, Grant::Active(tokens("second")));
    assert_eq!(read.account.name, "Renamed");
    assert!(store.get(again.id()).await.unwrap().is_none());
}

pub(crate) async fn concurrent_upserts_make_one_row(f: &Fixture) {
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(f.store().await);
    }
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let connection = imported(Some("race"), "7", &format!("r{i}"));
            install_at(&store, &connection, NEXT_REFRESH).await
        }));
    }
    let mut ids = Vec::new();
    let mut versions = Vec::new();
    for task in tasks {
        let stored = task.await.unwrap();
        ids.push(stored.id);
        versions.push(stored.version.0);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one (tenant, account), one id");
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=16).collect::<Vec<_>>(),
        "every upsert bumped the version once"
    );
    let rows = stores[0].list(&ListQuery::default()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].version, Version(16));
}

// ----- compare-and-swap -----

pub(crate) async fn put_is_compare_and_swap(f: &Fixture) {
    let store = f.store().await;
    let row = insert(&store, None, "5").await;
    // Two writers read the row at version 1, and both refresh it.
    let newer = renewed(typed(&store, &row.id).await, "newer");
    let stale = renewed(typed(&store, &row.id).await, "stale");
    let v2 = store
        .put(&settled(&newer, &row), row.version)
        .await
        .unwrap();
    // The stale one, still at version 1, must not overwrite.
    assert_eq!(
        store.put(&settled(&stale, &row), row.version).await,
        Err(StoreError::Conflict {
            id: row.id.clone(),
            expected: 1
        })
    );
    let read = store.get(&row.id).await.unwrap().unwrap();
    assert_eq!(read.grant, Grant::Active(tokens("newer")));
    assert_eq!(read.version, v2);
    // A connection the flow made but no store holds.
    let unstored = imported(None, "404", "x");
    let refused = unstored.tokens().access().fingerprint();
    let Freshness::Due(expired) =
        unstored.observe_for(Due::Replacing(refused), &ManualClock::new(NOW))
    else {
        panic!("the token Kit refused is due")
    };
    let ghost = expired.refreshed(tokens("x2"));
    assert_eq!(
        store.put(&settled(&ghost, &row), Version::INITIAL).await,
        Err(StoreError::NotFound(ghost.id().clone()))
    );
}

pub(crate) async fn concurrent_puts_one_winner(f: &Fixture) {
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(f.store().await);
    }
    let row = insert(&stores[0], None, "9").await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = stores[i % stores.len()].clone();
        let next = renewed(typed(&store, &row.id).await, &format!("w{i}"));
        let row = row.clone();
        tasks.push(tokio::spawn(async move {
            store.put(&settled(&next, &row), Version::INITIAL).await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(v) => {
                assert_eq!(v, Version(2));
                ok += 1;
            }
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 11));
}

pub(crate) async fn delete_removes_the_row(f: &Fixture) {
    let store = f.store().await;
    let row = insert(&store, None, "3").await;
    // Forced, Kit not told: the flow says the grant is left at Kit.
    let removed = active(typed(&store, &row.id).await).remove_unrevoked();
    assert!(removed.grant_left_at_kit());
    assert!(store.delete(&removed).await.unwrap());
    assert!(!store.delete(&removed).await.unwrap());
    assert!(store.get(&row.id).await.unwrap().is_none());
    // The (tenant, account) is free again.
    let again = insert(&store, None, "3").await;
    assert_ne!(again.id, row.id);
    // Revoked first, then removed.
    end(&store, &again, Connection::<Authorized>::revoke).await;
    let StoredConnection::Ended(ended) = typed(&store, &again.id).await else {
        panic!("a revoked row is typed `Unauthorized`")
    };
    let removed = ended.remove().unwrap();
    assert!(!removed.grant_left_at_kit());
    assert!(store.delete(&removed).await.unwrap());
    assert!(store.get(&again.id).await.unwrap().is_none());
}

pub(crate) async fn removing_an_ended_connection_spares_a_reinstall(f: &Fixture) {
    let store = f.store().await;
    let row = insert(&store, None, "4").await;
    end(&store, &row, Connection::<Authorized>::revoke).await;
    let StoredConnection::Ended(ended) = typed(&store, &row.id).await else {
        panic!("a revoked row is typed `Unauthorized`")
    };
    let removed = ended.remove().unwrap();
    // The person reinstalls between the revocation and the delete: same id, a live grant.
    let reinstalled = insert(&store, None, "4").await;
    assert_eq!(reinstalled.id, row.id);
    assert!(
        !store.delete(&removed).await.unwrap(),
        "the live grant stays"
    );
    assert!(matches!(
        store.get(&row.id).await.unwrap().unwrap().grant,
        Grant::Active(_)
    ));
}

// ----- pending installs -----

pub(crate) async fn pending_is_consumed_exactly_once(f: &Fixture) {
    let mut stores = Vec::new();
    for _ in 0..5 {
        stores.push(f.store().await);
    }
    let (state, stored) = pending(1);
    stores[0].insert_pending(&stored).await.unwrap();
    assert_eq!(
        stores[0].insert_pending(&stored).await,
        Err(StoreError::Duplicate)
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = stores[i % stores.len()].clone();
        let hash = stored.state_hash;
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .consume_pending(&hash, Some(&Sha256Hash::of(b"cookie")))
                .await
                .unwrap()
                .taken()
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(found) = task.await.unwrap() {
            winners.push(found);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one consumer gets the install");
    let won = winners.pop().unwrap();
    assert_eq!(won.record(), &stored);
    let restored = won.into_pending(state).unwrap();
    assert_eq!(restored.verifier(), &stored.verifier);
    assert!(
        stores[0]
            .consume_pending(&stored.state_hash, Some(&Sha256Hash::of(b"cookie")))
            .await
            .unwrap()
            .taken()
            .is_none()
    );
}

pub(crate) async fn pending_is_consumed_only_by_its_browser(f: &Fixture) {
    let store = f.store().await;
    let (state, stored) = pending(6);
    store.insert_pending(&stored).await.unwrap();
    // A stranger (another cookie, or none) is told it is another browser's, and takes nothing.
    for stranger in [Some(Sha256Hash::of(b"stranger")), None] {
        assert_eq!(
            store
                .consume_pending(&stored.state_hash, stranger.as_ref())
                .await
                .unwrap(),
            PendingTake::OtherBrowser
        );
    }
    assert_eq!(
        scalar_i64(&store, "SELECT COUNT(*) FROM pending_authorizations").await,
        1,
        "the pending row is still there for the right browser"
    );
    // The right browser then takes it, once.
    let taken = store
        .consume_pending(&stored.state_hash, Some(&Sha256Hash::of(b"cookie")))
        .await
        .unwrap()
        .taken()
        .unwrap();
    assert_eq!(taken.record(), &stored);
    // The wrong `state` does not resume it; the right one does.
    let taken = taken
        .into_pending(CsrfState::generate(&mut rng()))
        .unwrap_err();
    assert!(taken.into_pending(state).is_ok());
    assert_eq!(
        store
            .consume_pending(&stored.state_hash, Some(&Sha256Hash::of(b"cookie")))
            .await
            .unwrap(),
        PendingTake::Unknown
    );
    assert_eq!(
        scalar_i64(&store, "SELECT COUNT(*) FROM pending_authorizations").await,
        0
    );
}

pub(crate) async fn pending_purge_removes_only_expired(f: &Fixture) {
    let store = f.store().await;
    let (_, live) = pending(2);
    let (_, mut dead) = pending(3);
    dead.expires_at = NOW.saturating_sub(MINUTE);
    store.insert_pending(&live).await.unwrap();
    store.insert_pending(&dead).await.unwrap();
    assert_eq!(store.purge_expired_pending(NOW).await.unwrap(), 1);
    assert!(
        store
            .consume_pending(&dead.state_hash, Some(&dead.browser_binding))
            .await
            .unwrap()
            .taken()
            .is_none()
    );
    assert_eq!(
        store
            .consume_pending(&live.state_hash, Some(&live.browser_binding))
            .await
            .unwrap()
            .taken()
            .map(|taken| taken.record().clone()),
        Some(live)
    );
}

// ----- leases -----

pub(crate) async fn lease_has_one_holder_across_pools(f: &Fixture) {
    let a = f.store().await;
    let b = f.store().await;
    let row = insert(&a, None, "11").await;
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let id = row.id.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let owner = LeaseOwner(format!("worker-{i}"));
            store.acquire_lease(&id, &owner, NOW, MINUTE).await.unwrap()
        }));
    }
    let mut acquired = Vec::new();
    let mut held = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            LeaseOutcome::Acquired { lease, record, .. } => {
                assert_eq!(*record, row);
                acquired.push(lease);
            }
            LeaseOutcome::Held { owner, until } => {
                assert_eq!(until, NOW.saturating_add(MINUTE));
                held.push(owner);
            }
        }
    }
    assert_eq!(acquired.len(), 1, "never two holders");
    assert_eq!(held.len(), 19);
    let winner = &acquired[0];
    assert_eq!(winner.fence, 1);
    assert!(held.iter().all(|o| *o == winner.owner));
    assert!(matches!(
        a.acquire_lease(
            &ConnectionId::generate(&mut rng()),
            &winner.owner,
            NOW,
            MINUTE
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) async fn lease_expires_and_fences_the_old_holder(f: &Fixture) {
    let a = f.store().await;
    let b = f.store().await;
    let row = insert(&a, None, "12").await;
    let owner_a = LeaseOwner("a".into());
    let owner_b = LeaseOwner("b".into());
    let LeaseOutcome::Acquired {
        lease: lease_a,
        connection: connection_a,
        ..
    } = a
        .acquire_lease(&row.id, &owner_a, NOW, MINUTE)
        .await
        .unwrap()
    else {
        panic!("first acquisition must succeed")
    };
    // Still held half-way through.
    assert!(matches!(
        b.acquire_lease(&row.id, &owner_b, NOW.saturating_add(MINUTE / 2), MINUTE)
            .await
            .unwrap(),
        LeaseOutcome::Held { owner, .. } if owner == owner_a
    ));
    let in_flight = InFlight {
        refresh_token: tokens("12").refresh().fingerprint(),
        started_at: NOW,
    };
    a.mark_in_flight(&lease_a, &in_flight).await.unwrap();
    // A dies; its lease lapses; B takes over and learns about A's unfinished refresh.
    let later = NOW.saturating_add(MINUTE);
    let LeaseOutcome::Acquired {
        lease: lease_b,
        previous_in_flight,
        record,
        connection,
    } = b
        .acquire_lease(&row.id, &owner_b, later, MINUTE)
        .await
        .unwrap()
    else {
        panic!("an expired lease must be taken over")
    };
    assert_eq!(lease_b.fence, lease_a.fence + 1);
    assert_eq!(previous_in_flight, Some(in_flight.clone()));
    assert_eq!(record.version, row.version);
    // The typed form is the same row, made by the store's sealed constructor.
    let StoredConnection::Active(typed) = &*connection else {
        panic!("an active row is typed `Authorized`")
    };
    assert_eq!(typed.id(), &row.id);
    assert_eq!(Grant::Active(typed.tokens().clone()), row.grant);
    // A wakes up: every write under its old lease is refused.
    let by_a = renewed(*connection_a, "by-a");
    let refreshed = settled(&by_a, &row);
    assert_eq!(
        a.commit_refresh(&lease_a, &refreshed, row.version).await,
        Err(StoreError::LeaseLost(row.id.clone()))
    );
    assert_eq!(
        a.mark_in_flight(&lease_a, &in_flight).await,
        Err(StoreError::LeaseLost(row.id.clone()))
    );
    assert!(!a.release_lease(&lease_a, None, true).await.unwrap());
    // Same owner name, stale fence: still refused.
    let mut forged = lease_b.clone();
    forged.fence = lease_a.fence;
    assert_eq!(
        b.commit_refresh(&forged, &refreshed, row.version).await,
        Err(StoreError::LeaseLost(row.id.clone()))
    );
    // B commits; the lease and the in-flight mark are cleared in the same step.
    let renewed_b = renewed(*connection, "by-b");
    let by_b = settled(&renewed_b, &row);
    let v2 = b
        .commit_refresh(&lease_b, &by_b, row.version)
        .await
        .unwrap();
    assert_eq!(v2, Version(2));
    assert_eq!(
        a.get(&row.id).await.unwrap().unwrap().grant,
        Grant::Active(tokens("by-b"))
    );
    let LeaseOutcome::Acquired {
        lease: lease_c,
        previous_in_flight,
        ..
    } = a
        .acquire_lease(&row.id, &owner_a, later, MINUTE)
        .await
        .unwrap()
    else {
        panic!("a committed lease is free")
    };
    assert_eq!(previous_in_flight, None);
    assert_eq!(lease_c.fence, lease_b.fence + 1);
    assert_eq!(
        b.commit_refresh(&lease_b, &by_b, v2).await,
        Err(StoreError::LeaseLost(row.id.clone()))
    );
}

pub(crate) async fn commit_refresh_refuses_a_stale_version(f: &Fixture) {
    let store = f.store().await;
    let row = insert(&store, None, "13").await;
    let LeaseOutcome::Acquired {
        lease, connection, ..
    } = store
        .acquire_lease(&row.id, &LeaseOwner("w".into()), NOW, MINUTE)
        .await
        .unwrap()
    else {
        panic!()
    };
    // A reinstall replaces the grant while the refresh is in flight.
    let reinstalled = install_at(&store, &imported(None, "13", "reinstalled"), NEXT_REFRESH).await;
    assert_eq!(reinstalled.id, row.id);
    let renewed = renewed(*connection, "refreshed");
    let refreshed = settled(&renewed, &row);
    assert_eq!(
        store.commit_refresh(&lease, &refreshed, row.version).await,
        Err(StoreError::Conflict {
            id: row.id.clone(),
            expected: 1
        })
    );
    assert_eq!(
        store.get(&row.id).await.unwrap().unwrap().grant,
        Grant::Active(tokens("reinstalled"))
    );
    assert!(store.release_lease(&lease, None, true).await.unwrap());
}

pub(crate) async fn release_lease_records_health_and_in_flight(f: &Fixture) {
    let store = f.store().await;
    let row = insert(&store, None, "14").await;
    let owner = LeaseOwner("w".into());
    let LeaseOutcome::Acquired { lease, .. } = store
        .acquire_lease(&row.id, &owner, NOW, MINUTE)
        .await
        .unwrap()
    else {
        panic!()
    };
    let in_flight = InFlight {
        refresh_token: Sha256Hash::of(b"spent"),
        started_at: NOW,
    };
    store.mark_in_flight(&lease, &in_flight).await.unwrap();
    let health = RefreshHealth {
        consecutive_failures: 2,
        cooldown_until: Some(NOW.saturating_add(MINUTE)),
        early_retry_after: Some(NOW),
        last_error: Some("503 from Kit".into()),
        last_refresh_at: None,
    };
    // The token may have reached Kit: the mark stays for the next holder.
    assert!(
        store
            .release_lease(&lease, Some(&health), false)
            .await
            .unwrap()
    );
    assert!(!store.release_lease(&lease, None, false).await.unwrap());
    let read = store.get(&row.id).await.unwrap().unwrap();
    assert_eq!(read.health, health);
    assert_eq!(
        read.version, row.version,
        "bookkeeping does not move the version"
    );
    let LeaseOutcome::Acquired {
        lease,
        previous_in_flight,
        ..
    } = store
        .acquire_lease(&row.id, &owner, NOW, MINUTE)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(previous_in_flight, Some(in_flight));
    // Unspent: cleared.
    assert!(store.release_lease(&lease, None, true).await.unwrap());
    let LeaseOutcome::Acquired {
        previous_in_flight, ..
    } = store
        .acquire_lease(&row.id, &owner, NOW, MINUTE)
        .await
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(previous_in_flight, None);
}

pub(crate) async fn wait_for_change_wakes_on_commit(f: &Fixture) {
    let a = f.store().await;
    let b = f.store().await;
    let row = insert(&a, None, "15").await;
    let LeaseOutcome::Acquired {
        lease, connection, ..
    } = a
        .acquire_lease(&row.id, &LeaseOwner("holder".into()), NOW, MINUTE)
        .await
        .unwrap()
    else {
        panic!()
    };
    // Nothing changes: the wait ends at its (short) timeout without error.
    b.wait_for_change(&row.id, row.version, Duration::from_millis(100))
        .await
        .unwrap();
    let waiter = {
        let b = b.clone();
        let id = row.id.clone();
        tokio::spawn(async move {
            b.wait_for_change(&id, Version::INITIAL, Duration::from_secs(120))
                .await
                .unwrap();
            b.get(&id).await.unwrap().unwrap().version
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let woken = renewed(*connection, "woken");
    a.commit_refresh(&lease, &settled(&woken, &row), row.version)
        .await
        .unwrap();
    // Woken by the change, long before the waiter's own two-minute timeout.
    let seen = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("the waiter must wake on the commit, not at its timeout")
        .unwrap();
    assert_eq!(seen, Version(2));
    // A deleted row wakes its waiters too.
    a.delete(&active(typed(&a, &row.id).await).remove_unrevoked())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        b.wait_for_change(&row.id, Version(2), Duration::from_secs(120)),
    )
    .await
    .expect("a deleted row must not keep waiters")
    .unwrap();
}

// ----- listing -----

pub(crate) async fn list_pages_and_filters(f: &Fixture) {
    let store = f.store().await;
    let mut all = Vec::new();
    for i in 0..25 {
        let tenant = match i % 3 {
            0 => None,
            1 => Some("one"),
            _ => Some("two"),
        };
        let mut row = insert(&store, tenant, &format!("{}", 100 + i)).await;
        if i % 5 == 0 {
            row = end(&store, &row, Connection::<Authorized>::revoke).await;
        }
        all.push(row);
    }
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list(&ListQuery {
                after: after.clone(),
                limit: 10,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().map(|r| r.id.clone());
        pages.push(page.len());
        for r in &page {
            assert!(all.contains(r), "listed rows decode to what was stored");
        }
    }
    assert_eq!(pages, [10, 10, 5]);
    let ids: Vec<_> = {
        let mut ids = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list(&ListQuery {
                    after: after.clone(),
                    limit: 7,
                    ..ListQuery::default()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            ids.extend(page.into_iter().map(|r| r.id));
        }
        ids
    };
    assert_eq!(ids, all.iter().map(|r| r.id.clone()).collect::<Vec<_>>());

    let count = |tenant: Option<Option<&str>>, state: Option<StateName>| {
        let store = store.clone();
        let tenant = tenant.map(|t| t.map(|t| TenantName::parse(t).unwrap()));
        async move {
            store
                .list(&ListQuery {
                    tenant,
                    state,
                    after: None,
                    limit: 1000,
                })
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(count(Some(None), None).await, 9);
    assert_eq!(count(Some(Some("one")), None).await, 8);
    assert_eq!(count(Some(Some("two")), None).await, 8);
    assert_eq!(count(Some(Some("nobody")), None).await, 0);
    assert_eq!(count(None, Some(StateName::Unauthorized)).await, 5);
    assert_eq!(count(None, Some(StateName::Authorized)).await, 20);
    // i in {0, 15} are single-tenant and ended.
    assert_eq!(count(Some(None), Some(StateName::Unauthorized)).await, 2);
    assert_eq!(count(None, Some(StateName::Pending)).await, 0);
}

pub(crate) async fn list_due_selects_due_unleased_rows(f: &Fixture) {
    let store = f.store().await;
    let install = |account: &'static str, next: Timestamp| {
        let store = store.clone();
        async move { install_at(&store, &imported(None, account, account), next).await }
    };
    let ago = |s: u64| NOW.saturating_sub(Duration::from_secs(s));
    let early = install("1", ago(300)).await;
    let later = install("2", ago(100)).await;
    let exactly_now = install("3", ago(0)).await;
    let _future = install("4", NOW.saturating_add(MINUTE)).await;
    let cooling = install("5", ago(200)).await;
    let leased = install("6", ago(250)).await;
    let ended = install("7", ago(400)).await;
    // A failed refresh cools the connection down: what its lease release records.
    let LeaseOutcome::Acquired { lease, .. } = store
        .acquire_lease(&cooling.id, &LeaseOwner("w".into()), NOW, MINUTE)
        .await
        .unwrap()
    else {
        panic!("nobody holds it")
    };
    let cooled = RefreshHealth {
        consecutive_failures: 1,
        cooldown_until: Some(NOW.saturating_add(MINUTE)),
        early_retry_after: None,
        last_error: Some("503".into()),
        last_refresh_at: None,
    };
    assert!(
        store
            .release_lease(&lease, Some(&cooled), false)
            .await
            .unwrap()
    );
    end(&store, &ended, Connection::<Authorized>::revoke).await;
    assert!(matches!(
        store
            .acquire_lease(&leased.id, &LeaseOwner("w".into()), NOW, MINUTE)
            .await
            .unwrap(),
        LeaseOutcome::Acquired { .. }
    ));
    let due = store.list_due(NOW, 100).await.unwrap();
    assert_eq!(
        due,
        vec![early.id.clone(), later.id.clone(), exactly_now.id.clone()]
    );
    assert_eq!(
        store.list_due(NOW, 2).await.unwrap(),
        vec![early.id.clone(), later.id]
    );
    // Once the lease and the cooldown lapse, those rows are due too.
    let after = NOW.saturating_add(MINUTE);
    let due = store.list_due(after, 100).await.unwrap();
    assert_eq!(due.len(), 6);
    assert_eq!(due[0], early.id);
    assert!(due.contains(&leased.id) && due.contains(&cooling.id));
}

pub(crate) async fn list_due_uses_the_index(f: &Fixture) {
    let store = f.store().await;
    // Enough rows that a planner with statistics prefers the index.
    let fill = match f.kind {
        Kind::Postgres => {
            "INSERT INTO connections (id, tenant_name, kit_account_id, account_name, state, \
             ended_reason, next_refresh_at, version, created_at, updated_at) \
             SELECT 'fill' || g, '', 'acct' || g, 'n', 'unauthorized', '{\"kind\":\"revoked\"}', \
             1750000000000 + g * 1000, 1, 0, 0 FROM generate_series(1, 5000) AS g"
        }
        Kind::Sqlite => {
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000) \
             INSERT INTO connections (id, tenant_name, kit_account_id, account_name, state, \
             ended_reason, next_refresh_at, version, created_at, updated_at) \
             SELECT 'fill' || n, '', 'acct' || n, 'n', 'unauthorized', '{\"kind\":\"revoked\"}', \
             1750000000000 + n * 1000, 1, 0, 0 FROM g"
        }
    };
    assert_eq!(sql(&store, fill).await, 5000);
    sql(&store, "ANALYZE").await;
    let plan = store.list_due_plan(NOW, 100).await.unwrap();
    assert!(
        plan.contains("connections_next_refresh_at_idx"),
        "list_due must use the next_refresh_at index; plan:\n{plan}"
    );
    if f.kind == Kind::Postgres {
        assert!(!plan.contains("Seq Scan"), "plan:\n{plan}");
    }
}

// ----- encryption -----

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub(crate) async fn no_plaintext_at_rest(f: &Fixture) {
    let store = f.store().await;
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for i in 0..5 {
        let row = insert(&store, None, &format!("{}", 200 + i)).await;
        let Grant::Active(t) = &row.grant else {
            panic!()
        };
        secrets.push(t.access().expose_secret().as_bytes().to_vec());
        secrets.push(t.refresh().expose_secret().as_bytes().to_vec());
        let next = renewed(typed(&store, &row.id).await, &format!("rotated{i}"));
        store.put(&settled(&next, &row), row.version).await.unwrap();
        let t = next.tokens();
        secrets.push(t.access().expose_secret().as_bytes().to_vec());
        secrets.push(t.refresh().expose_secret().as_bytes().to_vec());
    }
    let (_, p) = pending(9);
    store.insert_pending(&p).await.unwrap();
    secrets.push(p.verifier.expose_secret().as_bytes().to_vec());
    // The common marker alone would already betray a plaintext token.
    secrets.push(b"PLAINTEXT-MARKER".to_vec());

    match f.kind {
        Kind::Sqlite => {
            let files = f.sqlite_files();
            assert!(files.iter().any(|p| p.to_string_lossy().ends_with("-wal")));
            let mut scanned = 0;
            for path in files {
                let bytes = std::fs::read(&path).unwrap();
                scanned += bytes.len();
                for secret in &secrets {
                    assert!(
                        !contains(&bytes, secret),
                        "{} contains a plaintext secret",
                        path.display()
                    );
                }
            }
            assert!(scanned > 0);
            // The raw scan is meaningful: non-secret columns are found in the same bytes.
            let mut all = Vec::new();
            for path in f.sqlite_files() {
                all.extend(std::fs::read(path).unwrap());
            }
            assert!(contains(&all, b"200@example.com"));
        }
        Kind::Postgres => {
            // Every column of every row, as PostgreSQL prints it (bytea as hex).
            let rows = store
                .connection()
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT t::text FROM connections t UNION ALL \
                     SELECT p::text FROM pending_authorizations p"
                        .to_owned(),
                ))
                .await
                .unwrap();
            let text: String = rows
                .iter()
                .map(|r| r.try_get_by_index::<String>(0).unwrap())
                .collect();
            assert!(text.contains("200@example.com"));
            for secret in &secrets {
                let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
                assert!(!contains(text.as_bytes(), secret));
                assert!(!text.contains(&hex));
            }
            // And the table's files on disk, when this process may read them.
            sql(&store, "CHECKPOINT").await;
            let dir = store
                .connection()
                .query_one_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT current_setting('data_directory') || '/' || \
                     pg_relation_filepath('connections')"
                        .to_owned(),
                ))
                .await
                .unwrap()
                .unwrap()
                .try_get_by_index::<String>(0)
                .unwrap();
            match std::fs::read(&dir) {
                Ok(bytes) => {
                    assert!(contains(&bytes, b"200@example.com"));
                    for secret in &secrets {
                        assert!(!contains(&bytes, secret), "{dir} holds a plaintext secret");
                    }
                }
                Err(e) => eprintln!("(raw heap file {dir} not readable here: {e})"),
            }
        }
    }
}

pub(crate) async fn wrong_key_is_unknown_key(f: &Fixture) {
    let store = f.store().await;
    let row = insert(&store, None, "21").await;
    let (_, p) = pending(4);
    store.insert_pending(&p).await.unwrap();
    let other = f.store_with(KeyRing::generate_with_id("k2").unwrap()).await;
    assert_eq!(
        other.get(&row.id).await,
        Err(StoreError::UnknownKey {
            key_id: "k1".into()
        })
    );
    assert!(matches!(
        other.consume_pending(&p.state_hash, Some(&p.browser_binding)).await,
        Err(StoreError::UnknownKey { key_id }) if key_id == "k1"
    ));
    // Same id, other material: the tag does not verify.
    let impostor = f.store_with(KeyRing::generate_with_id("k1").unwrap()).await;
    assert_eq!(
        impostor.get(&row.id).await,
        Err(StoreError::Integrity {
            key_id: "k1".into()
        })
    );
    // A lease on an unreadable row is not kept.
    assert!(
        impostor
            .acquire_lease(&row.id, &LeaseOwner("x".into()), NOW, MINUTE)
            .await
            .is_err()
    );
    assert!(matches!(
        store
            .acquire_lease(&row.id, &LeaseOwner("y".into()), NOW, MINUTE)
            .await
            .unwrap(),
        LeaseOutcome::Acquired { .. }
    ));
}

pub(crate) async fn tampered_ciphertext_is_integrity_error(f: &Fixture) {
    let store = f.store().await;
    let a = insert(&store, None, "31").await;
    let b = insert(&store, None, "32").await;
    // Flip the first byte of a ciphertext in place.
    let flip = match f.kind {
        Kind::Sqlite => format!(
            "UPDATE connections SET access_token_ct = \
             (CASE WHEN substr(access_token_ct, 1, 1) = X'00' THEN X'01' ELSE X'00' END) \
             || substr(access_token_ct, 2) WHERE id = '{}'",
            a.id
        ),
        Kind::Postgres => format!(
            "UPDATE connections SET access_token_ct = \
             set_byte(access_token_ct, 0, (get_byte(access_token_ct, 0) + 1) % 256) \
             WHERE id = '{}'",
            a.id
        ),
    };
    assert_eq!(sql(&store, &flip).await, 1);
    assert_eq!(
        store.get(&a.id).await,
        Err(StoreError::Integrity {
            key_id: "k1".into()
        })
    );
    // A valid ciphertext moved to another row does not decrypt there.
    let mv = format!(
        "UPDATE connections SET refresh_token_ct = \
         (SELECT refresh_token_ct FROM connections WHERE id = '{a}'), \
         refresh_token_nonce = (SELECT refresh_token_nonce FROM connections WHERE id = '{a}') \
         WHERE id = '{b}'",
        a = a.id,
        b = b.id
    );
    assert_eq!(sql(&store, &mv).await, 1);
    assert!(matches!(
        store.get(&b.id).await,
        Err(StoreError::Integrity { .. })
    ));
    // Replaying an old version's ciphertext after the version moved on fails as well.
    let c = insert(&store, None, "33").await;
    sql(
        &store,
        &format!(
            "UPDATE connections SET version = version + 1 WHERE id = '{}'",
            c.id
        ),
    )
    .await;
    assert!(matches!(
        store.get(&c.id).await,
        Err(StoreError::Integrity { .. })
    ));
    let listed = store.list(&ListQuery::default()).await;
    assert!(matches!(listed, Err(StoreError::Integrity { .. })));
}

pub(crate) async fn corrupt_rows_are_corrupt_errors(f: &Fixture) {
    let store = f.store().await;
    let cases = [
        "state = 'sideways'",
        "ended_reason = 'not json', state = 'unauthorized'",
        "access_token_nonce = NULL",
        "key_id = NULL",
        "expires_at = NULL",
        "version = -3",
        "tenant_name = 'bad\ntenant'",
    ];
    for (i, set) in cases.iter().enumerate() {
        let row = insert(&store, None, &format!("{}", 40 + i)).await;
        let update = format!("UPDATE connections SET {set} WHERE id = '{}'", row.id);
        assert_eq!(sql(&store, &update).await, 1);
        let got = store.get(&row.id).await;
        assert!(
            matches!(got, Err(StoreError::Corrupt(_))),
            "{set}: expected Corrupt, got {got:?}"
        );
    }
    let nonce = match f.kind {
        Kind::Sqlite => "X'0102'",
        Kind::Postgres => "'\\x0102'::bytea",
    };
    let row = insert(&store, None, "49").await;
    sql(
        &store,
        &format!(
            "UPDATE connections SET refresh_token_nonce = {nonce} WHERE id = '{}'",
            row.id
        ),
    )
    .await;
    assert!(matches!(
        store.get(&row.id).await,
        Err(StoreError::Corrupt(_))
    ));
}

pub(crate) async fn key_rotation_reencrypts_everything_resumably(f: &Fixture) {
    let old = f
        .store_with(KeyRing::from_env_value(&f.keys().to_env_value()).unwrap())
        .await;
    let mut rows = Vec::new();
    for i in 0..30 {
        rows.push(insert(&old, Some("rot"), &format!("{}", 300 + i)).await);
    }
    for i in 0..3 {
        let (_, p) = pending(10 + i);
        old.insert_pending(&p).await.unwrap();
    }
    // Ended grants have no secrets and nothing to re-encrypt.
    end(&old, &rows[0], Connection::<Authorized>::revoke).await;

    let rotated = f
        .keys()
        .rotated_to(KeyRing::generate_with_id("k2").unwrap());
    let new_only = rotated.to_env_value();
    let store = f.store_with(rotated).await;
    let first = store.reencrypt_batch(10).await.unwrap();
    assert_eq!(first.reencrypted + first.skipped, 10);
    assert_eq!(first.remaining, 29 + 3 - first.reencrypted);

    // Concurrent writes while the rotation runs: refreshes through the old and new rings.
    // Each reads its row through the new ring (the old one cannot open what was already
    // re-encrypted) and writes through the old.
    let writer = {
        let old = old.clone();
        let reader = store.clone();
        let rows = rows.clone();
        tokio::spawn(async move {
            for (i, row) in rows.iter().enumerate().skip(20) {
                let next = renewed(typed(&reader, &row.id).await, &format!("during{i}"));
                old.put(&settled(&next, row), row.version).await.unwrap();
            }
        })
    };
    let mut batches = 1;
    let mut total = first.reencrypted;
    loop {
        let progress = store.reencrypt_batch(7).await.unwrap();
        batches += 1;
        total += progress.reencrypted;
        if progress.remaining == 0 {
            if writer.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(batches < 10_000, "rotation must converge");
    }
    writer.await.unwrap();
    // Writers on the old ring still seal with k1: one more pass picks up what they wrote.
    let mut last = store.reencrypt_batch(100).await.unwrap();
    while last.remaining > 0 {
        last = store.reencrypt_batch(100).await.unwrap();
    }
    total += last.reencrypted;
    assert!(
        total >= 32,
        "every sealed row re-encrypted at least once ({total})"
    );

    // Only the new key is needed now.
    let only_new = KeyRing::from_env_value(new_only.split(',').next().unwrap()).unwrap();
    assert_eq!(only_new.current_key_id(), "k2");
    let fresh = f.store_with(only_new).await;
    for (i, row) in rows.iter().enumerate().skip(1) {
        let read = fresh.get(&row.id).await.unwrap().unwrap();
        let expected = if i >= 20 {
            tokens(&format!("during{i}"))
        } else {
            tokens(&format!("{}", 300 + i))
        };
        assert_eq!(read.grant, Grant::Active(expected));
    }
    assert_eq!(
        scalar_i64(
            &fresh,
            "SELECT COUNT(*) FROM pending_authorizations WHERE key_id = 'k2'"
        )
        .await,
        3
    );
    let none_left = fresh.reencrypt_batch(10).await.unwrap();
    assert_eq!(none_left, kit_oauth_store::ReencryptProgress::default());
}

// ----- migrations -----

pub(crate) async fn migrations_from_empty_are_idempotent(f: &Fixture) {
    let store = f.unmigrated_store().await;
    assert!(matches!(
        store.readiness().await,
        Err(StoreError::Backend(_))
    ));
    store.migrate().await.unwrap();
    store.readiness().await.unwrap();
    store.migrate().await.unwrap();
    // Concurrent start-ups of several instances.
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let s = f.store().await;
        tasks.push(tokio::spawn(async move { s.migrate().await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    store.readiness().await.unwrap();
    assert_eq!(
        scalar_i64(&store, "SELECT COUNT(*) FROM seaql_migrations").await,
        i64::try_from(Migrator::migrations().len()).unwrap()
    );
    let row = insert(&store, None, "1").await;
    assert_eq!(store.get(&row.id).await.unwrap().unwrap(), row);
}

pub(crate) async fn migrations_from_previous_version(f: &Fixture) {
    let store = f.unmigrated_store().await;
    let all = Migrator::migrations();
    let previous = u32::try_from(all.len() - 1).unwrap();
    Migrator::up(store.connection(), Some(previous))
        .await
        .unwrap();
    let applied: Vec<String> = Migrator::get_applied_migrations(store.connection())
        .await
        .unwrap()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let expected: Vec<String> = all[..all.len() - 1]
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(applied, expected);
    assert_eq!(applied[0], CreateTables.name());
    // Data written by the previous version survives the upgrade; its rows are written the way
    // the previous version wrote them (without the columns the last migration adds).
    let id = ConnectionId::generate(&mut rng());
    let sql = format!(
        "INSERT INTO connections (id, tenant_name, kit_account_id, account_name, state, \
         ended_reason, version, lease_fence, consecutive_failures, cooldown_until, last_error, \
         created_at, updated_at) VALUES ('{id}', 'old', '77', 'old', 'unauthorized', \
         '{reason}', 1, 0, 2, {cooldown}, '503', {now}, {now})",
        id = id.as_str(),
        reason = serde_json::to_string(&UnauthorizedReason::Revoked).unwrap(),
        cooldown = NOW.saturating_add(MINUTE).unix_millis(),
        now = NOW.unix_millis(),
    );
    store.connection().execute_unprepared(&sql).await.unwrap();
    let (_, p) = pending(5);
    store.insert_pending(&p).await.unwrap();
    assert!(store.readiness().await.is_err());
    store.migrate().await.unwrap();
    store.readiness().await.unwrap();
    let row = store.get(&id).await.unwrap().unwrap();
    assert_eq!(row.grant, Grant::Ended(UnauthorizedReason::Revoked));
    assert_eq!(row.health.consecutive_failures, 2);
    assert_eq!(row.health.cooldown_until, Some(NOW.saturating_add(MINUTE)));
    assert_eq!(
        row.health.early_retry_after, None,
        "an old cooldown runs its course"
    );
    assert_eq!(
        store
            .consume_pending(&p.state_hash, Some(&p.browser_binding))
            .await
            .unwrap()
            .taken()
            .map(|taken| taken.record().clone()),
        Some(p)
    );
    // And the upgraded schema takes new rows.
    let fresh = insert(&store, Some("new"), "78").await;
    assert_eq!(store.get(&fresh.id).await.unwrap().unwrap(), fresh);
}

// ----- events -----

pub(crate) async fn events_are_appended_once(f: &Fixture) {
    let store = f.store().await;
    let row = insert(&store, Some("ev"), "88").await;
    let event = Event {
        id: EventId::generate(&mut rng()),
        at: NOW,
        connection: row.id.clone(),
        tenant: row.tenant.clone(),
        account: Some(row.account.id.clone()),
        kind: EventKind::RefreshFailed {
            reason: "503".into(),
            failures: 1,
        },
    };
    store.append_event(&event).await.unwrap();
    store.append_event(&event).await.unwrap();
    let second = Event {
        id: EventId::generate(&mut rng()),
        at: NOW.saturating_add(MINUTE),
        kind: EventKind::Refreshed {
            expires_at: NOW.saturating_add(MINUTE),
        },
        ..event.clone()
    };
    store.append_event(&second).await.unwrap();
    let events = store.events(&row.id).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].0, "refresh_failed");
    assert_eq!(events[1].0, "refreshed");
    // The trail outlives the connection.
    store
        .delete(&active(typed(&store, &row.id).await).remove_unrevoked())
        .await
        .unwrap();
    assert_eq!(store.events(&row.id).await.unwrap().len(), 2);
}

/// Seeded rows read back exactly as seeded (sealed as every writer seals them), and the counts
/// by state and of due rows are exact, decided by the core's own rule row by row.
pub(crate) async fn seeded_rows_round_trip_and_count_exactly(f: &Fixture) {
    use kit_oauth_core::{ConnectionStore as _, Grant};
    let store = f.store().await;
    let now = kit_oauth_core::Timestamp::from_unix_seconds(1_800_000_000);
    let records: Vec<_> = (0..2_500)
        .map(|n| kit_oauth_store::seed_record(n, now).unwrap())
        .collect();
    assert_eq!(store.seed_connections(&records).await.unwrap(), 2_500);
    let (mut authorized, mut expired, mut unauthorized, mut due) = (0, 0, 0, 0);
    for record in &records {
        match &record.grant {
            Grant::Active(tokens) if tokens.is_due(now) => expired += 1,
            Grant::Active(_) => authorized += 1,
            Grant::Ended(_) => unauthorized += 1,
        }
        if record.next_refresh_at.is_some_and(|at| at <= now) {
            due += 1;
        }
    }
    assert_eq!((expired, unauthorized, due), (25, 100, 25));
    let counts = store.connection_counts(now).await.unwrap();
    assert_eq!(
        (counts.authorized, counts.expired, counts.unauthorized),
        (authorized, expired, unauthorized)
    );
    assert_eq!(store.count_due(now).await.unwrap(), due);
    for record in records.iter().step_by(97) {
        assert_eq!(&store.get(&record.id).await.unwrap().unwrap(), record);
    }
    // A second seeding of the same rows breaks the unique keys: refused, nothing added.
    assert!(store.seed_connections(&records[..10]).await.is_err());
    assert_eq!(store.connection_counts(now).await.unwrap().total(), 2_500);
}

/// A warm pool (what the broker asks for) holds every connection as soon as `connect`
/// returns, so no request waits for one to open (a new PostgreSQL connection over TLS costs
/// about 90 ms with sqlx 0.9.0); an unreachable database is still reported by `connect`, not
/// by the first statement. A default pool opens connections on demand.
pub(crate) async fn a_warm_pool_opens_every_connection_at_connect(f: &Fixture) {
    use kit_oauth_store::StoreOptions;
    let options = |warm_pool| StoreOptions {
        max_connections: Some(3),
        warm_pool,
        ..StoreOptions::default()
    };
    let pool_size = |store: &SeaOrmStore| match store.connection().get_database_backend() {
        DbBackend::Postgres => store.connection().get_postgres_connection_pool().size(),
        _ => store.connection().get_sqlite_connection_pool().size(),
    };
    let warm = SeaOrmStore::connect_with(&f.url, f.keys(), options(true))
        .await
        .unwrap();
    assert_eq!(pool_size(&warm), 3, "every connection open at connect");
    warm.readiness().await.unwrap();
    assert_eq!(pool_size(&warm), 3);
    let cold = SeaOrmStore::connect_with(&f.url, f.keys(), options(false))
        .await
        .unwrap();
    assert!(
        pool_size(&cold) < 3,
        "a default pool opens connections on demand"
    );

    if f.kind == Kind::Postgres {
        let unreachable = SeaOrmStore::connect_with(
            "postgres://postgres@127.0.0.1:1/nowhere",
            f.keys(),
            StoreOptions {
                acquire_timeout: Duration::from_secs(2),
                ..options(true)
            },
        )
        .await;
        assert!(
            matches!(unreachable, Err(StoreError::Unavailable(_))),
            "a warm pool's connect reports an unreachable server: {:?}",
            unreachable.err()
        );
    }
}
