//! Backends for the conformance suite: a SQLite file in a temporary directory, or a fresh
//! PostgreSQL database created for one test and dropped after it.

use std::path::PathBuf;
use std::time::Duration;

use kit_oauth_core::Url;
use kit_oauth_store::{KeyRing, SeaOrmStore, StoreOptions};
use rand::RngCore as _;
use sea_orm::{ConnectionTrait as _, Database};

/// Where the PostgreSQL half connects to create its databases.
pub(crate) const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Sqlite,
    Postgres,
}

pub(crate) struct Fixture {
    pub(crate) kind: Kind,
    pub(crate) url: String,
    keys: String,
    dir: Option<tempfile::TempDir>,
    _pg: Option<PgDatabase>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Fixture {
    pub(crate) async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kit-oauth.db");
        Self {
            kind: Kind::Sqlite,
            url: format!("sqlite://{}?mode=rwc", path.display()),
            keys: KeyRing::generate_with_id("k1")
                .unwrap()
                .to_env_value()
                .to_string(),
            dir: Some(dir),
            _pg: None,
        }
    }

    /// A fresh database, or why there is none (PostgreSQL unreachable, outside CI). Under CI
    /// (`CI=true` or `CI=1`) an unreachable PostgreSQL panics: the suite must not pass empty.
    pub(crate) async fn postgres_or_why() -> Result<Self, String> {
        let admin = std::env::var("KIT_OAUTH_TEST_POSTGRES_URL")
            .or_else(|_| std::env::var("KIT_OAUTH_TEST_DATABASE_URL"))
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let connected =
            tokio::time::timeout(Duration::from_secs(10), Database::connect(admin.as_str())).await;
        let db = match connected {
            Ok(Ok(db)) => db,
            failure => {
                let why = match failure {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_owned(),
                };
                if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
                    panic!("PostgreSQL is required under CI but {admin} is unreachable: {why}");
                }
                return Err(format!(
                    "PostgreSQL at {admin} is unreachable ({why}): start it (bash \
                     .ci/ensure-postgres) or set KIT_OAUTH_TEST_POSTGRES_URL"
                ));
            }
        };
        let name = format!("kit_oauth_test_{}", random_hex(8));
        db.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        db.close().await.unwrap();
        let mut url = Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        Ok(Self {
            kind: Kind::Postgres,
            url: url.to_string(),
            keys: KeyRing::generate_with_id("k1")
                .unwrap()
                .to_env_value()
                .to_string(),
            dir: None,
            _pg: Some(PgDatabase { admin, name }),
        })
    }

    pub(crate) fn keys(&self) -> KeyRing {
        KeyRing::from_env_value(&self.keys).unwrap()
    }

    /// A store with its own pool, as another process would have.
    pub(crate) async fn store(&self) -> SeaOrmStore {
        self.store_with(self.keys()).await
    }

    pub(crate) async fn store_with(&self, keys: KeyRing) -> SeaOrmStore {
        let options = StoreOptions {
            max_connections: Some(4),
            busy_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(30),
            ..StoreOptions::default()
        };
        SeaOrmStore::connect_with(&self.url, keys, options)
            .await
            .unwrap()
    }

    /// A store over a database with no migration applied.
    pub(crate) async fn unmigrated_store(&self) -> SeaOrmStore {
        let options = StoreOptions {
            migrate: false,
            ..StoreOptions::default()
        };
        SeaOrmStore::connect_with(&self.url, self.keys(), options)
            .await
            .unwrap()
    }

    /// The SQLite database file and its WAL/shared-memory companions.
    pub(crate) fn sqlite_files(&self) -> Vec<PathBuf> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

struct PgDatabase {
    admin: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        // Drop is synchronous: drop the database from a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let db = Database::connect(admin.as_str()).await?;
                db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await?;
                db.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
