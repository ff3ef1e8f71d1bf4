//! End to end over loopback: the `kit-oauth-server` binary + the Kit sandbox + SQLite (and
//! PostgreSQL), driven as a browser would (cookie jar, redirects, the consent form), then the
//! broker API, the proxy, the dashboard, the attacks, the logs and a graceful SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::fs::File;
use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kit_oauth_server::InstallLinks;
use kit_sandbox::{Sandbox, SandboxHandle};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use serde_json::Value;
use support::{form_action, hidden_inputs};

const CLIENT_SECRET: &str = "e2e-client-secret-0123456789";
const ENCRYPTION_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
const ADMIN_KEY: &str = "admin-key-e2e-0123456789";
const ACME_KEY: &str = "acme-key-e2e-0123456789";
const GLOBEX_KEY: &str = "globex-key-e2e-0123456789";
const APP: &str = "e2e-app";
const LINK_SECRET: &str = "e2e-install-link-secret-0123456789";

struct Harness {
    base: String,
    sandbox: SandboxHandle,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Harness {
    async fn start(database_url: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let sandbox = Sandbox::builder()
            .client_id(APP)
            .client_secret(CLIENT_SECRET)
            .redirect_uri(format!("{base}/kit/oauth/callback"))
            // The app's signed install link for its tenant `acme` (a bare `tenant=acme` is
            // refused: anyone could type it).
            .app_authorization_url(format!(
                "{base}/kit/oauth?tenant={}",
                InstallLinks::new(LINK_SECRET.to_owned().into()).sign(
                    "acme",
                    time::OffsetDateTime::now_utc().unix_timestamp() + 3600
                )
            ))
            .rotation(kit_sandbox::Rotation::Strict)
            .spawn()
            .await
            .unwrap();
        let database_url = database_url.unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", dir.path().join("e2e.db").display())
        });
        let log = dir.path().join("server.log");
        let child = Command::new(env!("CARGO_BIN_EXE_kit-oauth-server"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KIT_CLIENT_ID", APP)
            .env("KIT_CLIENT_SECRET", CLIENT_SECRET)
            .env("KIT_REDIRECT_URI", format!("{base}/kit/oauth/callback"))
            .env("KIT_OAUTH_BASE", sandbox.base_url())
            .env(
                "KIT_REDIRECT_ALLOW",
                format!("{}/apps/", sandbox.base_url()),
            )
            .env("DATABASE_URL", &database_url)
            .env("KIT_OAUTH_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env("KIT_OAUTH_INSTALL_LINK_SECRET", LINK_SECRET)
            .env(
                "KIT_OAUTH_API_KEYS",
                format!("{ADMIN_KEY},acme={ACME_KEY},globex={GLOBEX_KEY}"),
            )
            .env("KIT_OAUTH_BIND", format!("127.0.0.1:{port}"))
            .env("KIT_OAUTH_LOG_FORMAT", "json")
            .env("RUST_LOG", "debug,hyper=info,h2=info,rustls=info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        let harness = Self {
            base,
            sandbox,
            child,
            log,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(harness.url("/healthz")).send().await
                && r.status().is_success()
            {
                return harness;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "server did not come up: {}",
            std::fs::read_to_string(&harness.log).unwrap_or_default()
        );
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let mut status = None;
        for _ in 0..150 {
            if let Some(s) = self.child.try_wait().unwrap() {
                status = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let log = std::fs::read_to_string(&self.log).unwrap();
        let status = status.unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("no exit after SIGTERM: {log}")
        });
        assert_eq!(status.code(), Some(0), "SIGTERM must exit 0: {log}");
        log
    }
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// The whole story on one database.
async fn whole_story(database_url: Option<String>) {
    let h = Harness::start(database_url).await;
    let mut secrets: Vec<String> = vec![
        CLIENT_SECRET.into(),
        ENCRYPTION_KEY.into(),
        ADMIN_KEY.into(),
        ACME_KEY.into(),
        GLOBEX_KEY.into(),
    ];

    // --- A creator installs from the App Store, in a browser. ---
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let consent = browser
        .get(h.sandbox.url(&format!("/apps/{APP}/install")))
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), StatusCode::OK);
    let consent = consent.text().await.unwrap();
    let mut form = hidden_inputs(&consent);
    let state = form.iter().find(|(k, _)| k == "state").unwrap().1.clone();
    secrets.push(state);
    form.push(("account".into(), "Alice".into()));
    form.push(("decision".into(), "allow".into()));
    let installed = browser
        .post(h.sandbox.url(&form_action(&consent)))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(installed.status(), StatusCode::OK);
    assert!(installed.url().as_str().contains(&format!("/apps/{APP}")));
    assert!(installed.text().await.unwrap().contains("installed"));

    // --- The app uses the broker API. ---
    let api = reqwest::Client::new();
    let list: Value = api
        .get(h.url("/v1/connections"))
        .header("authorization", bearer(ADMIN_KEY))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connections = list["connections"].as_array().unwrap();
    assert_eq!(connections.len(), 1, "{list}");
    let conn = &connections[0];
    assert_eq!(conn["tenant"], "acme");
    assert_eq!(conn["account_name"], "Alice");
    assert_eq!(conn["state"], "authorized");
    assert!(conn.get("access_token").is_none());
    let id = conn["id"].as_str().unwrap().to_owned();

    let token: Value = api
        .post(h.url(&format!("/v1/connections/{id}/token")))
        .header("authorization", bearer(ACME_KEY))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let first = token["access_token"].as_str().unwrap().to_owned();
    assert!(!first.is_empty());
    assert!(token["expires_at"].is_string());
    secrets.push(first.clone());

    let account = api
        .get(h.url(&format!("/v1/connections/{id}/kit/account")))
        .header("authorization", bearer(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), StatusCode::OK);
    let account: Value = account.json().await.unwrap();
    assert_eq!(account["account"]["name"], "Alice");

    let refreshed: Value = api
        .post(h.url(&format!("/v1/connections/{id}/refresh")))
        .header("authorization", bearer(ADMIN_KEY))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = refreshed["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    secrets.push(second.clone());
    assert_eq!(h.sandbox.stats().refreshes_ok, 1);

    // --- Keys: none, wrong, another tenant's. ---
    let show = h.url(&format!("/v1/connections/{id}"));
    let none = api.get(&show).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized");
    let wrong = api
        .get(&show)
        .header("authorization", bearer("wrong-key-0123456789"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    for path in [
        format!("/v1/connections/{id}"),
        format!("/v1/connections/{id}/kit/account"),
    ] {
        let other = api
            .get(h.url(&path))
            .header("authorization", bearer(GLOBEX_KEY))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let other_token = api
        .post(h.url(&format!("/v1/connections/{id}/token")))
        .header("authorization", bearer(GLOBEX_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(other_token.status(), StatusCode::NOT_FOUND);
    let globex_list: Value = api
        .get(h.url("/v1/connections"))
        .header("authorization", bearer(GLOBEX_KEY))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(globex_list["connections"].as_array().unwrap().len(), 0);
    let acme_show = api
        .get(&show)
        .header("authorization", bearer(ACME_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(acme_show.status(), StatusCode::OK);

    // --- Callback attacks, through HTTP. ---
    let manual = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();
    let evil = manual
        .get(h.url("/kit/oauth?redirect=https://evil.example/apps/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::BAD_REQUEST);
    let lookalike = manual
        .get(h.url(&format!(
            "/kit/oauth?redirect=http://127.0.0.1:{}.evil.example/apps/1",
            h.sandbox.addr().port()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(lookalike.status(), StatusCode::BAD_REQUEST);
    let forged = manual
        .get(h.url("/kit/oauth/callback?code=abc&state=forged-state-value"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("Start the install again")
    );

    let begin = manual
        .get(h.url(&format!(
            "/kit/oauth?redirect={}/apps/{APP}?success=true",
            h.sandbox.base_url()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(begin.status(), StatusCode::FOUND);
    let set_cookie = begin
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let authorize = begin.headers()["location"].to_str().unwrap().to_owned();
    let consent = manual
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = hidden_inputs(&consent);
    form.push(("account".into(), "Bob".into()));
    form.push(("decision".into(), "allow".into()));
    let to_callback = manual
        .post(h.sandbox.url(&form_action(&consent)))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = to_callback.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    let query: Vec<(String, String)> = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    for (_, v) in &query {
        secrets.push(v.clone());
    }
    // Another browser (no cookie) presents the callback: refused, and the install stays
    // pending for its own browser (issue 13.2; `tests/tests/stranger.rs` completes one), so a
    // second try is refused the same way rather than as an unknown state.
    let stranger = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    for _ in 0..2 {
        let foreign = stranger.get(&callback).send().await.unwrap();
        assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    }
    let after: Value = api
        .get(h.url("/v1/connections"))
        .header("authorization", bearer(ADMIN_KEY))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        after["connections"].as_array().unwrap().len(),
        1,
        "nothing stored on failure"
    );

    // --- Dashboard: sign-in, CSRF. ---
    let operator = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap();
    let login_page = operator
        .get(h.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login_page.contains("Admin key"));
    let bad_login = operator
        .post(h.url("/login"))
        .form(&[("key", "not-the-key-0123456789")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_login.status(), StatusCode::UNAUTHORIZED);
    let login = operator
        .post(h.url("/login"))
        .form(&[("key", ADMIN_KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let dashboard = operator
        .get(h.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dashboard.contains("Authorized"), "{dashboard}");
    assert!(dashboard.contains("Alice"));
    let csrf = hidden_inputs(&dashboard)
        .into_iter()
        .find(|(k, _)| k == "csrf")
        .unwrap()
        .1;
    let no_csrf = operator
        .post(h.url(&format!("/connections/{id}/refresh")))
        .form(&[("csrf", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);
    let stranger = reqwest::Client::new()
        .post(h.url(&format!("/connections/{id}/revoke")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        h.sandbox.stats().refreshes_ok,
        1,
        "refused POSTs did nothing"
    );
    let ok = operator
        .post(h.url(&format!("/connections/{id}/refresh")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.sandbox.stats().refreshes_ok, 2);
    // Signing out is recorded in the database, SQLite and PostgreSQL alike (503 if it could
    // not be), and the sign-in form is back.
    let signed_out = operator
        .post(h.url("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    let after = operator
        .get(h.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.contains("Admin key"), "{after}");

    // --- Infrastructure endpoints. ---
    assert_eq!(
        api.get(h.url("/readyz")).send().await.unwrap().status(),
        StatusCode::OK
    );
    let metrics = api
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kit_oauth_http_requests_total"));
    assert!(
        metrics.contains("kit_oauth_connections{state=\"authorized\"} 1"),
        "{metrics}"
    );
    let openapi: Value = api
        .get(h.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(openapi["paths"]["/v1/connections/{id}/token"]["post"].is_object());

    // --- Revoke and remove. ---
    let deleted = api
        .delete(&show)
        .header("authorization", bearer(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = api
        .get(&show)
        .header("authorization", bearer(ADMIN_KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert!(
        h.sandbox
            .grants()
            .iter()
            .all(|g| !g.alive || g.account_name != "Alice")
    );

    // --- Graceful stop, and no secret in any log line. ---
    let log = h.stop().await;
    assert!(log.contains("request_id"), "no request ids in {log}");
    for line in log.lines().filter(|l| l.contains("request finished")) {
        assert!(line.contains("request_id"), "{line}");
    }
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a secret ({} chars) appears in the server log",
            secret.len()
        );
    }
}

/// The PostgreSQL server's admin URL: the variable every suite honours (`tests/src/lib.rs`).
fn postgres_admin_url() -> String {
    std::env::var("KIT_OAUTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn postgres_story() -> Result<Completion, Failed> {
    use sea_orm::ConnectionTrait as _;
    let admin = postgres_admin_url();
    let connected =
        tokio::time::timeout(Duration::from_secs(10), sea_orm::Database::connect(&admin)).await;
    let db = match connected {
        Ok(Ok(db)) => db,
        other => {
            let why = match other {
                Ok(Err(error)) => error.to_string(),
                _ => "timed out".to_owned(),
            };
            let why = format!(
                "PostgreSQL is not reachable at {admin} ({why}): \
                 start it (bash .ci/ensure-postgres) or set KIT_OAUTH_TEST_POSTGRES_URL"
            );
            if support::is_ci() {
                return Err(format!("{why}; required under CI").into());
            }
            return Ok(Completion::ignored_with(why));
        }
    };
    let name = format!("kit_oauth_e2e_{}_{}", std::process::id(), free_port());
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    whole_story(Some(url.to_string())).await;
    let _ = db
        .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await;
    Ok(Completion::Completed)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Its own harness, so that a missing PostgreSQL shows as *ignored, with the reason*, never as
/// a pass.
fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test("sqlite_install_api_proxy_security_and_logs", || {
            runtime().block_on(whole_story(None));
            Ok(())
        }),
        Trial::ignorable_test("postgres_install_api_proxy_security_and_logs", || {
            runtime().block_on(postgres_story())
        }),
    ];
    libtest_mimic::run(&args, trials).exit();
}
