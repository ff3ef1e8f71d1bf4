//! Child processes the harness owns: the sandbox, the broker servers, the bare handler and a
//! private PostgreSQL. Each child's output goes to a log file in the run directory; every child
//! is killed when its handle is dropped, so a failed scenario leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

use crate::error::{BenchError, Result};

/// Where the binaries the harness starts live.
#[derive(Debug, Clone)]
pub struct Bins {
    dir: PathBuf,
}

impl Bins {
    /// `dir` if given, else the directory of the running executable (cargo puts every binary of
    /// the workspace side by side in `target/<profile>/`).
    ///
    /// # Errors
    /// The executable's path is unknown, or a binary is missing there.
    pub fn locate(dir: Option<&Path>) -> Result<Self> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => std::env::current_exe()
                .map_err(BenchError::io("locating the bench executable"))?
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| BenchError::setup("the bench executable has no directory"))?,
        };
        let bins = Self { dir };
        for name in ["kit-sandbox", "kit-oauth-server"] {
            if !bins.path(name).is_file() {
                return Err(BenchError::setup(format!(
                    "{} not found: build it first (cargo build --release -p kit-sandbox -p kit-oauth-server) or pass --bin-dir",
                    bins.path(name).display()
                )));
            }
        }
        Ok(bins)
    }

    /// The path of binary `name`.
    #[must_use]
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A running child process with its log file.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `command`, its stdout and stderr appended to `log`.
    ///
    /// # Errors
    /// The log cannot be opened or the program cannot be started.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(BenchError::io(format!("opening {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(BenchError::io(format!("opening {}", log.display())))?;
        command
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = command
            .spawn()
            .map_err(BenchError::io(format!("starting {name}")))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Starts `command` and waits for the first stdout line starting with `prefix` (e.g. the
    /// sandbox's `kit-sandbox listening on`); returns the rest of that line. Later output is
    /// copied to the log.
    ///
    /// # Errors
    /// The process exits or stays silent for `timeout`.
    pub async fn spawn_until_line(
        name: &str,
        mut command: Command,
        log: &Path,
        prefix: &str,
        timeout: Duration,
    ) -> Result<(Self, String)> {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(BenchError::io(format!("opening {}", log.display())))?;
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(BenchError::io(format!("starting {name}")))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::setup(format!("{name}: no stdout pipe")))?;
        let mut lines = BufReader::new(stdout).lines();
        let found = tokio::time::timeout(timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix(prefix) {
                    return Some(rest.trim().to_owned());
                }
            }
            None
        })
        .await;
        let Ok(Some(rest)) = found else {
            return Err(BenchError::setup(format!(
                "{name} did not print {prefix:?} within {timeout:?} (log: {})",
                log.display()
            )));
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok((
            Self {
                name: name.to_owned(),
                child,
                log: log.to_path_buf(),
            },
            rest,
        ))
    }

    /// The process id while it runs.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The name given at start.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An error if the process has exited, naming its status and log.
    ///
    /// # Errors
    /// The process is gone.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(BenchError::setup(format!(
                "{} exited ({status}); last lines of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 15)
            ))),
            Err(e) => Err(BenchError::io(format!("checking {}", self.name))(e)),
        }
    }

    /// Resident memory of the process in KiB (`VmRSS` of `/proc/PID/status`).
    #[must_use]
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// SIGKILL, then reap.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM (graceful shutdown), then SIGKILL if it is still running after `grace`.
    pub async fn terminate(&mut self, grace: Duration) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        self.kill().await;
    }
}

/// The last `n` lines of a log file (for error messages).
#[must_use]
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (bound and released; the OS does not hand it out again soon).
///
/// # Errors
/// No port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(BenchError::io("finding a free port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(BenchError::io("finding a free port"))
}

/// Polls `url` until it answers `want` (or `deadline` passes); `alive` is checked between polls
/// so a crashed child fails fast.
///
/// # Errors
/// The deadline passed or the child exited.
pub async fn wait_http(
    http: &reqwest::Client,
    url: &str,
    want: u16,
    timeout: Duration,
    proc: &mut Proc,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status().as_u16() == want
        {
            return Ok(());
        }
        proc.check_alive()?;
        if Instant::now() > deadline {
            return Err(BenchError::setup(format!(
                "{} did not answer {want} at {url} within {timeout:?}; last lines of its log:\n{}",
                proc.name,
                tail(&proc.log, 15)
            )));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether this process runs as root (then PostgreSQL's tools must run as `postgres`).
#[must_use]
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}
