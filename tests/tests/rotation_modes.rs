//! The refresh protocol under each of Kit's possible rotation rules. Every exactly-once suite
//! runs against `reuse-detection`, the harshest; these are the cases whose outcome differs by
//! mode, or whose promise must be shown to hold in the realistic modes too:
//! - a storm is one refresh whatever the mode;
//! - an answer lost after Kit rotated (the token in flight was spent at Kit, the manager never
//!   saw the new pair) costs the connection under `strict` and `reuse-detection` without a grace
//!   window, but not under Doorkeeper's default `revoke-on-use`: the previous refresh token stays
//!   valid until the new access token is first used, and nobody used it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use kit_oauth::ManagerError;
use kit_oauth::core::{Clock as _, StateName};
use kit_oauth_tests::{Expired, invalid_grants};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, Rotation};

const MODES: [Rotation; 3] = [
    Rotation::RevokeOnUse,
    Rotation::Strict,
    Rotation::ReuseDetection,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_one_refresh_in_every_mode() {
    for mode in MODES {
        let setup = Expired::new(|b| b.rotation(mode), &["storm"]).await;
        let id = setup.ids[0].clone();
        let manager = Arc::new(setup.kit.manager().clone());
        let callers: Vec<_> = (0..200)
            .map(|_| {
                let (manager, id) = (Arc::clone(&manager), id.clone());
                tokio::spawn(async move { manager.access_token(&id).await })
            })
            .collect();
        let mut tokens = Vec::new();
        for caller in callers {
            tokens.push(caller.await.unwrap().unwrap());
        }
        assert!(
            tokens.windows(2).all(|w| w[0] == w[1]),
            "{mode:?}: one token"
        );
        let stats = setup.world.stats();
        assert_eq!(stats.refreshes_ok, 1, "{mode:?}: one refresh at Kit");
        assert_eq!(invalid_grants(&stats), 0, "{mode:?}");
        assert_eq!(stats.refresh_reuse_attempts, 0, "{mode:?}");
    }
}

/// Kit rotates, the answer is lost, and the manager's next attempt resends the refresh token
/// its lease recorded in flight. What that costs depends only on Kit's rotation rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_lost_after_rotation_costs_the_connection_only_where_kit_spends_at_once() {
    for mode in MODES {
        let setup = Expired::new(|b| b.rotation(mode), &["lost"]).await;
        let id = setup.ids[0].clone();
        let manager = setup.kit.manager();
        setup
            .world
            .sandbox
            .add_fault(Fault::new(FaultEndpoint::Token, FaultKind::RotateThenDrop))
            .unwrap();
        assert!(manager.access_token(&id).await.is_err(), "{mode:?}");
        let status = manager.status(&id).await.unwrap();
        let until = status
            .cooldown_until
            .expect("the lost answer set a cooldown");
        let wait = until.duration_since(setup.world.clock.now()).as_secs() + 1;
        setup.world.advance(wait);

        let outcome = manager.access_token(&id).await;
        let stats = setup.world.stats();
        assert_eq!(stats.refresh_reuse_attempts, 1, "{mode:?}: one resend");
        match mode {
            Rotation::RevokeOnUse => {
                let token = outcome.unwrap();
                assert_eq!(stats.refresh_reuse_accepted, 1, "{mode:?}");
                assert_eq!(invalid_grants(&stats), 0, "{mode:?}");
                assert_eq!(stats.grants_alive, 1, "{mode:?}");
                // The recovered pair works at Kit and keeps rotating.
                assert_eq!(
                    manager.status(&id).await.unwrap().state,
                    StateName::Authorized
                );
                let again = manager.force_refresh(&id, Some(&token)).await.unwrap();
                assert_ne!(again, token, "{mode:?}");
                assert_eq!(invalid_grants(&setup.world.stats()), 0, "{mode:?}");
            }
            Rotation::Strict | Rotation::ReuseDetection => {
                let err = outcome.unwrap_err();
                assert!(
                    matches!(err, ManagerError::ReauthRequired { .. }),
                    "{mode:?}: {err}"
                );
                assert_eq!(stats.refresh_reuse_accepted, 0, "{mode:?}");
                assert_eq!(invalid_grants(&stats), 1, "{mode:?}");
                let status = manager.status(&id).await.unwrap();
                assert_eq!(status.state, StateName::Unauthorized, "{mode:?}");
                assert!(
                    status
                        .last_error
                        .as_deref()
                        .unwrap()
                        .contains("never answered"),
                    "{mode:?}: the cause is named: {status:?}"
                );
            }
        }
    }
}
