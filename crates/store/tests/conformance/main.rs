//! The `ConnectionStore` conformance suite, run on every backend: a SQLite file, and a fresh
//! PostgreSQL database per test (skipped loudly when PostgreSQL is unreachable, failed under
//! `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixture;
mod suite;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let fixture = crate::fixture::Fixture::sqlite().await;
                    crate::suite::$name(&fixture).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(fixture) = crate::fixture::Fixture::postgres(stringify!($name)).await
                    else {
                        return;
                    };
                    crate::suite::$name(&fixture).await;
                }
            )*
        }
    };
}

conformance!(
    round_trips_every_state,
    upsert_keeps_id_and_created_at,
    concurrent_upserts_make_one_row,
    put_is_compare_and_swap,
    concurrent_puts_one_winner,
    delete_removes_the_row,
    pending_is_consumed_exactly_once,
    pending_is_consumed_only_by_its_browser,
    pending_purge_removes_only_expired,
    lease_has_one_holder_across_pools,
    lease_expires_and_fences_the_old_holder,
    commit_refresh_refuses_a_stale_version,
    release_lease_records_health_and_in_flight,
    wait_for_change_wakes_on_commit,
    list_pages_and_filters,
    list_due_selects_due_unleased_rows,
    list_due_uses_the_index,
    no_plaintext_at_rest,
    wrong_key_is_unknown_key,
    tampered_ciphertext_is_integrity_error,
    corrupt_rows_are_corrupt_errors,
    key_rotation_reencrypts_everything_resumably,
    migrations_from_empty_are_idempotent,
    migrations_from_previous_version,
    events_are_appended_once,
    seeded_rows_round_trip_and_count_exactly,
);
