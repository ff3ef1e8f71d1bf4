//! With no configuration the binary is the demo: one line with the URL, a working dashboard
//! with the sandbox App Store link, a sandbox in Doorkeeper's default rotation (`revoke-on-use`),
//! a 0600 key file, and SIGTERM exits 0.
#![cfg(feature = "demo")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

/// The demo process, killed if the test fails before it is stopped (a failed assertion must not
/// leave a server running).
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configuration_runs_the_demo_and_prints_one_url() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_kit-oauth-server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KIT_OAUTH_BIND", "127.0.0.1:0")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut demo.0;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
    assert!(
        page.contains("Install from the Kit App Store (sandbox)"),
        "{page}"
    );
    assert!(page.contains("/apps/kit-oauth-demo/install"));
    // The embedded sandbox rotates refresh tokens as Doorkeeper does by default, as the README
    // promises: asked of the sandbox the page links to, through its control API.
    let install_link = page
        .split("href=\"")
        .filter_map(|rest| rest.split('"').next())
        .find(|href| href.ends_with("/apps/kit-oauth-demo/install"))
        .unwrap_or_else(|| panic!("no App Store link in {page}"));
    let sandbox = install_link.trim_end_matches("/apps/kit-oauth-demo/install");
    let config: serde_json::Value = reqwest::get(format!("{sandbox}/_sandbox/config"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["client_id"], "kit-oauth-demo", "{config}");
    assert_eq!(config["rotation"], "revoke-on-use", "{config}");
    let key = dir.path().join(".kit-oauth/encryption.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}
