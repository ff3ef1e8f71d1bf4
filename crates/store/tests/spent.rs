//! The spent refresh-token list on every backend: marking a token in flight records its hash
//! (never the token), a lookup finds it, a second record keeps the first time, and the purge
//! removes only what is past the retention.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Only part of the conformance fixture is used here.
#[allow(dead_code)]
#[path = "conformance/fixture.rs"]
mod fixture;

use std::time::Duration;

use kit_oauth_core::{
    AccessToken, Connection, ConnectionId, ConnectionStore as _, ConnectionStoreExt as _, InFlight,
    Installed, KitAccount, KitAccountId, LeaseOutcome, LeaseOwner, RefreshToken, Sha256Hash,
    Timestamp, TokenSet, Unauthorized,
};
use kit_oauth_store::SPENT_RETENTION;
use sea_orm::{ConnectionTrait as _, Statement};

use fixture::Fixture;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

const NOW: Timestamp = Timestamp::from_unix_seconds(1_750_000_000);

async fn spent_hashes_are_recorded_found_and_purged(f: &Fixture) {
    let store = f.store().await;
    let tokens = TokenSet::from_parts(
        AccessToken::new("access-1"),
        RefreshToken::new("refresh-1"),
        None,
        NOW,
        NOW.saturating_add(Duration::from_secs(7200)),
    );
    let account = KitAccount {
        id: KitAccountId::parse("77").unwrap(),
        name: "Imported".into(),
        primary_email: None,
    };
    let id = ConnectionId::generate(&mut rand::rngs::OsRng);
    let connection = Connection::<Unauthorized>::new(None).import(id, account, tokens);
    let row = store
        .upsert_installed(&Installed::new(&connection, NOW, NOW))
        .await
        .unwrap();
    let spent = RefreshToken::new("refresh-1").fingerprint();
    assert_eq!(store.spent_by(&spent).await.unwrap(), None);

    // Marking the token in flight is spending it.
    let owner = LeaseOwner("w".into());
    let LeaseOutcome::Acquired { lease, .. } = store
        .acquire_lease(&row.id, &owner, NOW, Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("the lease is free")
    };
    store
        .mark_in_flight(
            &lease,
            &InFlight {
                refresh_token: spent,
                started_at: NOW,
            },
        )
        .await
        .unwrap();
    assert_eq!(store.spent_by(&spent).await.unwrap(), Some(row.id.clone()));
    // Only the hash is stored.
    let rows = store
        .connection()
        .query_all_raw(Statement::from_string(
            store.backend(),
            "SELECT token_hash, connection_id, spent_at FROM spent_refresh_tokens",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let hash: String = rows[0].try_get("", "token_hash").unwrap();
    assert_eq!(hash, spent.to_string());
    assert!(!hash.contains("refresh-1"));

    // A second record (a resend) keeps the first time; another token is another row.
    let later = NOW.saturating_add(SPENT_RETENTION);
    assert!(!store.record_spent(&row.id, &spent, later).await.unwrap());
    let other = Sha256Hash::of(b"refresh-2");
    assert!(store.record_spent(&row.id, &other, later).await.unwrap());

    // The purge at NOW + retention + 1 ms removes the first (recorded at NOW) only.
    let purge_at = later.saturating_add(Duration::from_millis(1));
    assert_eq!(store.purge_spent(purge_at).await.unwrap(), 1);
    assert_eq!(store.spent_by(&spent).await.unwrap(), None);
    assert_eq!(store.spent_by(&other).await.unwrap(), Some(row.id));
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Its own harness, so an unreachable PostgreSQL shows as ignored with the reason.
fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("sqlite", || {
            runtime().block_on(async {
                spent_hashes_are_recorded_found_and_purged(&Fixture::sqlite().await).await;
            });
            Ok(())
        }),
        Trial::ignorable_test("postgres", || -> Result<Completion, Failed> {
            runtime().block_on(async {
                match Fixture::postgres_or_why().await {
                    Ok(fixture) => {
                        spent_hashes_are_recorded_found_and_purged(&fixture).await;
                        Ok(Completion::Completed)
                    }
                    Err(why) => Ok(Completion::ignored_with(why)),
                }
            })
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}
