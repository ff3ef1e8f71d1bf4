//! The `kit-oauth` binary as a process: exit codes 0/1/2, JSON output, a real SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

const KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

fn kit_oauth(db: &str, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kit-oauth"));
    cmd.env_clear()
        .env("KIT_CLIENT_ID", "app")
        .env("KIT_REDIRECT_URI", "https://example.com/kit/oauth/callback")
        // Nothing listens on port 9 of loopback: the token endpoint is unreachable.
        .env("KIT_OAUTH_BASE", "http://127.0.0.1:9")
        .env("KIT_OAUTH_ENCRYPTION_KEY", KEY)
        .env("DATABASE_URL", db);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.args(args).output().unwrap()
}

#[test]
fn migrate_list_rotate_doctor_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());

    let out = kit_oauth(&db, &[], &["migrate"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let out = kit_oauth(&db, &[], &["--json", "connections", "list"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list, serde_json::json!([]));

    let out = kit_oauth(&db, &[], &["token", "no-such-connection"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = kit_oauth(&db, &[], &["token", "not a valid id"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = kit_oauth(&db, &[], &["--json", "keys", "rotate"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let rotated: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rotated["reencrypted"], 0);

    let out = kit_oauth(&db, &[], &["--json", "doctor"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["check"].as_str().unwrap())
        .collect();
    assert_eq!(failed, vec!["token endpoint"], "{report}");

    let out = kit_oauth(&db, &[("KIT_TOKEN_BODY", "xml")], &["connections", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("KIT_TOKEN_BODY"));

    let out = kit_oauth(&db, &[], &["refresh"]);
    assert_eq!(out.status.code(), Some(2));
}
