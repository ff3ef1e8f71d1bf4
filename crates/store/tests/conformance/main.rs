//! The `ConnectionStore` conformance suite, run on every backend: a SQLite file, and a fresh
//! PostgreSQL database per test. Its own harness (libtest-mimic), so that an unreachable
//! PostgreSQL shows as *ignored, with the reason* — never as a pass — and fails under CI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod fixture;
mod suite;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        fn trials() -> Vec<Trial> {
            let mut trials = Vec::new();
            $(
                trials.push(Trial::test(concat!("sqlite::", stringify!($name)), || {
                    runtime().block_on(async {
                        let fixture = crate::fixture::Fixture::sqlite().await;
                        crate::suite::$name(&fixture).await;
                    });
                    Ok(())
                }));
                trials.push(Trial::ignorable_test(
                    concat!("postgres::", stringify!($name)),
                    || -> Result<Completion, Failed> {
                        runtime().block_on(async {
                            match crate::fixture::Fixture::postgres_or_why().await {
                                Ok(fixture) => {
                                    crate::suite::$name(&fixture).await;
                                    Ok(Completion::Completed)
                                }
                                Err(why) => Ok(Completion::ignored_with(why)),
                            }
                        })
                    },
                ));
            )*
            trials
        }
    };
}

fn main() {
    let args = Arguments::from_args();
    libtest_mimic::run(&args, trials()).exit();
}

conformance!(
    round_trips_every_state,
    upsert_keeps_id_and_created_at,
    an_accounts_live_connections_in_every_tenant,
    concurrent_upserts_make_one_row,
    a_warm_pool_opens_every_connection_at_connect,
    put_is_compare_and_swap,
    concurrent_puts_one_winner,
    delete_removes_the_row,
    removing_an_ended_connection_spares_a_reinstall,
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
