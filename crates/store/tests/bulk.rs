//! Pending Kit bulk requests on every backend: a callback token is stored only as its hash,
//! exactly one callback completes a request (a replay, or a concurrent second instance, does
//! not), an unknown token changes nothing, results are bounded, and the purge removes only
//! what was sent before its cutoff.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// Only part of the conformance fixture is used here.
#[allow(dead_code)]
#[path = "conformance/fixture.rs"]
mod fixture;

use std::time::Duration;

use kit_oauth_core::{ConnectionId, Sha256Hash, TenantName, Timestamp};
use kit_oauth_store::{BULK_RESULT_MAX_BYTES, BulkCompletion, NewBulkRequest};
use sea_orm::{ConnectionTrait as _, Statement};

use fixture::Fixture;
use libtest_mimic::{Arguments, Completion, Failed, Trial};

const NOW: Timestamp = Timestamp::from_unix_seconds(1_750_000_000);

fn request(id: &str, token: &str, at: Timestamp) -> NewBulkRequest {
    NewBulkRequest {
        id: id.to_owned(),
        callback_hash: Sha256Hash::of(token.as_bytes()),
        connection: ConnectionId::generate(&mut rand::rngs::OsRng),
        tenant: Some(TenantName::parse("acme").unwrap()),
        kind: "subscribers".to_owned(),
        created_at: at,
    }
}

async fn bulk_requests_complete_once_and_are_purged(f: &Fixture) {
    let store = f.store().await;
    let first = request("bulk_1", "token-one", NOW);
    store.insert_bulk(&first).await.unwrap();
    let pending = store.bulk_request("bulk_1").await.unwrap().unwrap();
    assert_eq!(pending.completed_at, None);
    assert_eq!(pending.result, None);
    assert_eq!(pending.tenant, first.tenant);
    assert_eq!(pending.connection, first.connection);

    // The token itself is nowhere in the table.
    let rows = store
        .connection()
        .query_all_raw(Statement::from_string(
            store.backend(),
            "SELECT callback_hash FROM bulk_requests",
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let hash: String = rows[0].try_get("", "callback_hash").unwrap();
    assert_eq!(hash, first.callback_hash.to_string());
    assert!(!hash.contains("token-one"));

    // A forged token completes nothing.
    let forged = Sha256Hash::of(b"token-forged");
    let body = r#"{"subscribers":[{"email_address":"a@example.com"}],"failures":[]}"#;
    assert_eq!(
        store.complete_bulk(&forged, body, NOW).await.unwrap(),
        BulkCompletion::Unknown
    );
    assert_eq!(
        store.bulk_request("bulk_1").await.unwrap().unwrap().result,
        None
    );

    // Two callbacks at once (two instances): exactly one completes it.
    let later = NOW.saturating_add(Duration::from_secs(5));
    let (a, b) = tokio::join!(
        store.complete_bulk(&first.callback_hash, body, later),
        store.complete_bulk(&first.callback_hash, r#"{"other":true}"#, later),
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let won: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            BulkCompletion::Completed(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(won.len(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&BulkCompletion::AlreadyCompleted));
    let stored = store.bulk_request("bulk_1").await.unwrap().unwrap();
    assert_eq!(stored, won[0]);
    assert_eq!(stored.completed_at, Some(later));
    // A replay later changes nothing.
    assert_eq!(
        store
            .complete_bulk(&first.callback_hash, "{}", later)
            .await
            .unwrap(),
        BulkCompletion::AlreadyCompleted
    );
    assert_eq!(store.bulk_request("bulk_1").await.unwrap().unwrap(), stored);

    // Results are bounded.
    let second = request("bulk_2", "token-two", later);
    store.insert_bulk(&second).await.unwrap();
    let huge = "x".repeat(BULK_RESULT_MAX_BYTES + 1);
    assert!(
        store
            .complete_bulk(&second.callback_hash, &huge, later)
            .await
            .is_err()
    );
    assert_eq!(
        store.bulk_request("bulk_2").await.unwrap().unwrap().result,
        None
    );

    // The purge at `later` removes the one sent before it only.
    assert_eq!(store.purge_bulk(later).await.unwrap(), 1);
    assert_eq!(store.bulk_request("bulk_1").await.unwrap(), None);
    assert!(store.bulk_request("bulk_2").await.unwrap().is_some());
    assert_eq!(
        store
            .complete_bulk(&first.callback_hash, body, later)
            .await
            .unwrap(),
        BulkCompletion::Unknown
    );
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
                bulk_requests_complete_once_and_are_purged(&Fixture::sqlite().await).await;
            });
            Ok(())
        }),
        Trial::ignorable_test("postgres", || -> Result<Completion, Failed> {
            runtime().block_on(async {
                match Fixture::postgres_or_why().await {
                    Ok(fixture) => {
                        bulk_requests_complete_once_and_are_purged(&fixture).await;
                        Ok(Completion::Completed)
                    }
                    Err(why) => Ok(Completion::ignored_with(why)),
                }
            })
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}
