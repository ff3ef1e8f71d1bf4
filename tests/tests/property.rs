//! Property suite: random interleavings of installs, clock advances (the sandbox's and the
//! manager's together), concurrent `access_token` calls, forced refreshes, faults, revocations
//! and manager restarts on the same database, against the sandbox.
//!
//! After every step:
//! - every token handed out is the sandbox's current token of a live grant, not past expiry at
//!   the sandbox's clock;
//! - no refresh token was ever presented twice (the sandbox counts reuse attempts; with reuse
//!   detection on, a second concurrent refresh of one connection would show up here);
//! - the store and the sandbox agree on which grants are alive, token for token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use kit_oauth::KitOAuth;
use kit_oauth::core::{ConnectionId, ConnectionStore as _, Grant, ListQuery};
use kit_oauth_tests::{Db, World, invalid_grants};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Install { account: u8, tenant: u8 },
    AccessAll { callers: u8 },
    Advance(u64),
    ForceRefresh(u8),
    Fault(u8),
    Revoke(u8),
    Restart,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..3, 0u8..2).prop_map(|(account, tenant)| Step::Install { account, tenant }),
        4 => (1u8..6).prop_map(|callers| Step::AccessAll { callers }),
        3 => prop_oneof![0u64..600, 6_000u64..8_000, 170_000u64..180_000].prop_map(Step::Advance),
        1 => any::<u8>().prop_map(Step::ForceRefresh),
        1 => (0u8..3).prop_map(Step::Fault),
        1 => any::<u8>().prop_map(Step::Revoke),
        1 => Just(Step::Restart),
    ]
}

struct Run {
    world: World,
    db: Db,
    kit: KitOAuth,
    ids: Vec<ConnectionId>,
}

impl Run {
    fn pick(&self, n: u8) -> Option<ConnectionId> {
        (!self.ids.is_empty()).then(|| self.ids[usize::from(n) % self.ids.len()].clone())
    }

    async fn apply(&mut self, step: &Step) {
        match step {
            Step::Install { account, tenant } => {
                let tenant = (*tenant == 1).then_some("tenant-b");
                let installed = self
                    .world
                    .try_install(&self.kit, &format!("account-{account}"), tenant)
                    .await;
                match installed {
                    Ok(id) => {
                        // A reinstall of the same account and tenant keeps its id.
                        if !self.ids.contains(&id) {
                            self.ids.push(id);
                        }
                    }
                    // An injected fault hit the code exchange: the install fails, nothing is
                    // stored (checked below), and the person would simply try again.
                    Err(kit_oauth::InstallError::Exchange(
                        kit_oauth::core::EndpointError::Transient { .. }
                        | kit_oauth::core::EndpointError::Protocol { .. },
                    )) => {}
                    Err(e) => panic!("install failed: {e}"),
                }
            }
            Step::AccessAll { callers } => {
                let mut calls = Vec::new();
                for id in &self.ids {
                    for _ in 0..*callers {
                        let manager = self.kit.manager().clone();
                        let id = id.clone();
                        calls.push(tokio::spawn(async move { manager.access_token(&id).await }));
                    }
                }
                let mut handed_out = Vec::new();
                for call in calls {
                    if let Ok(token) = call.await.unwrap() {
                        handed_out.push(token.fingerprint().to_string());
                    }
                }
                let live = self.live_tokens();
                let now = self.world.sandbox.now();
                for token in handed_out {
                    let expires = live.get(&token);
                    assert!(
                        expires.is_some_and(|at| *at > now),
                        "handed out a token that is not live at the sandbox (expires {expires:?}, now {now})"
                    );
                }
            }
            Step::Advance(secs) => self.world.advance(*secs),
            Step::ForceRefresh(n) => {
                if let Some(id) = self.pick(*n) {
                    let _ = self.kit.manager().force_refresh(&id, None).await;
                }
            }
            Step::Fault(kind) => {
                let kind = match kind {
                    0 => FaultKind::Status {
                        status: 500,
                        body: None,
                        retry_after: None,
                    },
                    1 => FaultKind::Drop,
                    _ => FaultKind::MalformedJson,
                };
                self.world
                    .sandbox
                    .add_fault(Fault::new(FaultEndpoint::Token, kind))
                    .unwrap();
            }
            Step::Revoke(n) => {
                if let Some(id) = self.pick(*n) {
                    self.world.sandbox.clear_faults();
                    self.kit.manager().revoke(&id).await.unwrap();
                }
            }
            Step::Restart => {
                self.kit = self.world.instance(&self.db).await;
            }
        }
    }

    /// Access-token fingerprint → expiry (sandbox seconds) of every live grant.
    fn live_tokens(&self) -> HashMap<String, i64> {
        self.world
            .sandbox
            .grants()
            .into_iter()
            .filter(|g| g.alive)
            .map(|g| (g.access_token_sha256, g.access_expires_at))
            .collect()
    }

    async fn check(&self) {
        let stats = self.world.stats();
        assert_eq!(stats.refresh_reuse_attempts, 0, "{stats:?}");
        assert_eq!(invalid_grants(&stats), 0, "{stats:?}");
        let records = self
            .kit
            .manager()
            .store()
            .list(&ListQuery {
                limit: 1_000,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        let live = self.live_tokens();
        let active: Vec<String> = records
            .iter()
            .filter_map(|r| match &r.grant {
                Grant::Active(tokens) => Some(tokens.access().fingerprint().to_string()),
                Grant::Ended(_) => None,
            })
            .collect();
        assert_eq!(
            active.len(),
            live.len(),
            "store and sandbox agree on live grants"
        );
        for token in &active {
            assert!(
                live.contains_key(token),
                "a stored token is not the sandbox's current one"
            );
        }
        assert_eq!(
            records.len(),
            self.ids.len(),
            "no connection lost or duplicated"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_manager_keeps_its_invariants(steps in proptest::collection::vec(step(), 1..25)) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let world = World::new(|b| b).await;
            let db = Db::sqlite();
            let kit = world.instance(&db).await;
            let mut run = Run { world, db, kit, ids: Vec::new() };
            for step in &steps {
                run.apply(step).await;
                run.check().await;
            }
        });
    }
}
