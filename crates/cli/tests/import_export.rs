//! `kit-oauth import`, `export` and `remove --force` as processes, on SQLite files, against the
//! Kit sandbox over loopback. The grants come from an app's own OAuth (the http adapter alone),
//! and every step counts what reached Kit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../server/tests/hand_written/mod.rs"]
mod hand_written;
#[path = "../../server/tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use kit_sandbox::{Fault, FaultEndpoint, FaultKind, SandboxHandle};
use serde_json::{Value, json};

struct Cli {
    database: String,
    sandbox_base: String,
    redirect_uri: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kit-oauth"))
            .env_clear()
            .env("KIT_CLIENT_ID", support::APP)
            .env("KIT_CLIENT_SECRET", support::CLIENT_SECRET)
            .env("KIT_REDIRECT_URI", &self.redirect_uri)
            .env("KIT_OAUTH_BASE", &self.sandbox_base)
            .env("DATABASE_URL", &self.database)
            .env("KIT_OAUTH_ENCRYPTION_KEY", support::ENCRYPTION_KEY)
            .args(args)
            .output()
            .unwrap()
    }

    /// `--json ARGS`, expecting exit code `code`.
    fn json(&self, code: i32, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
    }

    fn on(&self, database: String) -> Self {
        Self {
            database,
            sandbox_base: self.sandbox_base.clone(),
            redirect_uri: self.redirect_uri.clone(),
        }
    }
}

fn kit_calls(sandbox: &SandboxHandle, endpoint: &str) -> u64 {
    sandbox.stats().requests.get(endpoint).copied().unwrap_or(0)
}

fn write(path: &Path, lines: &[String]) -> String {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_is_checked_resumable_refuses_spent_tokens_and_round_trips_through_export() {
    let dir = tempfile::tempdir().unwrap();
    let (_listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let redirect_uri = format!("{base}/kit/oauth/callback");
    let app = |name: &'static str| {
        let sandbox = &sandbox;
        let redirect_uri = redirect_uri.clone();
        async move {
            hand_written::oauth(
                sandbox,
                support::APP,
                support::CLIENT_SECRET,
                &redirect_uri,
                name,
            )
            .await
        }
    };
    let ann = app("Ann").await;
    let ben = app("Ben").await;
    let cli = Cli {
        database: support::sqlite_url(dir.path()),
        sandbox_base: sandbox.base_url().to_owned(),
        redirect_uri: redirect_uri.clone(),
    };
    let in_a_day = (sandbox.now() + 86_400).to_string();
    let file = write(
        &dir.path().join("tokens.jsonl"),
        &[
            json!({"refresh_token": ann.refresh, "access_token": ann.access, "expires_at": in_a_day})
                .to_string(),
            json!({"refresh_token": ben.refresh}).to_string(),
            json!({"refresh_token": "never-issued-by-kit"}).to_string(),
            "{not json".to_owned(),
        ],
    );
    let token_calls = kit_calls(&sandbox, "token");

    // A dry run: the access token identifies Ann; nothing is refreshed, stored or recorded.
    let checked = cli.json(3, &["import", "--dry-run", &file]);
    assert_eq!(checked["checked"], 1, "{checked}");
    assert_eq!(checked["needs_refresh"], 2, "{checked}");
    assert_eq!(checked["retry_later"].as_array().unwrap().len(), 1);
    assert_eq!(
        kit_calls(&sandbox, "token"),
        token_calls,
        "a dry run spends nothing"
    );
    assert!(!dir.path().join("tokens.jsonl.progress").exists());
    assert_eq!(cli.json(0, &["connections", "list"]), json!([]));

    // The import: Ann without a refresh, Ben with exactly one, the stranger refused by Kit,
    // the malformed line left for a rerun (exit 3: finished, not everything done).
    let done = cli.json(3, &["import", &file]);
    assert_eq!(done["imported"], 2, "{done}");
    assert_eq!(done["refused"][0]["line"], 3, "{done}");
    assert!(
        done["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_grant")
    );
    assert_eq!(done["retry_later"][0]["line"], 4, "{done}");
    assert_eq!(
        kit_calls(&sandbox, "token"),
        token_calls + 2,
        "Ben + the stranger"
    );
    assert_eq!(sandbox.stats().refreshes_ok, 1);
    let progress = std::fs::read_to_string(dir.path().join("tokens.jsonl.progress")).unwrap();
    let mut lines: Vec<&str> = progress.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["1", "2", "3"]);

    // A rerun resumes: only the malformed line is tried again; nothing reaches Kit.
    let account_calls = kit_calls(&sandbox, "account");
    let rerun = cli.json(3, &["import", &file]);
    assert_eq!(rerun["skipped_done_before"], 3, "{rerun}");
    assert_eq!(rerun["imported"], 0);
    assert_eq!(kit_calls(&sandbox, "token"), token_calls + 2);
    assert_eq!(kit_calls(&sandbox, "account"), account_calls);

    // Ben's old refresh token was spent by the import: refused without a call (CSV this time).
    let csv = write(
        &dir.path().join("again.csv"),
        &[
            "tenant,refresh_token".to_owned(),
            format!(",{}", ben.refresh),
        ],
    );
    let spent = cli.json(3, &["import", &csv]);
    assert!(
        spent["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("already spent"),
        "{spent}"
    );
    assert_eq!(kit_calls(&sandbox, "token"), token_calls + 2);
    assert_eq!(kit_calls(&sandbox, "account"), account_calls);

    // Listed, with the import in each connection's events.
    let listed = cli.json(0, &["connections", "list", "--state", "authorized"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(
        cli.json(0, &["connections", "list", "--state", "unauthorized"]),
        json!([])
    );
    assert_eq!(
        cli.run(&["connections", "list", "--state", "odd"])
            .status
            .code(),
        Some(2)
    );
    let ann_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["account_name"] == "Ann")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = cli.json(0, &["connections", "show", &ann_id]);
    assert_eq!(shown["events"][0]["kind"], "authorized", "{shown}");
    let table = String::from_utf8(cli.run(&["connections", "show", &ann_id]).stdout).unwrap();
    assert!(
        table.contains("authorized") && table.contains("Ann"),
        "{table}"
    );

    // Ann's pair again, into another tenant: her connection holds that refresh token, so the
    // import is refused — one account lookup to identify her, no refresh, nothing stored — and
    // the summary names her connection.
    let token_before = kit_calls(&sandbox, "token");
    let account_before = kit_calls(&sandbox, "account");
    let elsewhere = write(
        &dir.path().join("elsewhere.csv"),
        &[
            "tenant,refresh_token,access_token".to_owned(),
            format!("shop-b,{},{}", ann.refresh, ann.access),
        ],
    );
    // The dry run already says so, in the table's own words (and records nothing).
    let checked = cli.run(&["import", "--dry-run", &elsewhere]);
    assert_eq!(checked.status.code(), Some(3), "{checked:?}");
    let text = String::from_utf8(checked.stdout).unwrap();
    assert!(
        text.contains(&format!(
            "line 2: refused: this refresh token is held by connection {ann_id}"
        )),
        "{text}"
    );
    let held = cli.json(3, &["import", &elsewhere]);
    assert_eq!(held["imported"], 0, "{held}");
    let reason = held["refused"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("held by connection") && reason.contains(&ann_id),
        "{held}"
    );
    assert_eq!(kit_calls(&sandbox, "token"), token_before);
    assert_eq!(
        kit_calls(&sandbox, "account"),
        account_before + 2,
        "dry run + import"
    );
    let again = cli.run(&["import", &elsewhere]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "done in the earlier run: {again:?}"
    );
    assert_eq!(kit_calls(&sandbox, "account"), account_before + 2);
    assert_eq!(
        cli.json(0, &["connections", "list"])
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing stored"
    );

    // Export: refused without the flag (nothing written), then 0600 and importable.
    let export = dir.path().join("export.jsonl");
    let export_s = export.display().to_string();
    let refused = cli.run(&["export", "--to", &export_s]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("WARNING"));
    assert!(!export.exists());
    let exported = cli.json(
        0,
        &[
            "export",
            "--to",
            &export_s,
            "--i-understand-this-writes-secrets",
        ],
    );
    assert_eq!(exported["exported"], 2);
    let mode = std::fs::metadata(&export).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = cli.run(&[
        "export",
        "--to",
        &export_s,
        "--i-understand-this-writes-secrets",
    ]);
    assert_eq!(again.status.code(), Some(1), "never overwrites");

    // Round trip into a fresh database: both grants arrive, with no refresh (their access
    // tokens work), and serve the same access tokens.
    let other = cli.on(format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("other.db").display()
    ));
    let before = kit_calls(&sandbox, "token");
    let moved = other.json(0, &["import", &export_s]);
    assert_eq!(moved["imported"], 2, "{moved}");
    assert_eq!(kit_calls(&sandbox, "token"), before);
    let moved_list = other.json(0, &["connections", "list"]);
    let moved_ann = moved_list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["account_name"] == "Ann")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        other.json(0, &["token", &moved_ann])["access_token"],
        cli.json(0, &["token", &ann_id])["access_token"]
    );
    assert_eq!(kit_calls(&sandbox, "token"), before);

    // Removal when Kit refuses to revoke: kept without --force, removed with it.
    sandbox
        .add_fault(
            Fault::new(
                FaultEndpoint::Revoke,
                FaultKind::Status {
                    status: 503,
                    body: None,
                    retry_after: None,
                },
            )
            .times(2),
        )
        .unwrap();
    let kept = cli.run(&["remove", &ann_id]);
    assert_eq!(kept.status.code(), Some(1), "{kept:?}");
    assert!(String::from_utf8_lossy(&kept.stderr).contains("kept"));
    assert_eq!(
        cli.json(0, &["connections", "show", &ann_id])["state"],
        "authorized"
    );
    let forced = cli.json(0, &["remove", "--force", &ann_id]);
    assert_eq!(forced["revoked_at_kit"], false, "{forced}");
    assert_eq!(
        cli.run(&["connections", "show", &ann_id]).status.code(),
        Some(1)
    );
    assert_eq!(kit_calls(&sandbox, "revoke"), 2);
    assert_eq!(sandbox.stats().revocations, 0);
}
