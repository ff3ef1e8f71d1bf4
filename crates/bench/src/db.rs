//! The database the servers share: one SQLite file (WAL; several processes, one writer at a
//! time), a fresh database on an existing PostgreSQL, or a private PostgreSQL cluster the
//! harness starts and stops itself (for the restart scenario).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

use crate::error::{BenchError, Result};
use crate::supervisor::{free_port, running_as_root};

/// Which engine the servers run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbKind {
    /// One SQLite file shared by every server process.
    Sqlite,
    /// PostgreSQL (`--pg-url`, a fresh database per run).
    Postgres,
}

impl DbKind {
    /// The name shown in tables.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite (one file, WAL)",
            Self::Postgres => "PostgreSQL 15",
        }
    }
}

/// A database prepared for one run.
#[derive(Debug)]
pub enum Database {
    /// A SQLite file in the run directory.
    Sqlite(PathBuf),
    /// A database created on an existing server; dropped at the end.
    Postgres {
        /// Server URL without a database (`postgres://user@host:port`).
        server: String,
        /// The database created for this run.
        name: String,
    },
    /// A private cluster started by the harness.
    Own(PgCluster),
}

impl Database {
    /// Prepares a database of `kind` under `dir` (SQLite) or on `pg_server`.
    ///
    /// # Errors
    /// `psql` cannot create the database.
    pub async fn create(kind: DbKind, dir: &Path, pg_server: &str) -> Result<Self> {
        match kind {
            DbKind::Sqlite => Ok(Self::Sqlite(dir.join("kit-oauth.db"))),
            DbKind::Postgres => {
                let name = format!("kit_bench_{}_{}", std::process::id(), rand::random::<u32>());
                psql(pg_server, "postgres", &format!("CREATE DATABASE {name}")).await?;
                Ok(Self::Postgres {
                    server: pg_server.to_owned(),
                    name,
                })
            }
        }
    }

    /// `DATABASE_URL` for the servers.
    #[must_use]
    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}?mode=rwc", path.display()),
            Self::Postgres { server, name } => format!("{server}/{name}"),
            Self::Own(cluster) => cluster.url(),
        }
    }

    /// Drops the run's PostgreSQL database (or stops the private cluster).
    pub async fn cleanup(&mut self) {
        match self {
            Self::Sqlite(_) => {}
            Self::Postgres { server, name } => {
                let _ = psql(
                    server,
                    "postgres",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await;
            }
            Self::Own(cluster) => {
                let _ = cluster.stop().await;
                let _ = std::fs::remove_dir_all(&cluster.dir);
            }
        }
    }
}

/// Runs one SQL statement with `psql`.
async fn psql(server: &str, database: &str, sql: &str) -> Result<()> {
    let url = format!("{server}/{database}");
    let out = Command::new("psql")
        .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .await
        .map_err(BenchError::io(
            "running psql (is the PostgreSQL client installed?)",
        ))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::setup(format!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// A PostgreSQL cluster owned by the harness: `initdb` into a temporary directory, `pg_ctl`
/// start/stop on a free port. As root, the tools run as the `postgres` user (PostgreSQL refuses
/// to run as root) and the directory is handed to it.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    bin: PathBuf,
    as_postgres: bool,
}

impl PgCluster {
    /// Creates and starts a cluster under `dir` with database `bench`.
    ///
    /// # Errors
    /// A tool is missing or fails (its output is in the message).
    pub async fn start_new(dir: &Path, bin: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(BenchError::io("creating the PostgreSQL dir"))?;
        let as_postgres = running_as_root();
        if as_postgres {
            run_tool(
                "chown",
                &["-R", "postgres:", &dir.display().to_string()],
                false,
            )
            .await?;
        }
        let cluster = Self {
            dir: dir.to_path_buf(),
            port: free_port()?,
            bin: bin.to_path_buf(),
            as_postgres,
        };
        let initdb = cluster.bin.join("initdb").display().to_string();
        let data = cluster.data().display().to_string();
        run_tool(
            &initdb,
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            as_postgres,
        )
        .await?;
        cluster.start().await?;
        psql(&cluster.server(), "postgres", "CREATE DATABASE bench").await?;
        Ok(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn server(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// `DATABASE_URL` of its `bench` database.
    #[must_use]
    pub fn url(&self) -> String {
        format!("{}/bench", self.server())
    }

    /// `pg_ctl start` (waits until it accepts connections).
    ///
    /// # Errors
    /// `pg_ctl` fails.
    pub async fn start(&self) -> Result<()> {
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        let data = self.data().display().to_string();
        run_tool(
            &pg_ctl,
            &[
                "-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ],
            self.as_postgres,
        )
        .await
    }

    /// `pg_ctl stop -m fast` (disconnects every client, like an operator's restart).
    ///
    /// # Errors
    /// `pg_ctl` fails.
    pub async fn stop(&self) -> Result<()> {
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let data = self.data().display().to_string();
        run_tool(
            &pg_ctl,
            &["-D", &data, "-m", "fast", "-w", "-t", "60", "stop"],
            self.as_postgres,
        )
        .await
    }
}

async fn run_tool(program: &str, args: &[&str], as_postgres: bool) -> Result<()> {
    let mut command = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", program]).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    };
    command.current_dir("/");
    let out = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .map_err(|_| BenchError::setup(format!("{program} took more than 120 s")))?
        .map_err(BenchError::io(format!("running {program}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::setup(format!(
            "{program} {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
