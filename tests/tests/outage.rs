//! After an outage at Kit: a connection's cooldown grew while Kit failed, but once Kit answers
//! again (for any connection) an app waiting on an expired token gets one at once, at the cost
//! of exactly one call. The limits: an early retry that fails lets the cooldown run its course,
//! and a `Retry-After` from Kit is never cut short.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kit_oauth::ManagerError;
use kit_oauth::core::{Clock as _, ConnectionId, StateName};
use kit_oauth_tests::{Expired, invalid_grants};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind};

fn status_fault(status: u16, retry_after: Option<u64>, times: u32) -> Fault {
    Fault::new(
        FaultEndpoint::Token,
        FaultKind::Status {
            status,
            body: None,
            retry_after,
        },
    )
    .times(times)
}

/// A cooling connection: `access_token` fails at once, with no call to Kit.
async fn assert_cooling_without_a_call(setup: &Expired, id: &ConnectionId) {
    let calls = setup.world.token_requests();
    for _ in 0..20 {
        let err = setup.kit.manager().access_token(id).await.unwrap_err();
        assert!(matches!(err, ManagerError::Unavailable { .. }), "{err}");
    }
    assert_eq!(setup.world.token_requests(), calls, "no call while cooling");
}

/// Seconds until the connection's cooldown ends.
async fn cooldown_left(setup: &Expired, id: &ConnectionId) -> u64 {
    let status = setup.kit.manager().status(id).await.unwrap();
    let until = status.cooldown_until.expect("cooling down");
    until.duration_since(setup.world.clock.now()).as_secs()
}

#[tokio::test]
async fn an_outage_ends_for_every_connection_as_soon_as_kit_answers() {
    let accounts = ["first", "second", "canary"];
    let setup = Expired::new(|b| b, &accounts).await;
    let (outaged, canary) = (&setup.ids[..2], &setup.ids[2]);
    setup
        .world
        .sandbox
        .add_fault(status_fault(503, None, 1_000_000))
        .unwrap();
    // Half an hour of outage, both connections asked for every simulated minute: their
    // cooldowns grow far beyond a minute.
    for _minute in 0..30 {
        for id in outaged {
            assert!(setup.kit.manager().access_token(id).await.is_err());
        }
        setup.world.advance(60);
    }
    // One more failure of each, at the same instant, once both cooldowns have passed: after
    // more than ten failures in a row the next cooldown is at least 256 s (512 s, jittered).
    let mut longest = 0;
    for id in outaged {
        longest = longest.max(cooldown_left(&setup, id).await);
    }
    setup.world.advance(longest + 1);
    for id in outaged {
        assert!(setup.kit.manager().access_token(id).await.is_err());
        let status = setup.kit.manager().status(id).await.unwrap();
        assert!(status.consecutive_failures > 10, "{status:?}");
        assert!(
            cooldown_left(&setup, id).await > 60,
            "the backoff has grown"
        );
    }
    setup.world.sandbox.clear_faults();
    // Kit is back, but nobody has seen it answer yet: the cooldowns hold.
    for id in outaged {
        assert_cooling_without_a_call(&setup, id).await;
    }

    // Another connection's refresh, a second later, is Kit's first answer.
    setup.world.advance(1);
    setup.kit.manager().access_token(canary).await.unwrap();
    let calls = setup.world.token_requests();
    for (id, account) in outaged.iter().zip(accounts) {
        assert!(cooldown_left(&setup, id).await > 60, "still cooling");
        setup.kit.manager().access_token(id).await.unwrap();
        let status = setup.kit.manager().status(id).await.unwrap();
        assert_eq!(status.state, StateName::Authorized);
        assert_eq!(status.consecutive_failures, 0);
        assert_eq!(status.cooldown_until, None);
        assert_eq!(setup.kit.client().account(id).await.unwrap().name, account);
    }
    let stats = setup.world.stats();
    assert_eq!(
        setup.world.token_requests() - calls,
        2,
        "one refresh per connection"
    );
    assert_eq!(stats.refresh_reuse_attempts, 0, "{stats:?}");
    assert_eq!(invalid_grants(&stats), 0);
}

#[tokio::test]
async fn an_early_retry_that_fails_lets_the_cooldown_run_its_course() {
    let setup = Expired::new(|b| b, &["failing", "canary"]).await;
    let (failing, canary) = (&setup.ids[0], &setup.ids[1]);
    let fail_once = || {
        setup
            .world
            .sandbox
            .add_fault(status_fault(500, None, 1))
            .unwrap();
    };
    // Two failures: a cooldown of 2–4 s, so one second later it still holds.
    fail_once();
    assert!(setup.kit.manager().access_token(failing).await.is_err());
    let left = cooldown_left(&setup, failing).await;
    setup.world.advance(left + 1);
    fail_once();
    assert!(setup.kit.manager().access_token(failing).await.is_err());
    assert_eq!(setup.world.token_requests(), 2);
    setup.world.advance(1);

    // Kit answers the canary; the failing connection retries early, and Kit fails it again.
    setup.kit.manager().access_token(canary).await.unwrap();
    assert_eq!(setup.world.token_requests(), 3);
    fail_once();
    assert!(setup.kit.manager().access_token(failing).await.is_err());
    assert_eq!(setup.world.token_requests(), 4, "exactly one early retry");
    let status = setup.kit.manager().status(failing).await.unwrap();
    assert_eq!(status.consecutive_failures, 3);

    // Kit keeps answering others, yet this connection waits its cooldown out.
    setup.world.advance(1);
    setup
        .kit
        .manager()
        .force_refresh(canary, None)
        .await
        .unwrap();
    assert_cooling_without_a_call(&setup, failing).await;

    let left = cooldown_left(&setup, failing).await;
    setup.world.advance(left + 1);
    setup.kit.manager().access_token(failing).await.unwrap();
    assert_eq!(
        setup
            .kit
            .manager()
            .status(failing)
            .await
            .unwrap()
            .consecutive_failures,
        0
    );
    assert_eq!(setup.world.stats().refresh_reuse_attempts, 0);
}

#[tokio::test]
async fn a_retry_after_from_kit_is_never_cut_short() {
    let setup = Expired::new(|b| b, &["throttled", "canary"]).await;
    let (throttled, canary) = (&setup.ids[0], &setup.ids[1]);
    setup
        .world
        .sandbox
        .add_fault(status_fault(429, Some(120), 1))
        .unwrap();
    assert!(setup.kit.manager().access_token(throttled).await.is_err());
    setup.world.advance(1);
    setup.kit.manager().access_token(canary).await.unwrap();
    assert_cooling_without_a_call(&setup, throttled).await;
    assert!(cooldown_left(&setup, throttled).await >= 118);
}
