//! Guarantees 4–6: `invalid_grant` is not trusted blindly, failing or dead connections cost a
//! bounded number of upstream calls, and a process killed while holding a refresh lease is
//! taken over once its lease lapses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use kit_oauth::core::{
    AccessToken, AccountLookup, AuthorizationCode, AuthorizeRequest, ConnectionId,
    ConnectionStore as _, ConnectionStoreExt as _, Due, EndpointError, Freshness, KitAccount,
    LeaseOutcome, LeaseOwner, LookupError, NoEvents, PkceVerifier, RefreshToken, RevocableToken,
    Settled, StateName, StoredConnection, Timestamp, TokenEndpoint, TokenResponse, Url,
};
use kit_oauth::http::KitOAuthClient;
use kit_oauth::{ManagerError, TokenManager};
use kit_oauth_tests::{Db, World, invalid_grants};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, Rotation};

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

/// The real HTTP adapter, with a one-shot hook run just before the next refresh request: a
/// deterministic way to let "another instance" act inside our refresh window.
struct Interleave {
    inner: KitOAuthClient,
    before_refresh: Mutex<Option<Hook>>,
}

impl TokenEndpoint for Interleave {
    fn authorize_url(&self, request: &AuthorizeRequest<'_>) -> Url {
        self.inner.authorize_url(request)
    }
    async fn exchange_code(
        &self,
        code: &AuthorizationCode,
        verifier: &PkceVerifier,
    ) -> Result<TokenResponse, EndpointError> {
        self.inner.exchange_code(code, verifier).await
    }
    async fn refresh(&self, refresh_token: &RefreshToken) -> Result<TokenResponse, EndpointError> {
        let hook = self.before_refresh.lock().unwrap().take();
        if let Some(hook) = hook {
            hook().await;
        }
        self.inner.refresh(refresh_token).await
    }
    async fn revoke(&self, token: RevocableToken<'_>) -> Result<(), EndpointError> {
        self.inner.revoke(token).await
    }
}

impl AccountLookup for Interleave {
    async fn account(&self, access_token: &AccessToken) -> Result<KitAccount, LookupError> {
        self.inner.account(access_token).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_after_a_rotation_elsewhere_is_a_lost_race_not_a_dead_grant() {
    // Without reuse detection: a strict server would revoke the grant on the second use, and
    // then no client could save it.
    let world = World::new(|b| b.rotation(Rotation::Strict)).await;
    let db = Db::sqlite();
    let installer = world.instance(&db).await;
    let id = world.install(&installer, "racer", None).await;
    world.advance(172_800 + 60);
    world.sandbox.reset_stats();

    let store = db.store().await;
    let other = KitOAuthClient::new(world.endpoints()).unwrap();
    let rotated: Arc<Mutex<Option<AccessToken>>> = Arc::default();
    let hook: Hook = {
        let (store, id, rotated, now) = (
            store.clone(),
            id.clone(),
            Arc::clone(&rotated),
            world.clock.clone(),
        );
        Box::new(move || {
            Box::pin(async move {
                // "Another instance" refreshes the same token and commits first.
                // It goes through the flow as an instance does: read, due, refreshed, CAS.
                let (record, StoredConnection::Active(read)) =
                    store.load(&id).await.unwrap().unwrap()
                else {
                    panic!("ended")
                };
                let mine = read.tokens().access().fingerprint();
                let Freshness::Due(expired) = read.observe_for(Due::Replacing(mine), &now) else {
                    panic!("the token it holds is due on its word")
                };
                let response = other.refresh(expired.refresh_token()).await.unwrap();
                let at = kit_oauth::core::Clock::now(&now);
                let fresh = expired.refreshed_with(response, at).unwrap();
                *rotated.lock().unwrap() = Some(fresh.tokens().access().clone());
                let settled = Settled::Refreshed {
                    connection: &fresh,
                    next_refresh_at: fresh.tokens().due_at(),
                    at,
                };
                store.put(&settled, record.version).await.unwrap();
            })
        })
    };
    let manager = TokenManager::new(
        Interleave {
            inner: KitOAuthClient::new(world.endpoints()).unwrap(),
            before_refresh: Mutex::new(Some(hook)),
        },
        db.store().await,
        Arc::new(world.clock.clone()),
        Arc::new(NoEvents),
        World::manager_config(),
    );

    let token = manager.access_token(&id).await.unwrap();
    let stats = world.stats();
    assert_eq!(
        invalid_grants(&stats),
        1,
        "our refresh lost the race: {stats:?}"
    );
    assert_eq!(
        stats.refreshes_ok, 1,
        "only the other instance's refresh: {stats:?}"
    );
    assert_eq!(
        Some(token),
        rotated.lock().unwrap().clone(),
        "the caller gets the winner's token"
    );
    let status = manager.status(&id).await.unwrap();
    assert_eq!(status.state, StateName::Authorized);
    assert_eq!(status.ended, None);
}

#[tokio::test]
async fn a_really_dead_grant_becomes_reauth_required() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let id = world.install(&kit, "gone", None).await;
    let grant = world
        .sandbox
        .grants()
        .into_iter()
        .find(|g| g.alive)
        .unwrap();
    assert!(world.sandbox.revoke_grant(grant.id));
    world.advance(172_800 + 60);
    let err = kit.manager().access_token(&id).await.unwrap_err();
    assert!(matches!(err, ManagerError::ReauthRequired { .. }), "{err}");
    assert_eq!(
        kit.manager().status(&id).await.unwrap().state,
        StateName::Unauthorized
    );
}

/// A connection whose refreshes fail for an hour, hammered by 100 callers every simulated
/// minute, costs 14 or 15 upstream calls in that hour (the default cooldowns 2, 4, 8, 8, 8,
/// 8, 16, 32 … s, each jittered down to half at worst, seen at one-minute steps); a dead one
/// costs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooldown_bounds_upstream_calls_per_hour() {
    let world = World::new(|b| b).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let failing = world.install(&kit, "failing", None).await;
    world.advance(172_800 + 60);
    world.sandbox.reset_stats();
    world
        .sandbox
        .add_fault(
            Fault::new(
                FaultEndpoint::Token,
                FaultKind::Status {
                    status: 503,
                    body: None,
                    retry_after: None,
                },
            )
            .times(100_000),
        )
        .unwrap();
    for _minute in 0..60 {
        let mut callers = Vec::new();
        for _ in 0..100 {
            let manager = kit.manager().clone();
            let id = failing.clone();
            callers.push(tokio::spawn(async move { manager.access_token(&id).await }));
        }
        for caller in callers {
            assert!(caller.await.unwrap().is_err());
        }
        world.advance(60);
    }
    let calls = world.token_requests();
    assert!(
        (14..=15).contains(&calls),
        "{calls} upstream calls in one hour of hammering"
    );
    assert_eq!(
        kit.manager().status(&failing).await.unwrap().ended,
        None,
        "an outage never kills the grant"
    );

    // A dead grant: zero calls, however hard it is asked.
    world.sandbox.clear_faults();
    let grant = world
        .sandbox
        .grants()
        .into_iter()
        .find(|g| g.alive)
        .unwrap();
    world.sandbox.revoke_grant(grant.id);
    world.advance(7_200);
    assert!(kit.manager().access_token(&failing).await.is_err());
    let after_death = world.token_requests();
    for _minute in 0..60 {
        for _ in 0..100 {
            let err = kit.manager().access_token(&failing).await.unwrap_err();
            assert!(matches!(err, ManagerError::ReauthRequired { .. }), "{err}");
        }
        world.advance(60);
    }
    assert_eq!(world.token_requests(), after_death);
}

const CRASH_ENV: &str = "KIT_OAUTH_CRASH_WORKER";

/// Not a test on its own: the body of the process [`killed_while_holding_a_lease`] kills. It
/// takes the connection's refresh lease (as a refresh about to call Kit would) and hangs.
#[tokio::test]
async fn crash_worker_entry() {
    let Ok(mode) = std::env::var(CRASH_ENV) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let keys = kit_oauth::store::KeyRing::from_env_value(&var("WORKER_KEYS")).unwrap();
    let store = kit_oauth::store::SeaOrmStore::connect(&var("WORKER_DB_URL"), keys)
        .await
        .unwrap();
    let id = ConnectionId::parse(&var("WORKER_CONNECTION")).unwrap();
    let now = Timestamp::from_unix_seconds(var("WORKER_NOW").parse().unwrap());
    if mode == "lease" {
        let outcome = store
            .acquire_lease(
                &id,
                &LeaseOwner("doomed".into()),
                now,
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        assert!(matches!(outcome, LeaseOutcome::Acquired { .. }));
        println!("LEASED");
    } else {
        // A real refresh, stuck in a slow token request (the sandbox has already rotated).
        let clock = kit_oauth::core::ManualClock::new(now);
        let endpoints = kit_oauth::http::KitEndpoints::builder()
            .base_url(var("WORKER_SANDBOX"))
            .client_id(kit_oauth_tests::CLIENT_ID)
            .client_secret(kit_oauth_tests::CLIENT_SECRET)
            .redirect_uri(kit_oauth_tests::REDIRECT_URI)
            .request_timeout(Duration::from_secs(600))
            .build()
            .unwrap();
        let manager = TokenManager::new(
            KitOAuthClient::new(endpoints).unwrap(),
            store,
            Arc::new(clock),
            Arc::new(NoEvents),
            World::manager_config(),
        );
        println!("LEASED");
        let _ = manager.access_token(&id).await;
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
}

async fn killed_while_holding_a_lease(mode: &str, grace: u64) {
    use tokio::io::AsyncBufReadExt as _;
    let world = World::new(|b| b.reuse_grace(grace)).await;
    let db = Db::sqlite();
    let kit = world.instance(&db).await;
    let id = world.install(&kit, "crashy", None).await;
    world.advance(172_800 + 60);
    world.sandbox.reset_stats();
    if mode == "mid-request" {
        world
            .sandbox
            .add_fault(Fault::new(
                FaultEndpoint::Token,
                FaultKind::Latency { ms: 600_000 },
            ))
            .unwrap();
    }
    let mut worker = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_worker_entry",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CRASH_ENV, mode)
        .env("WORKER_DB_URL", &db.url)
        .env("WORKER_KEYS", db.keys_value())
        .env("WORKER_SANDBOX", world.sandbox.base_url())
        .env("WORKER_CONNECTION", id.as_str())
        .env("WORKER_NOW", world.sandbox.now().to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(worker.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line.contains("LEASED") {
            break;
        }
    }
    if mode == "mid-request" {
        // Wait until the sandbox has rotated (the answer is being held).
        while world.stats().refreshes_ok == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    worker.start_kill().unwrap(); // SIGKILL
    worker.wait().await.unwrap();
    world.sandbox.clear_faults();

    // While the dead holder's lease lasts, callers are told to wait — never a credential error.
    let short = World::manager_config();
    let waiting = kit_oauth::ManagerConfig {
        wait_timeout: Duration::from_millis(300),
        ..short
    };
    let impatient = world.instance_with(&db, waiting).await;
    let err = impatient.manager().access_token(&id).await.unwrap_err();
    assert!(err.is_transient(), "{err}");

    // The lease lapses; another instance takes over.
    world.advance(31);
    kit.manager().access_token(&id).await.unwrap();
    let status = kit.manager().status(&id).await.unwrap();
    assert_eq!(status.state, StateName::Authorized);
    assert_eq!(kit.client().account(&id).await.unwrap().name, "crashy");
    let stats = world.stats();
    assert_eq!(invalid_grants(&stats), 0, "{stats:?}");
    // Mid-request, Kit had rotated: the resend is the one spent token, taken inside the grace.
    let resent = u64::from(mode == "mid-request");
    assert_eq!(stats.refresh_reuse_attempts, resent, "{stats:?}");
    assert_eq!(stats.refresh_grace_hits, resent, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_calling_kit_is_taken_over() {
    killed_while_holding_a_lease("lease", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_request_is_taken_over_within_grace() {
    killed_while_holding_a_lease("mid-request", 300).await;
}
