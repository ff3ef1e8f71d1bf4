//! Several instances started at the same instant on one fresh database must all come up: a
//! rolling deploy, a Kubernetes ReplicaSet, `docker compose up --scale`. Each instance is a real
//! OS process (this test binary re-run as a child), so nothing is shared but the database.
//!
//! The child entry point is the ignored test `child_connects_and_migrates`: the parent runs
//! it with `--ignored --exact` and an environment that names the database and the instant to
//! start at, so the children's migrations collide as closely as process start-up allows. Its
//! own harness (libtest-mimic), so an unreachable PostgreSQL shows as ignored with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kit_oauth_core::{StoreError, Url};
use kit_oauth_store::{KeyRing, SeaOrmStore, StoreOptions};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use rand::RngCore as _;
use sea_orm::{ConnectionTrait as _, Database, Statement};

const CHILD_URL: &str = "KIT_OAUTH_CONCURRENT_START_URL";
const CHILD_AT_MS: &str = "KIT_OAUTH_CONCURRENT_START_AT_MS";
const KEYS: &str = "KIT_OAUTH_CONCURRENT_START_KEYS";

/// Processes started at once per round, and rounds per backend.
const INSTANCES: usize = 4;
const ROUNDS: usize = 5;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

async fn child_connects_and_migrates() {
    let url = std::env::var(CHILD_URL).expect("run by concurrent_start's parent tests");
    let at: u128 = std::env::var(CHILD_AT_MS).unwrap().parse().unwrap();
    let keys = KeyRing::from_env_value(&std::env::var(KEYS).unwrap()).unwrap();
    let wait = at.saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(u64::try_from(wait).unwrap())).await;
    let options = StoreOptions {
        max_connections: Some(2),
        migrate: false,
        ..StoreOptions::default()
    };
    // The phases an instance goes through at start-up, named in a failure.
    let store = match SeaOrmStore::connect_with(&url, keys, options).await {
        Ok(store) => store,
        Err(e) => fail("connect", &e),
    };
    if let Err(e) = store.migrate().await {
        fail("migrate", &e);
    }
    if let Err(e) = store.readiness().await {
        fail("readiness", &e);
    }
    println!("CHILD-READY");
}

fn fail(phase: &str, err: &StoreError) -> ! {
    println!("CHILD-FAILED in {phase}: {err}");
    std::process::exit(3);
}

/// Starts `INSTANCES` processes against `url` at one instant and returns what each printed
/// when it failed.
fn start_at_once(url: &str, keys: &str) -> Vec<String> {
    let exe = std::env::current_exe().unwrap();
    let at = now_ms() + 700;
    let children: Vec<_> = (0..INSTANCES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "child_connects_and_migrates",
                    "--nocapture",
                ])
                .env(CHILD_URL, url)
                .env(CHILD_AT_MS, at.to_string())
                .env(KEYS, keys)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failures = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains("CHILD-READY") {
            failures.push(format!(
                "{}: {}{}",
                out.status,
                stdout
                    .lines()
                    .find(|l| l.starts_with("CHILD-"))
                    .unwrap_or(""),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    failures
}

/// How many migrations the database records as applied.
async fn applied(url: &str) -> i64 {
    let db = Database::connect(url).await.unwrap();
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM seaql_migrations",
        ))
        .await
        .unwrap()
        .unwrap();
    let n: i64 = row.try_get("", "n").unwrap();
    db.close().await.unwrap();
    n
}

fn keys() -> String {
    KeyRing::generate_with_id("k1")
        .unwrap()
        .to_env_value()
        .to_string()
}

/// The number of migrations this build has: a single store migrating alone records them.
async fn expected_migrations() -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("one.db").display());
    let store = SeaOrmStore::connect(&url, KeyRing::from_env_value(&keys()).unwrap())
        .await
        .unwrap();
    drop(store);
    applied(&url).await
}

async fn instances_started_at_once_on_a_fresh_sqlite_file_all_come_up() {
    let expected = expected_migrations().await;
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("fresh.db").display()
        );
        let failures = start_at_once(&url, &keys());
        assert!(
            failures.is_empty(),
            "round {round}: {} of {INSTANCES} instances failed to start: {failures:#?}",
            failures.len()
        );
        assert_eq!(applied(&url).await, expected, "round {round}");
    }
}

async fn instances_started_at_once_on_a_fresh_postgres_database_all_come_up() -> Completion {
    let admin = std::env::var("KIT_OAUTH_TEST_POSTGRES_URL")
        .or_else(|_| std::env::var("KIT_OAUTH_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let Ok(Ok(db)) =
        tokio::time::timeout(Duration::from_secs(10), Database::connect(admin.as_str())).await
    else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        assert!(
            !ci,
            "PostgreSQL is required under CI but {admin} is unreachable"
        );
        return Completion::ignored_with(format!(
            "PostgreSQL at {admin} is unreachable: start it (bash .ci/ensure-postgres) or set \
             KIT_OAUTH_TEST_POSTGRES_URL"
        ));
    };
    let expected = expected_migrations().await;
    for round in 0..ROUNDS {
        let mut suffix = [0u8; 6];
        rand::rngs::OsRng.fill_bytes(&mut suffix);
        let name = format!("kit_oauth_start_{}", hex(&suffix));
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let mut url = Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        let failures = start_at_once(url.as_str(), &keys());
        let count = applied(url.as_str()).await;
        db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .unwrap();
        assert!(
            failures.is_empty(),
            "round {round}: {} of {INSTANCES} instances failed to start: {failures:#?}",
            failures.len()
        );
        assert_eq!(count, expected, "round {round}");
    }
    Completion::Completed
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("child_connects_and_migrates", || {
            runtime().block_on(child_connects_and_migrates());
            Ok(())
        })
        .with_ignored_flag(true),
        Trial::test(
            "instances_started_at_once_on_a_fresh_sqlite_file_all_come_up",
            || {
                runtime().block_on(instances_started_at_once_on_a_fresh_sqlite_file_all_come_up());
                Ok(())
            },
        ),
        Trial::ignorable_test(
            "instances_started_at_once_on_a_fresh_postgres_database_all_come_up",
            || -> Result<Completion, Failed> {
                Ok(runtime()
                    .block_on(instances_started_at_once_on_a_fresh_postgres_database_all_come_up()))
            },
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
