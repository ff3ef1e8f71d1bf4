//! Demo mode: a local Kit sandbox, a SQLite file and a generated key under `./.kit-oauth/`, and
//! the server, wired so that a person can click through a whole install in a browser.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kit_oauth::{KitOAuthConfig, vars};
use kit_sandbox::{Sandbox, SandboxHandle};
use rand::RngCore as _;
use tokio::net::TcpListener;

use crate::DemoInfo;
use crate::app::StartError;

/// The sandbox App Store's id for the demo app.
pub const DEMO_APP_ID: &str = "kit-oauth-demo";
/// Access-token lifetime in the demo: short, so refreshes happen while a person watches.
pub const DEMO_TOKEN_TTL_SECS: u64 = 120;

/// Everything the demo prepared.
pub struct Demo {
    /// The library configuration pointing at the sandbox.
    pub library: KitOAuthConfig,
    /// The server's listener.
    pub listener: TcpListener,
    /// The embedded sandbox.
    pub sandbox: SandboxHandle,
    /// What the dashboard shows.
    pub info: DemoInfo,
    /// The URL to open.
    pub url: String,
}

fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    STANDARD.encode(buf)
}

fn random_key() -> String {
    let mut buf = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    format!("demo_{}", hex::encode(buf))
}

/// Reads the demo's encryption key, or generates it (mode 0600) on first run.
///
/// # Errors
/// When the file cannot be read or written.
pub fn encryption_key(dir: &Path) -> Result<String, StartError> {
    let path = dir.join("encryption.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    let key = random_b64(32);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|e| StartError::Failed(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(key.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| StartError::Failed(format!("cannot write {}: {e}", path.display())))?;
    Ok(key)
}

/// Prepares the demo in `dir`, listening on `bind` (or a free port when `bind` is taken and
/// `bind_is_default`).
///
/// The database starts empty on every run: the sandbox is in memory, so grants from an earlier
/// run no longer exist anywhere.
///
/// # Errors
/// [`StartError`] when the directory, the listener or the sandbox cannot be set up.
pub async fn prepare(
    dir: &Path,
    bind: SocketAddr,
    bind_is_default: bool,
) -> Result<Demo, StartError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StartError::Failed(format!("cannot create {}: {e}", dir.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    let dir: PathBuf = std::fs::canonicalize(dir)
        .map_err(|e| StartError::Failed(format!("cannot resolve {}: {e}", dir.display())))?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("kit-oauth.db{suffix}")));
    }
    let key = encryption_key(&dir)?;
    let listener = match TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(_) if bind_is_default => TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| StartError::Failed(format!("cannot listen on 127.0.0.1: {e}")))?,
        Err(e) => {
            return Err(StartError::Failed(format!(
                "KIT_OAUTH_BIND: cannot listen on {bind}: {e}"
            )));
        }
    };
    let local = listener
        .local_addr()
        .map_err(|e| StartError::Failed(format!("cannot read the listen address: {e}")))?;
    let host = if local.ip().is_unspecified() {
        format!("127.0.0.1:{}", local.port())
    } else {
        local.to_string()
    };
    let base = format!("http://{host}");
    let client_secret = random_key();
    let sandbox = Sandbox::builder()
        .client_id(DEMO_APP_ID)
        .client_secret(client_secret.clone())
        .redirect_uri(format!("{base}/kit/oauth/callback"))
        .app_authorization_url(format!("{base}/kit/oauth"))
        .access_ttl(DEMO_TOKEN_TTL_SECS)
        .refresh_access_ttl(DEMO_TOKEN_TTL_SECS)
        .app_name("kit-oauth demo")
        .rotation(kit_sandbox::Rotation::RevokeOnUse)
        .spawn()
        .await
        .map_err(|e| StartError::Failed(format!("cannot start the Kit sandbox: {e}")))?;
    let mut values = HashMap::new();
    values.insert(vars::CLIENT_ID, DEMO_APP_ID.to_owned());
    values.insert(vars::CLIENT_SECRET, client_secret);
    values.insert(vars::REDIRECT_URI, format!("{base}/kit/oauth/callback"));
    values.insert(vars::OAUTH_BASE, sandbox.base_url().to_owned());
    values.insert(
        vars::REDIRECT_ALLOW,
        format!("{}/apps/", sandbox.base_url()),
    );
    values.insert(
        vars::DATABASE_URL,
        format!("sqlite://{}?mode=rwc", dir.join("kit-oauth.db").display()),
    );
    values.insert(vars::ENCRYPTION_KEY, key);
    let library = KitOAuthConfig::from_lookup(|name| values.get(name).cloned())?;
    let info = DemoInfo {
        app_store_install_url: sandbox.url(&format!("/apps/{DEMO_APP_ID}/install")),
        sandbox_url: sandbox.base_url().to_owned(),
        api_key: random_key(),
    };
    Ok(Demo {
        library,
        listener,
        sandbox,
        info,
        url: format!("{base}/"),
    })
}
