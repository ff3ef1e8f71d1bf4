//! Property suite of the refresh protocol (issue 14.3): random interleavings of installs, clock
//! advances (the sandbox's and the managers' together), concurrent `access_token` calls on two
//! managers sharing one store, forced refreshes, every fault kind of the sandbox, revocations,
//! manager restarts and a manager killed mid-refresh, under every rotation mode, with and
//! without a grace window; SQLite and PostgreSQL.
//!
//! After every step (safety):
//! - every token handed out works at Kit (`GET /v4/account`), unless a fault lost a rotated
//!   answer, with exactly two exceptions, both a token that was the connection's current one a
//!   moment before: one the store held when the step began and a refresh replaced during it
//!   (another caller's refresh raced this one: a caller that finds the row leased is handed the
//!   current token, which a strict Kit revokes as the refresh lands, and revoke-on-use once the
//!   new token is first used); and, with the cache on (`cache_max_age` 15 s, half the cases),
//!   one replaced no longer than `cache_max_age` ago on the managers' clock (another manager's
//!   cache still held it);
//! - no refresh token was presented outside the grace window, and no `invalid_grant` happened,
//!   except as many as the faults that lose a rotated answer (rotate-then-drop, latency past the
//!   request timeout, a kill mid-refresh) could cause;
//! - no connection lost or duplicated in the store.
//!
//! At the end (liveness): faults cleared and the clock past every cooldown, each connection on
//! each manager ends fresh — the sandbox's current token of a live grant, the same in the store —
//! or `ReauthRequired` with its cause in `last_error`; never a transient error, so a manager
//! that stopped refreshing fails here.
//!
//! Cost: 256 cases on SQLite and 32 on PostgreSQL (`PROPTEST_CASES` overrides both); shrunk
//! failures are kept in `property.proptest-regressions` beside this file and replayed first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kit_oauth::core::{
    Clock as _, ConnectionId, ConnectionStore as _, Grant, ListQuery, Sha256Hash,
};
use kit_oauth::http::KitEndpoints;
use kit_oauth::{KitOAuth, ManagerConfig, ManagerError};
use kit_oauth_tests::{
    CLIENT_ID, CLIENT_SECRET, Db, REDIRECT_URI, World, http_client, invalid_grants,
};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, Rotation};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestRunner};

/// The managers' request timeout here: short, so that a latency fault past it (a lost answer)
/// costs little real time.
const REQUEST_TIMEOUT_MS: u64 = 300;

#[derive(Debug, Clone)]
enum Step {
    Install { account: u8, tenant: u8 },
    AccessAll { callers: u8 },
    Advance(u64),
    ForceRefresh { connection: u8, manager: u8 },
    Fault(u8),
    Revoke(u8),
    Restart(u8),
    KillMidRefresh(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..3, 0u8..2).prop_map(|(account, tenant)| Step::Install { account, tenant }),
        4 => (1u8..6).prop_map(|callers| Step::AccessAll { callers }),
        3 => prop_oneof![0u64..600, 6_000u64..8_000, 170_000u64..180_000].prop_map(Step::Advance),
        1 => (any::<u8>(), 0u8..2)
            .prop_map(|(connection, manager)| Step::ForceRefresh { connection, manager }),
        2 => (0u8..6).prop_map(Step::Fault),
        1 => any::<u8>().prop_map(Step::Revoke),
        1 => (0u8..2).prop_map(Step::Restart),
        1 => any::<u8>().prop_map(Step::KillMidRefresh),
    ]
}

fn rotation() -> impl Strategy<Value = Rotation> {
    prop_oneof![
        Just(Rotation::RevokeOnUse),
        Just(Rotation::Strict),
        Just(Rotation::ReuseDetection),
    ]
}

/// The cache's ages the cases run with: off (every read goes to the row), and the default, under
/// which a manager serves a token up to this long after another instance replaced it (a
/// documented staleness, `tests/tests/instances.rs`), which the safety check bounds.
fn cache_max_age() -> impl Strategy<Value = Duration> {
    prop_oneof![Just(Duration::ZERO), Just(Duration::from_secs(15))]
}

fn config(cache_max_age: Duration) -> ManagerConfig {
    ManagerConfig {
        lease_ttl: Duration::from_secs(1),
        lease_heartbeat: Duration::from_millis(100),
        wait_timeout: Duration::from_secs(5),
        cache_max_age,
        ..World::manager_config()
    }
}

/// A manager with its own pool on `db`, the shared clock and the short request timeout.
async fn instance(world: &World, db: &Db, cache_max_age: Duration) -> KitOAuth {
    let endpoints = KitEndpoints::builder()
        .base_url(world.sandbox.base_url())
        .client_id(CLIENT_ID)
        .client_secret(CLIENT_SECRET)
        .redirect_uri(REDIRECT_URI)
        .request_timeout(Duration::from_millis(REQUEST_TIMEOUT_MS))
        .build()
        .unwrap();
    KitOAuth::builder()
        .endpoints(endpoints)
        .store(db.store().await)
        .clock(Arc::new(world.clock.clone()))
        .manager_config(config(cache_max_age))
        .redirect_allow(
            kit_oauth::core::RedirectAllowlist::new([format!(
                "{}/apps/",
                world.sandbox.base_url()
            )])
            .unwrap(),
        )
        .build()
        .await
        .unwrap()
}

struct Run {
    world: World,
    db: Db,
    kits: Vec<KitOAuth>,
    ids: Vec<ConnectionId>,
    revoked: HashSet<ConnectionId>,
    /// Faults armed that can lose a rotated answer: each may cost one spent-token resend.
    lost_answers: u64,
    cache_max_age: Duration,
    /// Each connection's access token in the store (fingerprint), as of the last step's end.
    current: HashMap<ConnectionId, Option<String>>,
    /// Access tokens the store has replaced (fingerprint → the managers' clock, Unix ms, at the
    /// end of the step that replaced it: the clock moves only between steps).
    replaced: HashMap<String, i64>,
}

impl Run {
    fn pick(&self, n: u8) -> Option<ConnectionId> {
        (!self.ids.is_empty()).then(|| self.ids[usize::from(n) % self.ids.len()].clone())
    }

    fn kit(&self, n: u8) -> &KitOAuth {
        &self.kits[usize::from(n) % self.kits.len()]
    }

    async fn apply(&mut self, step: &Step) {
        match step {
            Step::Install { account, tenant } => {
                // Faults are for the refresh protocol: an install whose code exchange loses its
                // answer leaves a grant at Kit that no row knows (the install suites cover it).
                self.world.sandbox.clear_faults();
                let tenant = (*tenant == 1).then_some("tenant-b");
                // One Kit account per (account, tenant): a reinstall replaces its own row's
                // grant, and Kit's revocation of the previous grant on reauthorization never
                // silently kills another row's.
                let account = format!("account-{account}-{}", tenant.unwrap_or("default"));
                let installed = self
                    .world
                    .try_install(&self.kits[0], &account, tenant)
                    .await;
                match installed {
                    Ok(id) => {
                        self.revoked.remove(&id);
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
                    for caller in 0..*callers {
                        let manager = self.kit(caller).manager().clone();
                        let id = id.clone();
                        calls.push(tokio::spawn(async move { manager.access_token(&id).await }));
                    }
                }
                let mut handed_out = HashSet::new();
                let ids = self
                    .ids
                    .iter()
                    .flat_map(|id| (0..*callers).map(move |_| id));
                for (call, id) in calls.into_iter().zip(ids) {
                    if let Ok(token) = call.await.unwrap() {
                        handed_out.insert((id.clone(), token.expose_secret().to_owned()));
                    }
                }
                // After a lost answer Kit may already have replaced the stored token: no claim.
                if self.lost_answers == 0 {
                    let before = self.current.clone();
                    self.observe_store().await;
                    for (id, token) in handed_out {
                        if self.works_at_kit(&token).await {
                            continue;
                        }
                        let print = Sha256Hash::of(token.as_bytes()).to_string();
                        self.assert_just_replaced(&id, &print, &before);
                    }
                }
            }
            Step::Advance(secs) => self.world.advance(*secs),
            Step::ForceRefresh {
                connection,
                manager,
            } => {
                if let Some(id) = self.pick(*connection) {
                    let _ = self.kit(*manager).manager().force_refresh(&id, None).await;
                }
            }
            Step::Fault(n) => {
                let kind = match n {
                    0 => FaultKind::Status {
                        status: 500,
                        body: None,
                        retry_after: None,
                    },
                    1 => FaultKind::Drop,
                    2 => FaultKind::MalformedJson,
                    3 => FaultKind::Latency { ms: 50 },
                    4 => FaultKind::Latency {
                        ms: REQUEST_TIMEOUT_MS * 2,
                    },
                    _ => FaultKind::RotateThenDrop,
                };
                // Rotate-then-drop and latency past the timeout: Kit rotated, the answer is lost.
                if *n >= 4 {
                    self.lost_answers += 1;
                }
                self.world
                    .sandbox
                    .add_fault(Fault::new(FaultEndpoint::Token, kind))
                    .unwrap();
            }
            Step::Revoke(n) => {
                if let Some(id) = self.pick(*n) {
                    self.world.sandbox.clear_faults();
                    self.kits[0].manager().revoke(&id).await.unwrap();
                    self.revoked.insert(id);
                    self.revoked_grants_are_dead_at_kit().await;
                }
            }
            Step::Restart(n) => {
                let i = usize::from(*n) % self.kits.len();
                self.kits[i] = instance(&self.world, &self.db, self.cache_max_age).await;
            }
            Step::KillMidRefresh(n) => {
                if let Some(id) = self.pick(*n) {
                    self.kill_mid_refresh(&id);
                }
            }
        }
    }

    /// A third manager on a runtime of its own starts a refresh of `id`; once Kit has the
    /// request (rotated, answer held) the runtime is shut down, as a killed process: its lease
    /// and in-flight mark stay in the row. The clock then moves past the lease's TTL.
    fn kill_mid_refresh(&mut self, id: &ConnectionId) {
        self.world.sandbox.clear_faults();
        self.world
            .sandbox
            .add_fault(Fault::new(
                FaultEndpoint::Token,
                FaultKind::Latency {
                    ms: REQUEST_TIMEOUT_MS / 2,
                },
            ))
            .unwrap();
        let before = self.world.token_requests();
        let (world, db) = (&self.world, &self.db);
        // Counted whether or not the request reached Kit before the shutdown (it may arrive
        // after the polls below gave up): a bound, not an exact count.
        self.lost_answers += 1;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let doomed = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .unwrap();
                    doomed.block_on(async {
                        let victim = instance(world, db, Duration::ZERO).await;
                        let manager = victim.manager().clone();
                        let id = id.clone();
                        tokio::spawn(async move { manager.force_refresh(&id, None).await });
                        for _ in 0..250 {
                            if world.token_requests() > before {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    });
                    doomed.shutdown_background();
                })
                .join()
                .unwrap();
        });
        self.world.sandbox.clear_faults();
        self.world.advance(2);
    }

    /// Records what the store holds now; a token it no longer holds is replaced as of now.
    async fn observe_store(&mut self) {
        let now = self.world.clock.now().unix_millis();
        for record in self.records().await {
            let print = match &record.grant {
                Grant::Active(tokens) => Some(tokens.access().fingerprint().to_string()),
                Grant::Ended(_) => None,
            };
            let previous = self.current.insert(record.id.clone(), print.clone());
            if let Some(Some(old)) = previous
                && Some(&old) != print.as_ref()
            {
                self.replaced.entry(old).or_insert(now);
            }
        }
    }

    /// A token Kit refuses was handed out: it must be one of the two exceptions of the module
    /// doc, checked exactly (the store's token of the step's start, replaced during it; or one
    /// replaced within `cache_max_age`), and never the store's current token.
    fn assert_just_replaced(
        &self,
        id: &ConnectionId,
        print: &str,
        before: &HashMap<ConnectionId, Option<String>>,
    ) {
        let current = self.current.get(id).cloned().flatten();
        assert_ne!(
            current.as_deref(),
            Some(print),
            "handed out the store's current token, and Kit refuses it"
        );
        let raced = before.get(id).cloned().flatten().as_deref() == Some(print);
        let now = self.world.clock.now().unix_millis();
        let age = i64::try_from(self.cache_max_age.as_millis()).unwrap();
        let cached = self.replaced.get(print).is_some_and(|at| now - at <= age);
        assert!(
            raced || cached,
            "handed out a token Kit refuses that was neither replaced during this step nor \
             within the cache's {:?} (replaced at {:?}, now {now})",
            self.cache_max_age,
            self.replaced.get(print)
        );
    }

    /// Whether Kit accepts `token` (`GET /v4/account`). Not "the grant's current token": under
    /// revoke-on-use the previous pair keeps working until its successor is used, so a manager
    /// may serve it after a lost answer, correctly.
    async fn works_at_kit(&self, token: &str) -> bool {
        http_client()
            .get(format!("{}/v4/account", self.world.sandbox.base_url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
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
        let outside_grace =
            stats.refresh_reuse_attempts - stats.refresh_grace_hits - stats.refresh_reuse_accepted;
        assert!(
            outside_grace <= self.lost_answers,
            "refresh-token reuse outside the grace window beyond the {} lost answers: {stats:?}",
            self.lost_answers
        );
        assert!(
            invalid_grants(&stats) <= self.lost_answers,
            "invalid_grant beyond the {} lost answers: {stats:?}",
            self.lost_answers
        );
        let records = self.records().await;
        assert_eq!(
            records.len(),
            self.ids.len(),
            "no connection lost or duplicated"
        );
    }

    /// A revocation the manager reported done ended the grant at Kit: no pair of the account's
    /// grants still works, whatever the pair's age (Kit, like Doorkeeper and the sandbox by
    /// default, ignores a revocation of an expired pair, so the manager renews it first), and
    /// in every rotation mode: under revoke-on-use each refresh retires the pair it replaced
    /// (it uses the new access token once), so no chain of unused pairs is left behind. The
    /// suite found that chain (Install, ForceRefresh, ForceRefresh, Revoke) before the retire
    /// existed (docs/refresh-protocol.md). After a lost answer Kit may hold a pair nobody
    /// received, which no revocation can name: no claim then.
    async fn revoked_grants_are_dead_at_kit(&self) {
        if self.lost_answers > 0 {
            return;
        }
        for record in self.records().await {
            if !self.revoked.contains(&record.id) {
                continue;
            }
            let alive = self.world.alive_grants(&record.account.name);
            assert!(
                alive.is_empty(),
                "{} was revoked, yet grants {alive:?} of its account still work at Kit",
                record.id
            );
        }
    }

    async fn records(&self) -> Vec<kit_oauth::core::ConnectionRecord> {
        self.kits[0]
            .manager()
            .store()
            .list(&ListQuery {
                limit: 1_000,
                ..ListQuery::default()
            })
            .await
            .unwrap()
    }

    /// Kit healthy from here on, past every cooldown and token lifetime: every connection ends
    /// fresh on every manager, or ended with its cause; and the store agrees with the sandbox.
    async fn settle(&self) {
        self.world.sandbox.clear_faults();
        // Past every access token's lifetime (48 h) and every cooldown: each grant refreshes.
        self.world.advance(172_800 + 60);
        for id in &self.ids {
            for kit in &self.kits {
                match kit.manager().access_token(id).await {
                    Ok(token) => {
                        let live = self.live_tokens();
                        assert!(
                            live.get(&token.fingerprint().to_string())
                                .is_some_and(|at| *at > self.world.sandbox.now()),
                            "a fresh token is the sandbox's current one: {} not in {live:?}; {:?}",
                            token.fingerprint(),
                            self.world.stats()
                        );
                    }
                    Err(ManagerError::ReauthRequired { reason, .. }) => {
                        assert!(!reason.is_empty());
                        if !self.revoked.contains(id) {
                            let record = kit.manager().store().get(id).await.unwrap().unwrap();
                            assert!(
                                record.health.last_error.is_some(),
                                "a grant ended without its cause in last_error"
                            );
                            assert!(
                                self.lost_answers > 0,
                                "a grant ended though no fault could have cost it: {reason}"
                            );
                        }
                    }
                    Err(e) => panic!("Kit is healthy, yet {id} is neither fresh nor ended: {e}"),
                }
            }
        }
        self.check().await;
        self.revoked_grants_are_dead_at_kit().await;
        let live = self.live_tokens();
        for record in self.records().await {
            if let Grant::Active(tokens) = &record.grant {
                assert!(
                    live.contains_key(&tokens.access().fingerprint().to_string()),
                    "a stored token is not the sandbox's current one"
                );
            }
        }
    }
}

/// The number of cases: `PROPTEST_CASES` when set, else `default`.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn proptest_config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        max_shrink_iters: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

fn run_case(
    rotation: Rotation,
    grace: u64,
    cache_max_age: Duration,
    steps: &[Step],
    postgres: bool,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = if postgres {
            let Some(db) = Db::postgres("the_refresh_protocol_keeps_its_properties").await else {
                return;
            };
            db
        } else {
            Db::sqlite()
        };
        let world = World::new(|b| b.rotation(rotation).reuse_grace(grace)).await;
        let kits = vec![
            instance(&world, &db, cache_max_age).await,
            instance(&world, &db, cache_max_age).await,
        ];
        let mut run = Run {
            world,
            db,
            kits,
            ids: Vec::new(),
            revoked: HashSet::new(),
            lost_answers: 0,
            cache_max_age,
            current: HashMap::new(),
            replaced: HashMap::new(),
        };
        for step in steps {
            run.apply(step).await;
            run.check().await;
            run.observe_store().await;
        }
        run.settle().await;
        drop(run.kits);
        run.db.drop_database().await;
    });
}

/// One property run: `cases` random programs (plus the persisted regressions, replayed
/// first), on SQLite or PostgreSQL.
fn the_refresh_protocol_keeps_its_properties(
    default_cases: u32,
    postgres: bool,
) -> Result<(), Failed> {
    let mut config = proptest_config(default_cases);
    config.source_file = Some(file!());
    let mut runner = TestRunner::new(config);
    let programs = (
        rotation(),
        prop_oneof![Just(0u64), Just(300u64)],
        proptest::collection::vec(step(), 1..25),
        cache_max_age(),
    );
    runner
        .run(&programs, |(rotation, grace, steps, cache_max_age)| {
            run_case(rotation, grace, cache_max_age, &steps, postgres);
            Ok(())
        })
        .map_err(|failure| Failed::from(failure.to_string()))
}

/// Its own harness, so an unreachable PostgreSQL shows as ignored with the reason.
fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "the_refresh_protocol_keeps_its_properties_on_sqlite",
            || the_refresh_protocol_keeps_its_properties(256, false),
        ),
        Trial::ignorable_test(
            "the_refresh_protocol_keeps_its_properties_on_postgres",
            || -> Result<Completion, Failed> {
                let probe = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        match Db::postgres_or_why().await {
                            Ok(db) => {
                                db.drop_database().await;
                                Ok(())
                            }
                            Err(why) => Err(why),
                        }
                    });
                if let Err(why) = probe {
                    return Ok(Completion::ignored_with(why));
                }
                the_refresh_protocol_keeps_its_properties(32, true)?;
                Ok(Completion::Completed)
            },
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
