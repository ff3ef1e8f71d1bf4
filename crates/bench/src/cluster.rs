//! A running system under test: one `kit-sandbox` process, N `kit-oauth-server` processes on a
//! shared database, and the clients to drive and inspect them. Servers are configured exactly
//! as an operator would: through the environment variables of the README's table.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::StreamExt as _;
use tokio::process::Command;

use crate::client::{
    Broker, ConnectionView, Sandbox, SandboxGrant, TokenOutcome, http_client, install, sha256_hex,
};
use crate::db::{Database, DbKind, PgCluster};
use crate::error::{BenchError, Result};
use crate::supervisor::{Bins, Proc, free_port, wait_http};

/// The registered app, as the sandbox and the servers both know it.
pub const CLIENT_ID: &str = "bench-app";
/// Its client secret.
pub const CLIENT_SECRET: &str = "bench-secret-0123456789";
/// A redirect URI registered for in-process clients (the `hot` scenario); never served.
pub const IN_PROCESS_REDIRECT: &str = "http://127.0.0.1:9/in-process/callback";

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Server processes.
    pub instances: usize,
    /// Engine.
    pub db: DbKind,
    /// Existing PostgreSQL server for `DbKind::Postgres` (`postgres://user@host:port`).
    pub pg_url: String,
    /// Start a private PostgreSQL with the tools in this directory instead.
    pub own_pg: Option<PathBuf>,
    /// `expires_in` of tokens from the code exchange (sandbox `--access-ttl`).
    pub access_ttl: u64,
    /// `expires_in` of tokens from a refresh.
    pub refresh_access_ttl: u64,
    /// The sandbox's `--rotation` mode.
    pub rotation: SandboxRotation,
    /// Seconds a just-spent refresh token still works (0: none).
    pub reuse_grace: u64,
}

impl ClusterSpec {
    /// A spec with Kit's own lifetimes, reuse detection (the harshest rotation) and no grace.
    #[must_use]
    pub fn new(instances: usize, db: DbKind, pg_url: &str) -> Self {
        Self {
            instances: instances.max(1),
            db,
            pg_url: pg_url.to_owned(),
            own_pg: None,
            access_ttl: 172_800,
            refresh_access_ttl: 7_200,
            rotation: SandboxRotation::ReuseDetection,
            reuse_grace: 0,
        }
    }

    /// One line describing the setting, for table titles.
    #[must_use]
    pub fn describe(&self) -> String {
        let db = if self.own_pg.is_some() {
            "PostgreSQL 15 (private cluster)"
        } else {
            self.db.label()
        };
        let grace = if self.reuse_grace > 0 {
            format!(", reuse grace {} s", self.reuse_grace)
        } else {
            String::new()
        };
        format!(
            "{} server process{}, {db}, sandbox rotation {}{grace}",
            self.instances,
            if self.instances == 1 { "" } else { "es" },
            self.rotation.as_flag(),
        )
    }
}

/// The sandbox's refresh-token rotation mode (`kit-sandbox --rotation`). The harness runs the
/// sandbox as a process and does not link it, so it names the modes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxRotation {
    /// Doorkeeper's default: the previous refresh token works until the new access token is used.
    RevokeOnUse,
    /// A refresh revokes the previous pair at once.
    Strict,
    /// `Strict`, and a reused refresh token revokes the whole grant: exactly-once is provable.
    ReuseDetection,
}

impl SandboxRotation {
    /// The value of `--rotation`.
    #[must_use]
    pub fn as_flag(self) -> &'static str {
        match self {
            Self::RevokeOnUse => "revoke-on-use",
            Self::Strict => "strict",
            Self::ReuseDetection => "reuse-detection",
        }
    }
}

/// The running system.
#[derive(Debug)]
pub struct Cluster {
    /// The spec it was started with.
    pub spec: ClusterSpec,
    dir: tempfile::TempDir,
    bins: Bins,
    _sandbox_proc: Proc,
    /// The sandbox's control API.
    pub sandbox: Sandbox,
    ports: Vec<u16>,
    servers: Vec<Option<Proc>>,
    /// The shared database.
    pub db: Database,
    api_key: String,
    encryption_key: String,
    /// The client every request of the harness goes through.
    pub http: reqwest::Client,
    /// One broker client per server instance.
    pub brokers: Vec<Broker>,
    restarts: u64,
    migrated: bool,
}

impl Cluster {
    /// Starts the database, the sandbox and every server; returns when all are healthy.
    ///
    /// # Errors
    /// A process does not start or become healthy.
    pub async fn start(spec: ClusterSpec, bins: &Bins) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("kit-bench-")
            .tempdir()
            .map_err(BenchError::io("creating the run directory"))?;
        let db = match &spec.own_pg {
            Some(bin) => Database::Own(PgCluster::start_new(&pg_dir()?, bin).await?),
            None => Database::create(spec.db, dir.path(), &spec.pg_url).await?,
        };
        let ports = (0..spec.instances)
            .map(|_| free_port())
            .collect::<Result<Vec<_>>>()?;
        let mut command = Command::new(bins.path("kit-sandbox"));
        command
            .args(["--bind", "127.0.0.1:0", "--client-id", CLIENT_ID])
            .args(["--client-secret", CLIENT_SECRET, "--auto-approve"])
            .args(["--access-ttl", &spec.access_ttl.to_string()])
            .args(["--refresh-access-ttl", &spec.refresh_access_ttl.to_string()])
            .args(["--reuse-grace", &spec.reuse_grace.to_string()])
            .args(["--rate-limit", "1000000"])
            .args(["--redirect-uri", IN_PROCESS_REDIRECT]);
        for port in &ports {
            command.args([
                "--redirect-uri",
                &format!("http://127.0.0.1:{port}/kit/oauth/callback"),
            ]);
        }
        command.args(["--rotation", spec.rotation.as_flag()]);
        // One pair per install and revocable expired pairs, as the sandbox behaved when the
        // scenarios' figures were taken (Doorkeeper is laxer on both).
        command.args(["--revoke-on-reauthorization", "--revoke-expired"]);
        let (sandbox_proc, base) = Proc::spawn_until_line(
            "kit-sandbox",
            command,
            &dir.path().join("sandbox.log"),
            "kit-sandbox listening on",
            Duration::from_secs(20),
        )
        .await?;
        let http = http_client(Duration::from_secs(120))?;
        let mut key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let api_key = format!("bench-key-{}", hex::encode(&key[..12]));
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
        let encryption_key = base64::engine::general_purpose::STANDARD.encode(key);
        let brokers = ports
            .iter()
            .map(|p| {
                Broker::new(
                    format!("http://127.0.0.1:{p}"),
                    api_key.clone(),
                    http.clone(),
                )
            })
            .collect();
        let mut cluster = Self {
            servers: (0..spec.instances).map(|_| None).collect(),
            spec,
            dir,
            bins: bins.clone(),
            _sandbox_proc: sandbox_proc,
            sandbox: Sandbox::new(base, http.clone()),
            ports,
            db,
            api_key,
            encryption_key,
            http,
            brokers,
            restarts: 0,
            migrated: false,
        };
        cluster.start_all().await?;
        Ok(cluster)
    }

    /// The run directory (logs, SQLite file).
    #[must_use]
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Keeps the run directory after the harness exits (for reading the logs).
    pub fn keep_dir(self) -> PathBuf {
        self.dir.keep()
    }

    /// The broker API key.
    #[must_use]
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The servers' `KIT_OAUTH_ENCRYPTION_KEY` (for seeding rows they can open).
    #[must_use]
    pub fn encryption_key(&self) -> &str {
        &self.encryption_key
    }

    /// Environment of a server process, as the README documents it.
    fn server_env(&self, port: u16) -> Vec<(&'static str, String)> {
        let sandbox = &self.sandbox.base;
        vec![
            ("KIT_CLIENT_ID", CLIENT_ID.to_owned()),
            ("KIT_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            (
                "KIT_REDIRECT_URI",
                format!("http://127.0.0.1:{port}/kit/oauth/callback"),
            ),
            ("KIT_OAUTH_BASE", sandbox.clone()),
            ("KIT_REDIRECT_ALLOW", format!("{sandbox}/apps/")),
            ("DATABASE_URL", self.db.url()),
            ("KIT_OAUTH_ENCRYPTION_KEY", self.encryption_key.clone()),
            ("KIT_OAUTH_API_KEYS", self.api_key.clone()),
            ("KIT_OAUTH_BIND", format!("127.0.0.1:{port}")),
            ("KIT_OAUTH_LOG_FORMAT", "pretty".to_owned()),
            // `KIT_BENCH_SERVER_LOG=info` makes each server log every request with its
            // latency as the server measured it (to tell the broker's time from the network's).
            (
                "RUST_LOG",
                std::env::var("KIT_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
            ),
        ]
    }

    fn spawn_server(&self, i: usize) -> Result<Proc> {
        let port = self.ports[i];
        let mut command = Command::new(self.bins.path("kit-oauth-server"));
        for (name, value) in self.server_env(port) {
            command.env(name, value);
        }
        command.env_remove("KIT_OAUTH_ADMIN_KEY");
        let log = self.dir.path().join(format!("server-{i}.log"));
        Proc::spawn(&format!("kit-oauth-server #{i}"), command, &log)
    }

    async fn wait_healthy(&self, i: usize, proc: &mut Proc) -> Result<()> {
        wait_http(
            &self.http,
            &format!("http://127.0.0.1:{}/healthz", self.ports[i]),
            200,
            Duration::from_secs(30),
            proc,
        )
        .await
    }

    /// Starts server `i` (on its fixed port) and waits for `/healthz`.
    ///
    /// # Errors
    /// It exits or does not answer within 30 s.
    pub async fn start_server(&mut self, i: usize) -> Result<()> {
        let mut proc = self.spawn_server(i)?;
        self.wait_healthy(i, &mut proc).await?;
        self.servers[i] = Some(proc);
        self.migrated = true;
        Ok(())
    }

    /// Starts every server that is not running, all at once (the first one to open an empty
    /// database runs the migrations; the others wait for it), and waits until all are healthy.
    ///
    /// # Errors
    /// One does not start.
    pub async fn start_all(&mut self) -> Result<()> {
        let mut started = Vec::new();
        for i in 0..self.servers.len() {
            if self.servers[i].is_none() {
                if !self.migrated && i == 0 {
                    // A fresh database: let one process migrate it before the others race.
                    self.start_server(0).await?;
                    continue;
                }
                started.push((i, self.spawn_server(i)?));
            }
        }
        for (i, mut proc) in started {
            self.wait_healthy(i, &mut proc).await?;
            self.servers[i] = Some(proc);
        }
        Ok(())
    }

    /// Stops server `i` gracefully (SIGTERM).
    pub async fn stop_server(&mut self, i: usize) {
        if let Some(mut proc) = self.servers[i].take() {
            proc.terminate(Duration::from_secs(15)).await;
        }
    }

    /// Stops every server gracefully.
    pub async fn stop_all(&mut self) {
        for i in 0..self.servers.len() {
            self.stop_server(i).await;
        }
    }

    /// The pid of server `i`, if it is running.
    #[must_use]
    pub fn server_pid(&self, i: usize) -> Option<u32> {
        self.servers.get(i)?.as_ref()?.pid()
    }

    /// SIGKILLs server `i` (no shutdown of any kind) and returns its pid.
    pub async fn kill_server(&mut self, i: usize) -> Option<u32> {
        let mut proc = self.servers[i].take()?;
        let pid = proc.pid();
        proc.kill().await;
        pid
    }

    /// Restarts server `i` after a crash.
    ///
    /// # Errors
    /// It does not come back.
    pub async fn restart_server(&mut self, i: usize) -> Result<()> {
        self.restarts += 1;
        self.start_server(i).await
    }

    /// RSS in KiB of each running server.
    #[must_use]
    pub fn server_rss(&self) -> Vec<Option<u64>> {
        self.servers
            .iter()
            .map(|p| p.as_ref().and_then(Proc::rss_kib))
            .collect()
    }

    /// An error if a server that should run has exited.
    ///
    /// # Errors
    /// A server is gone.
    pub fn check_servers(&mut self) -> Result<()> {
        for proc in self.servers.iter_mut().flatten() {
            proc.check_alive()?;
        }
        Ok(())
    }

    /// Installs `count` connections (accounts `{prefix}-{i}`) through the servers' install
    /// routes, round-robin over the instances, `concurrency` at a time. Returns the wall time.
    ///
    /// # Errors
    /// An install fails three times.
    pub async fn seed(&self, prefix: &str, count: usize, concurrency: usize) -> Result<Duration> {
        let started = Instant::now();
        let done = Arc::new(AtomicU64::new(0));
        let results: Vec<Result<()>> = futures_util::stream::iter(0..count)
            .map(|i| {
                let http = self.http.clone();
                let server = self.brokers[i % self.brokers.len()].base.clone();
                let sandbox = self.sandbox.base.clone();
                let account = format!("{prefix}-{i}");
                let done = Arc::clone(&done);
                async move {
                    let mut last = None;
                    for _ in 0..3 {
                        match install(&http, &server, &sandbox, &account).await {
                            Ok(()) => {
                                done.fetch_add(1, Ordering::Relaxed);
                                return Ok(());
                            }
                            Err(e) => {
                                last = Some(e);
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                    Err(last.unwrap_or_else(|| BenchError::setup("install failed")))
                }
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for result in results {
            result?;
        }
        Ok(started.elapsed())
    }

    /// The connection ids, in listing order.
    ///
    /// # Errors
    /// The listing fails.
    pub async fn connection_ids(&self) -> Result<Vec<String>> {
        Ok(self.brokers[0]
            .connections()
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect())
    }

    /// Checks every connection end to end: listed as a live grant by the broker (`authorized`,
    /// or `expired` = refresh due), its token from the broker is the one the sandbox holds for
    /// that grant, and Kit accepts it. A token rotated between the two reads is checked again
    /// (up to three rounds), so a running refresher does not count as a mismatch.
    ///
    /// # Errors
    /// The broker or the sandbox cannot be read.
    pub async fn verify(&self, expected: usize) -> Result<Verification> {
        let connections = self.brokers[0].connections().await?;
        let mut v = Verification {
            listed: connections.len() as u64,
            ..Verification::default()
        };
        let mut pending = Vec::new();
        for c in connections {
            if c.state == "authorized" || c.state == "expired" {
                pending.push(c);
            } else if v.examples.len() < 5 {
                v.examples.push(format!(
                    "{} is {} ({:?}; last error {:?})",
                    c.id, c.state, c.ended_reason, c.last_error
                ));
            }
        }
        v.authorized = pending.len() as u64;
        v.lost = (expected as u64).saturating_sub(v.authorized);
        for round in 0..3 {
            let tokens: Vec<(ConnectionView, Option<String>)> =
                futures_util::stream::iter(pending.into_iter().enumerate())
                    .map(|(i, c)| {
                        let broker = self.brokers[i % self.brokers.len()].clone();
                        async move {
                            let deadline = Instant::now() + Duration::from_secs(60);
                            loop {
                                match broker.token(&c.id).await {
                                    TokenOutcome::Token(token) => return (c, Some(token)),
                                    _ if Instant::now() < deadline => {
                                        tokio::time::sleep(Duration::from_millis(200)).await;
                                    }
                                    _ => return (c, None),
                                }
                            }
                        }
                    })
                    .buffer_unordered(32)
                    .collect()
                    .await;
            let grants: HashMap<String, SandboxGrant> = self
                .sandbox
                .grants()
                .await?
                .into_iter()
                .map(|g| (g.account_id.to_string(), g))
                .collect();
            v.grants_alive = grants.values().filter(|g| g.alive).count() as u64;
            let checked: Vec<(ConnectionView, Option<(bool, bool)>)> =
                futures_util::stream::iter(tokens)
                    .map(|(c, token)| {
                        let sandbox = self.sandbox.clone();
                        let want = grants
                            .get(&c.account_id)
                            .and_then(|g| g.access_token_sha256.clone());
                        async move {
                            let Some(token) = token else {
                                return (c, None);
                            };
                            let matches = want.as_deref() == Some(sha256_hex(&token).as_str());
                            let works = sandbox.token_works(&token).await.unwrap_or(false);
                            (c, Some((matches, works)))
                        }
                    })
                    .buffer_unordered(32)
                    .collect()
                    .await;
            pending = Vec::new();
            let last = round == 2;
            for (c, outcome) in checked {
                match outcome {
                    None => v.no_token += 1,
                    Some((true, true)) => {}
                    Some((matches, works)) if last => {
                        v.token_mismatch += u64::from(!matches);
                        v.token_rejected += u64::from(!works);
                    }
                    Some(_) => pending.push(c),
                }
            }
            if pending.is_empty() {
                break;
            }
            v.rechecked += pending.len() as u64;
        }
        Ok(v)
    }

    /// Stops every process and drops the run's database.
    pub async fn shutdown(mut self, keep: bool) -> Option<PathBuf> {
        self.stop_all().await;
        self.db.cleanup().await;
        if keep { Some(self.keep_dir()) } else { None }
    }

    /// Server restarts so far (crash scenario).
    #[must_use]
    pub fn restarts(&self) -> u64 {
        self.restarts
    }
}

/// A directory the `postgres` user can own and traverse (not inside root's 0700 run dir).
fn pg_dir() -> Result<PathBuf> {
    let dir = tempfile::Builder::new()
        .prefix("kit-bench-pg-")
        .tempdir()
        .map_err(BenchError::io("creating the PostgreSQL directory"))?;
    Ok(dir.keep())
}

/// The end state of every connection.
#[derive(Debug, Default, Clone)]
pub struct Verification {
    /// Connections the broker lists.
    pub listed: u64,
    /// Of those, `authorized`.
    pub authorized: u64,
    /// Expected minus authorized.
    pub lost: u64,
    /// Authorized, but no token could be obtained within 60 s.
    pub no_token: u64,
    /// The broker's token is not the grant's current token at the sandbox.
    pub token_mismatch: u64,
    /// Kit (the sandbox) refused the broker's token.
    pub token_rejected: u64,
    /// Grants alive at the sandbox.
    pub grants_alive: u64,
    /// Tokens checked again because they rotated between the broker's and the sandbox's read.
    pub rechecked: u64,
    /// A few connections that are not authorized, with why.
    pub examples: Vec<String>,
}

impl Verification {
    /// Adds the verification rows and checks to `report`.
    pub fn report(&self, report: &mut crate::stats::Report, expected: u64) {
        report.check("connections listed by the broker", self.listed, expected);
        report.check(
            "lost connections (not `authorized`/`expired`: reinstall needed)",
            self.lost,
            0,
        );
        report.check("grants alive at the sandbox", self.grants_alive, expected);
        report.check("connections without a token", self.no_token, 0);
        report.check(
            "broker token ≠ sandbox's current token",
            self.token_mismatch,
            0,
        );
        report.check("tokens refused by GET /v4/account", self.token_rejected, 0);
        for example in &self.examples {
            report.note(format!("not authorized: {example}"));
        }
    }
}
