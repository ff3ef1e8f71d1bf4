//! The server started in-process through `kit_oauth_server::app::start` (the same function the
//! binary calls after reading its configuration), against a real Kit sandbox over loopback and
//! a real SQLite file, for tests that need what a process cannot offer: an injected clock, two
//! instances sharing one database, a webhook receiver in the test.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

mod broker_api;

pub use broker_api::BrokerApi;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kit_oauth::core::Clock;
use kit_oauth::{KitOAuthConfig, RefresherConfig, vars};
use kit_oauth_server::app::{self, RunConfig, Running};
use kit_oauth_server::webhook::WebhookConfig;
use kit_oauth_server::{
    ApiKeys, DashboardAccess, InstallLinks, RouteLimits, SignIn, SignInLimits, TrustedProxies,
};
use kit_sandbox::{Sandbox, SandboxBuilder, SandboxHandle};
use reqwest::redirect::Policy;
use tokio::net::TcpListener;

pub const APP: &str = "ops-app";
pub const CLIENT_SECRET: &str = "ops-client-secret-0123456789";
pub const ENCRYPTION_KEY: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";
pub const API_KEY: &str = "ops-api-key-0123456789";
/// The install-link secret every test broker accepts (unless `Extra::no_install_links`).
pub const LINK_SECRET: &str = "ops-install-link-secret-0123456789";

/// Whether this is CI (`CI=true` or `CI=1`), where a missing service fails a suite.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        v == "1" || v.eq_ignore_ascii_case("true")
    })
}

/// A listener on a free loopback port, and its base URL.
pub async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// A sandbox whose App Store sends installs to the server at `base`.
pub async fn sandbox(base: &str) -> SandboxHandle {
    sandbox_builder(base).spawn().await.unwrap()
}

/// [`sandbox`]'s settings, for a test that changes one (the rate limit, its window).
pub fn sandbox_builder(base: &str) -> SandboxBuilder {
    Sandbox::builder()
        .client_id(APP)
        .client_secret(CLIENT_SECRET)
        .redirect_uri(format!("{base}/kit/oauth/callback"))
        .app_authorization_url(format!("{base}/kit/oauth"))
        .rotation(kit_sandbox::Rotation::Strict)
}

pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("ops.db").display())
}

/// What varies between the tests.
#[derive(Default)]
pub struct Extra {
    pub webhook: Option<WebhookConfig>,
    pub clock: Option<Arc<dyn Clock>>,
    pub sign_in: Option<SignIn>,
    /// The API keys (default: `API_KEY`, unscoped).
    pub api_keys: Option<ApiKeys>,
    /// The background refresher's pace (default: the library's).
    pub refresher: Option<RefresherConfig>,
    /// The dashboard's access (default: off).
    pub dashboard: Option<DashboardAccess>,
    /// The dashboard sign-in throttle (default: the server's).
    pub sign_in_limits: Option<SignInLimits>,
    /// Reverse proxies whose `X-Forwarded-For` is believed (default: none).
    pub trusted_proxies: Option<TrustedProxies>,
    /// Every route's time limit (default: the server's).
    pub route_limits: Option<RouteLimits>,
    /// Start without an install-link secret (every `tenant` parameter is then refused).
    pub no_install_links: bool,
    /// The per-connection Kit budget (default: Kit's 600 per 60 s).
    pub kit_rate_budget: Option<kit_oauth::http::kit_api::RateBudget>,
    /// The dashboard's reload period (default: the server's; `Some(None)`: never).
    pub dashboard_reload: Option<Option<Duration>>,
}

/// The `tenant` parameter of an install link for `tenant`, signed with [`LINK_SECRET`].
pub fn tenant_link(tenant: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expires = i64::try_from(now).unwrap() + 600;
    InstallLinks::new(LINK_SECRET.to_owned().into()).sign(tenant, expires)
}

/// Starts a server on `listener` (base URL `base`) against `sandbox` and `database_url`.
pub async fn start(
    listener: TcpListener,
    base: &str,
    sandbox: &SandboxHandle,
    database_url: &str,
    extra: Extra,
) -> Running {
    let mut values = HashMap::new();
    values.insert(vars::CLIENT_ID, APP.to_owned());
    values.insert(vars::CLIENT_SECRET, CLIENT_SECRET.to_owned());
    values.insert(vars::REDIRECT_URI, format!("{base}/kit/oauth/callback"));
    values.insert(vars::OAUTH_BASE, sandbox.base_url().to_owned());
    values.insert(
        vars::REDIRECT_ALLOW,
        format!("{}/apps/", sandbox.base_url()),
    );
    values.insert(vars::DATABASE_URL, database_url.to_owned());
    values.insert(vars::ENCRYPTION_KEY, ENCRYPTION_KEY.to_owned());
    let library = KitOAuthConfig::from_lookup(|name| values.get(name).cloned()).unwrap();
    app::start(RunConfig {
        library,
        listener,
        api_keys: extra
            .api_keys
            .unwrap_or_else(|| ApiKeys::none().with_key(API_KEY)),
        dashboard: extra.dashboard.unwrap_or(DashboardAccess::Disabled),
        webhook: extra.webhook,
        demo: None,
        refresher: extra.refresher.unwrap_or_default(),
        shutdown_grace: Duration::from_secs(10),
        clock: extra.clock,
        sign_in: extra.sign_in,
        sign_in_limits: extra.sign_in_limits.unwrap_or_default(),
        trusted_proxies: extra.trusted_proxies.unwrap_or_default(),
        route_limits: extra.route_limits.unwrap_or_default(),
        kit_rate_budget: extra.kit_rate_budget,
        dashboard_reload: extra
            .dashboard_reload
            .unwrap_or(Some(kit_oauth_server::DEFAULT_DASHBOARD_RELOAD)),
        install_links: (!extra.no_install_links)
            .then(|| InstallLinks::new(LINK_SECRET.to_owned().into())),
    })
    .await
    .unwrap()
}

/// One broker started in-process beside its own sandbox and SQLite file (kept in `dir`, so a
/// second instance can open the same database).
pub struct Broker {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub sandbox: SandboxHandle,
    pub running: Running,
}

impl Broker {
    pub async fn start(extra: Extra) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (listener, base) = listener().await;
        let sandbox = sandbox(&base).await;
        let running = start(listener, &base, &sandbox, &sqlite_url(dir.path()), extra).await;
        Self {
            dir,
            base,
            sandbox,
            running,
        }
    }
}

/// A browser: cookie jar, no automatic redirects (each hop is followed by hand).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\"")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split("name=\"").nth(1)?.split('"').next()?;
            let value = rest.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.replace("&amp;", "&")))
        })
        .collect()
}

pub fn form_action(html: &str) -> String {
    html.split("<form")
        .nth(1)
        .and_then(|f| f.split("action=\"").nth(1))
        .and_then(|a| a.split('"').next())
        .unwrap()
        .to_owned()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on a {} answer", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

/// Follows the install as a browser would, from the URL Kit's App Store opens on the server
/// (`begin`, i.e. `/kit/oauth?redirect=…`) through the consent form (Allow, as `account`), and
/// stops right before the callback: returns the callback URL Kit redirected to.
pub async fn until_callback(
    browser: &reqwest::Client,
    sandbox: &SandboxHandle,
    begin: &str,
    account: &str,
) -> String {
    let started = browser.get(begin).send().await.unwrap();
    assert_eq!(
        started.status(),
        reqwest::StatusCode::FOUND,
        "{}",
        started.text().await.unwrap_or_default()
    );
    let consent = browser
        .get(location(&started))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = hidden_inputs(&consent);
    form.push(("account".into(), account.into()));
    form.push(("decision".into(), "allow".into()));
    let answered = browser
        .post(sandbox.url(&form_action(&consent)))
        .form(&form)
        .send()
        .await
        .unwrap();
    location(&answered)
}

/// The URL the sandbox App Store opens on the server at `base`.
pub fn begin_url(base: &str, sandbox: &SandboxHandle) -> String {
    format!(
        "{base}/kit/oauth?redirect={}/apps/{APP}?success=true",
        sandbox.base_url()
    )
}

/// A whole install; returns the connection id.
pub async fn install(base: &str, sandbox: &SandboxHandle, account: &str) -> String {
    install_from(base, sandbox, &begin_url(base, sandbox), account).await
}

/// A whole install starting at `begin` (e.g. with a signed `user`); returns the connection id.
pub async fn install_from(
    base: &str,
    sandbox: &SandboxHandle,
    begin: &str,
    account: &str,
) -> String {
    let browser = browser();
    let callback = until_callback(&browser, sandbox, begin, account).await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), reqwest::StatusCode::FOUND);
    assert!(location(&done).starts_with(&format!("{}/apps/{APP}", sandbox.base_url())));
    connection_id(base, account).await
}

/// The id of the connection of Kit account `account`.
pub async fn connection_id(base: &str, account: &str) -> String {
    let list = BrokerApi::new(base, API_KEY).list("").await.body;
    list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["account_name"] == account)
        .unwrap_or_else(|| panic!("no connection for {account}: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `/metrics` as text.
pub async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one sample line of `/metrics` (`name{labels}`), 0 when absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}
