//! Guarantee 1 — Storm: 10,000 concurrent `access_token` calls on one expired connection make
//! exactly one refresh at the sandbox, no `invalid_grant`, and every caller gets the same token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use kit_oauth_tests::{Db, World, invalid_grants};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_callers_one_refresh() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let id = world.install(&kit, "storm", None).await;
    let first = kit.manager().access_token(&id).await.unwrap();

    // Past expiry (Kit's code-exchange lifetime is 48 h).
    world.advance(172_800 + 60);
    world.sandbox.reset_stats();

    let started = std::time::Instant::now();
    let mut callers = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let manager = kit.manager().clone();
        let id = id.clone();
        callers.push(tokio::spawn(async move { manager.access_token(&id).await }));
    }
    let mut tokens = HashSet::new();
    for caller in callers {
        let token = caller.await.unwrap().unwrap();
        tokens.insert(token.expose_secret().to_owned());
    }

    // A figure for docs/benchmarks.md, never an assertion.
    eprintln!("storm: 10,000 callers served in {:?}", started.elapsed());
    let stats = world.stats();
    assert_eq!(stats.refreshes_ok, 1, "exactly one refresh: {stats:?}");
    assert_eq!(invalid_grants(&stats), 0);
    assert_eq!(stats.refresh_reuse_attempts, 0);
    assert_eq!(tokens.len(), 1, "every caller gets the same new token");
    assert!(
        !tokens.contains(first.expose_secret()),
        "the token was renewed"
    );

    // And the token works at Kit.
    let account = kit.client().account(&id).await.unwrap();
    assert_eq!(account.name, "storm");
}
