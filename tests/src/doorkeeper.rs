//! The Doorkeeper peer (`tests/peers/doorkeeper/app.rb`): a real Doorkeeper 5.5 configured like
//! Kit, started as a child process per test, and the harness the suites that need it run under.
//!
//! Whether Ruby and Doorkeeper are installed is known only at run time, so those suites use
//! libtest-mimic instead of libtest: without the peer they are listed as ignored with the reason
//! (outside CI) or fail (under `CI=true`), never a silent pass.

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

use crate::http_client;

pub const CLIENT_ID: &str = "kit-oauth-tests";
pub const CLIENT_SECRET: &str = "doorkeeper-client-secret";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/kit/oauth/callback";
pub const ACCOUNT_NAME: &str = "Doorkeeper Creator";

/// How long a peer may take to boot (Rails and Doorkeeper load in about 4 s on an idle machine;
/// the CI machines are shared).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// Doorkeeper's two refresh-token modes, chosen by its tokens table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRotation {
    /// With `previous_refresh_token`: the old refresh token lives until the new access token is
    /// first used (Doorkeeper's install default).
    RevokeOnUse,
    /// Without it: the old refresh token dies at once.
    Strict,
}

impl PeerRotation {
    pub const ALL: [Self; 2] = [Self::RevokeOnUse, Self::Strict];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RevokeOnUse => "revoke-on-use",
            Self::Strict => "strict",
        }
    }

    /// Test-name friendly form.
    pub fn ident(self) -> &'static str {
        match self {
            Self::RevokeOnUse => "revoke_on_use",
            Self::Strict => "strict",
        }
    }
}

fn app_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("peers/doorkeeper/app.rb")
}

/// Why the peer cannot start here, or `None` when it can.
pub fn missing_reason() -> Option<String> {
    let probe = Command::new("ruby")
        .args([
            "-e",
            r#"require "rails"; require "active_record"; require "doorkeeper"; require "puma"; require "sqlite3""#,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "Ruby cannot load Doorkeeper/Puma/SQLite ({}); run `bash .ci/ensure-doorkeeper`",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .next()
                .unwrap_or("no message")
        )),
        Err(e) => Some(format!("no `ruby` ({e}); run `bash .ci/ensure-doorkeeper`")),
    }
}

fn under_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}

/// One named async test.
pub struct Case {
    pub name: String,
    pub body: Box<dyn FnOnce() -> std::pin::Pin<Box<dyn Future<Output = ()>>> + Send>,
}

impl Case {
    pub fn new<F, Fut>(name: impl Into<String>, body: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Self {
            name: name.into(),
            body: Box::new(move || Box::pin(body())),
        }
    }
}

/// Runs `cases` as a test binary: each on its own two-worker runtime; all ignored with the
/// reason when the peer is missing outside CI, all failed under CI.
pub fn run(cases: Vec<Case>) -> ! {
    let args = Arguments::from_args();
    let missing = missing_reason();
    if let Some(why) = &missing
        && !under_ci()
    {
        eprintln!("\n!!!!! Doorkeeper suites IGNORED: {why} !!!!!\n");
    }
    let trials = cases
        .into_iter()
        .map(|case| {
            let missing = missing.clone();
            let ignored = missing.is_some() && !under_ci();
            let trial = Trial::test(case.name, move || {
                if let Some(why) = missing {
                    return Err(Failed::from(format!(
                        "the Doorkeeper peer cannot start (required under CI=true): {why}"
                    )));
                }
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| Failed::from(format!("tokio runtime: {e}")))?;
                runtime.block_on((case.body)());
                Ok(())
            });
            if ignored {
                trial
                    .with_kind("needs Doorkeeper: bash .ci/ensure-doorkeeper")
                    .with_ignored_flag(true)
            } else {
                trial
            }
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// A running peer, stopped when dropped. A peer that is never dropped (one kept in a static)
/// stops by itself when this process ends.
pub struct Peer {
    child: Child,
    base_url: String,
    pub rotation: PeerRotation,
    pub access_ttl: u64,
    /// How long it took to answer its first request.
    pub boot: Duration,
}

impl Peer {
    /// Starts a peer on a free port and waits until it answers.
    pub async fn start(rotation: PeerRotation, access_ttl: u64) -> Self {
        Self::start_for(rotation, access_ttl, REDIRECT_URI).await
    }

    /// As [`Peer::start`], with the client's registered redirect URI (a broker's callback).
    pub async fn start_for(rotation: PeerRotation, access_ttl: u64, redirect_uri: &str) -> Self {
        let port = {
            let probe = TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let started = Instant::now();
        let child = Command::new("ruby")
            .arg(app_path())
            .env("PORT", port.to_string())
            .env("ROTATION", rotation.as_str())
            .env("ACCESS_TTL", access_ttl.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", redirect_uri)
            .env("ACCOUNT_NAME", ACCOUNT_NAME)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut peer = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            rotation,
            access_ttl,
            boot: Duration::ZERO,
        };
        let client = http_client();
        loop {
            if let Ok(response) = client.get(peer.url("/__test/stats")).send().await
                && response.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = peer.child.try_wait() {
                panic!(
                    "the Doorkeeper peer ({}) exited at boot: {status}",
                    rotation.as_str()
                );
            }
            assert!(
                started.elapsed() < BOOT_TIMEOUT,
                "the Doorkeeper peer ({}) did not answer within {BOOT_TIMEOUT:?}",
                rotation.as_str()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peer.boot = started.elapsed();
        eprintln!(
            "doorkeeper peer {} (access TTL {access_ttl} s) booted in {:?}",
            rotation.as_str(),
            peer.boot
        );
        peer
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn stats(&self) -> Value {
        http_client()
            .get(self.url("/__test/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Successful grants Doorkeeper answered, by grant type, counted by its own
    /// `after_successful_strategy_response` hook.
    pub async fn grants(&self, kind: &str) -> u64 {
        self.stats().await["grants"][kind].as_u64().unwrap_or(0)
    }

    /// The token endpoint's refusals with this `error` (`invalid_grant`, …).
    pub async fn token_errors(&self, error: &str) -> u64 {
        self.stats().await["token_errors"][error]
            .as_u64()
            .unwrap_or(0)
    }

    pub async fn refreshes(&self) -> u64 {
        self.grants("refresh_token").await
    }
}

impl Drop for Peer {
    /// SIGTERM first, so that the peer removes its temporary directory; SIGKILL if it has not
    /// gone within five seconds.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
