//! Bad configuration stops the binary with one line naming the variable and exit code 2.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const VARS: [&str; 23] = [
    "KIT_OAUTH_INSTALL_LINK_SECRET",
    "KIT_CLIENT_ID",
    "KIT_CLIENT_SECRET",
    "KIT_REDIRECT_URI",
    "KIT_OAUTH_BASE",
    "KIT_AUTHORIZE_URL",
    "KIT_TOKEN_URL",
    "KIT_REVOKE_URL",
    "KIT_TOKEN_BODY",
    "KIT_REDIRECT_ALLOW",
    "DATABASE_URL",
    "KIT_OAUTH_ENCRYPTION_KEY",
    "KIT_OAUTH_API_KEYS",
    "KIT_OAUTH_ADMIN_KEY",
    "KIT_OAUTH_BIND",
    "KIT_OAUTH_WEBHOOK_URL",
    "KIT_OAUTH_WEBHOOK_SECRET",
    "KIT_OAUTH_LOG_FORMAT",
    "KIT_OAUTH_USER_SIGNING_SECRET",
    "KIT_OAUTH_REFRESH_INTERVAL",
    "KIT_OAUTH_REFRESH_RATE",
    "KIT_OAUTH_TRUSTED_PROXIES",
    "KIT_OAUTH_KIT_RATE_LIMIT",
];

const KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn good() -> Vec<(&'static str, String)> {
    vec![
        ("KIT_CLIENT_ID", "app".into()),
        (
            "KIT_REDIRECT_URI",
            "https://example.com/kit/oauth/callback".into(),
        ),
        ("KIT_OAUTH_ENCRYPTION_KEY", KEY.into()),
        ("KIT_OAUTH_API_KEYS", "an-api-key-of-some-length".into()),
        ("DATABASE_URL", "sqlite::memory:".into()),
    ]
}

fn run(env: &[(&str, String)]) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kit-oauth-server"));
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.env_remove("RUST_BACKTRACE").env("RUST_BACKTRACE", "1");
    cmd.env(
        "KIT_OAUTH_DEMO_DIR",
        std::env::temp_dir().join("kit-oauth-bad-config-never-used"),
    );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn with(overrides: &[(&'static str, &str)], removed: &[&str]) -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = good()
        .into_iter()
        .filter(|(k, _)| !removed.contains(k) && !overrides.iter().any(|(o, _)| o == k))
        .collect();
    env.extend(overrides.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

#[test]
fn each_missing_or_malformed_variable_is_one_line_and_exit_2() {
    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (with(&[], &["KIT_CLIENT_ID"]), "KIT_CLIENT_ID"),
        (with(&[], &["KIT_REDIRECT_URI"]), "KIT_REDIRECT_URI"),
        (
            with(&[], &["KIT_OAUTH_ENCRYPTION_KEY"]),
            "KIT_OAUTH_ENCRYPTION_KEY",
        ),
        (with(&[], &["KIT_OAUTH_API_KEYS"]), "KIT_OAUTH_API_KEYS"),
        (
            with(&[("KIT_CLIENT_ID", "has space")], &[]),
            "KIT_CLIENT_ID",
        ),
        (
            with(&[("KIT_REDIRECT_URI", "not a url")], &[]),
            "KIT_REDIRECT_URI",
        ),
        (
            with(&[("KIT_OAUTH_BASE", "ftp://x")], &[]),
            "KIT_OAUTH_BASE",
        ),
        (
            with(&[("KIT_AUTHORIZE_URL", "nope")], &[]),
            "KIT_AUTHORIZE_URL",
        ),
        (with(&[("KIT_TOKEN_URL", "nope")], &[]), "KIT_TOKEN_URL"),
        (with(&[("KIT_REVOKE_URL", "nope")], &[]), "KIT_REVOKE_URL"),
        (with(&[("KIT_TOKEN_BODY", "xml")], &[]), "KIT_TOKEN_BODY"),
        (
            with(&[("KIT_REDIRECT_ALLOW", "evil")], &[]),
            "KIT_REDIRECT_ALLOW",
        ),
        (with(&[("DATABASE_URL", "mysql://db")], &[]), "DATABASE_URL"),
        (
            with(&[("KIT_OAUTH_ENCRYPTION_KEY", "not-base64!")], &[]),
            "KIT_OAUTH_ENCRYPTION_KEY",
        ),
        (
            with(&[("KIT_OAUTH_API_KEYS", "short")], &[]),
            "KIT_OAUTH_API_KEYS",
        ),
        (
            with(&[("KIT_OAUTH_ADMIN_KEY", "short")], &[]),
            "KIT_OAUTH_ADMIN_KEY",
        ),
        (
            with(&[("KIT_OAUTH_BIND", "localhost")], &[]),
            "KIT_OAUTH_BIND",
        ),
        (
            with(&[("KIT_OAUTH_LOG_FORMAT", "xml")], &[]),
            "KIT_OAUTH_LOG_FORMAT",
        ),
        (
            with(
                &[("KIT_OAUTH_WEBHOOK_URL", "https://hooks.example.com/kit")],
                &[],
            ),
            "KIT_OAUTH_WEBHOOK_SECRET",
        ),
        (
            with(
                &[
                    ("KIT_OAUTH_WEBHOOK_URL", "not a url"),
                    ("KIT_OAUTH_WEBHOOK_SECRET", "a-long-enough-secret"),
                ],
                &[],
            ),
            "KIT_OAUTH_WEBHOOK_URL",
        ),
        (
            with(&[("KIT_OAUTH_USER_SIGNING_SECRET", "short")], &[]),
            "KIT_OAUTH_USER_SIGNING_SECRET",
        ),
        (
            with(&[("KIT_OAUTH_REFRESH_INTERVAL", "5 minutes")], &[]),
            "KIT_OAUTH_REFRESH_INTERVAL",
        ),
        (
            with(&[("KIT_OAUTH_REFRESH_RATE", "0")], &[]),
            "KIT_OAUTH_REFRESH_RATE",
        ),
        (
            with(
                &[("KIT_OAUTH_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local")],
                &[],
            ),
            "KIT_OAUTH_TRUSTED_PROXIES",
        ),
        (
            with(&[("KIT_OAUTH_KIT_RATE_LIMIT", "601")], &[]),
            "KIT_OAUTH_KIT_RATE_LIMIT",
        ),
    ];
    assert_eq!(cases.len(), 25);
    for (env, variable) in cases {
        let (code, stdout, stderr) = run(&env);
        assert_eq!(code, Some(2), "{variable}: stdout={stdout} stderr={stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{variable}: not one line: {stderr}");
        assert!(
            lines[0].contains(variable),
            "{variable} not named in {:?}",
            lines[0]
        );
        assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
        assert!(
            !stderr.contains("an-api-key-of-some-length"),
            "a key leaked: {stderr}"
        );
    }
}

#[test]
fn a_bad_flag_is_bad_usage() {
    let (code, _, _) = run(&[("KIT_CLIENT_ID", "app".into())]);
    assert_eq!(code, Some(2));
    let out = Command::new(env!("CARGO_BIN_EXE_kit-oauth-server"))
        .arg("--no-such-flag")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// A broker built without the demo (`--no-default-features`) refuses `--demo` with one line
/// and exit code 2, and an empty configuration names the first missing variable instead of
/// starting a fake Kit. CI runs this with `cargo test -p kit-oauth-server --no-default-features
/// --test bad_config`.
#[cfg(not(feature = "demo"))]
#[test]
fn without_the_demo_feature_there_is_no_demo() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kit-oauth-server"));
    for var in VARS {
        cmd.env_remove(var);
    }
    cmd.env(
        "KIT_OAUTH_DEMO_DIR",
        std::env::temp_dir().join("kit-oauth-no-demo-never-used"),
    );
    let mut child = cmd
        .arg("--demo")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A build with the demo would start it and keep running: stop it and fail.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("--demo kept running: this build has the demo");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("built without the demo"), "{stderr}");
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("KIT_CLIENT_ID"), "{stderr}");
}
