//! The `kit-oauth` binary on real connections: two installs made through the server and the
//! Kit sandbox, then every command that touches them, as a process, on the same SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

// The in-process server harness of the server's own suites.
#[path = "../../server/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};

use serde_json::Value;

/// A second encryption key, for the rotation.
const NEW_KEY: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

struct Cli {
    database: String,
    sandbox_base: String,
    redirect_uri: String,
}

impl Cli {
    fn run(&self, key_ring: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kit-oauth"))
            .env_clear()
            .env("KIT_CLIENT_ID", support::APP)
            .env("KIT_CLIENT_SECRET", support::CLIENT_SECRET)
            .env("KIT_REDIRECT_URI", &self.redirect_uri)
            .env("KIT_OAUTH_BASE", &self.sandbox_base)
            .env("DATABASE_URL", &self.database)
            .env("KIT_OAUTH_ENCRYPTION_KEY", key_ring)
            .args(args)
            .output()
            .unwrap()
    }

    fn json(&self, key_ring: &str, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(key_ring, &all);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_token_refresh_rotate_revoke_and_doctor_on_real_connections() {
    let dir = tempfile::tempdir().unwrap();
    let database = support::sqlite_url(dir.path());
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let server = support::start(
        listener,
        &base,
        &sandbox,
        &database,
        support::Extra::default(),
    )
    .await;
    let ann = support::install(&base, &sandbox, "Ann").await;
    let ben = support::install(&base, &sandbox, "Ben").await;
    let served: Value = reqwest::Client::new()
        .post(format!("{base}/v1/connections/{ann}/token"))
        .bearer_auth(support::API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server.shutdown().await;

    let cli = Cli {
        database,
        sandbox_base: sandbox.base_url().to_owned(),
        redirect_uri: format!("{base}/kit/oauth/callback"),
    };
    let old = support::ENCRYPTION_KEY;

    let list = cli.json(old, &["connections", "list"]);
    let mut names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["account_name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Ann", "Ben"]);
    let show = cli.json(old, &["connections", "show", &ann]);
    assert_eq!(show["account_name"], "Ann");
    assert_eq!(show["state"], "authorized");
    let table = cli.run(old, &["connections", "list"]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("Ann") && table.contains("Ben"), "{table}");

    // The CLI hands out the very token the broker served (nothing was due).
    let token = cli.json(old, &["token", &ann]);
    assert_eq!(token["access_token"], served["access_token"]);
    assert_eq!(sandbox.stats().refreshes_ok, 0);

    // Refresh one, the due ones (none), then all.
    assert_eq!(cli.json(old, &["refresh", &ann])["refreshed"], 1);
    assert_eq!(sandbox.stats().refreshes_ok, 1);
    assert_eq!(cli.json(old, &["refresh", "--due"])["refreshed"], 0);
    assert_eq!(sandbox.stats().refreshes_ok, 1);
    assert_eq!(cli.json(old, &["refresh", "--all"])["refreshed"], 2);
    assert_eq!(sandbox.stats().refreshes_ok, 3);
    let after = cli.json(old, &["token", &ann]);
    assert_ne!(after["access_token"], served["access_token"]);

    // Rotate to a new key; afterwards the new key alone reads every row.
    // A bare key has the id `default`.
    let ring = format!("new:{NEW_KEY},default:{old}");
    let rotated = cli.json(&ring, &["keys", "rotate"]);
    assert_eq!(rotated["current_key"], "new");
    assert_eq!(rotated["reencrypted"], 2, "both connections: {rotated}");
    assert_eq!(
        cli.json(&ring, &["keys", "rotate"])["reencrypted"],
        0,
        "resumable: nothing left"
    );
    let new_only = format!("new:{NEW_KEY}");
    assert_eq!(
        cli.json(&new_only, &["token", &ann])["access_token"],
        after["access_token"]
    );

    // Revoke Ben at Kit.
    assert_eq!(
        cli.json(&new_only, &["revoke", &ben])["revoked"],
        ben.as_str()
    );
    let ben_grants: Vec<bool> = sandbox
        .grants()
        .iter()
        .filter(|g| g.account_name == "Ben")
        .map(|g| g.alive)
        .collect();
    assert_eq!(ben_grants, [false]);
    assert_eq!(
        cli.json(&new_only, &["connections", "show", &ben])["state"],
        "unauthorized"
    );
    let out = cli.run(&new_only, &["token", &ben]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Everything is in order: doctor passes.
    let report = cli.json(&new_only, &["doctor"]);
    assert_eq!(report["ok"], true, "{report}");
}
