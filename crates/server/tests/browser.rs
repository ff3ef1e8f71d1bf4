//! A real browser clicks through the demo install, exactly as a person would: the demo page →
//! "Install from the Kit App Store (sandbox)" → the sandbox App Store → the server's
//! `/kit/oauth` → the sandbox consent page (Allow) → the callback → the sandbox's "installed"
//! page → the dashboard, which must show the connection `Authorized`.
//!
//! A second trial opens the dashboard over a seeded fleet of 10,000 connections (the list, a
//! connection's timeline, the overview chart), and every page both trials visit is checked by
//! axe-core (WCAG 2 A and AA rules) injected into it: no violation is accepted.
//!
//! Headless Debian Chromium driven over WebDriver (chromedriver, plain HTTP on loopback).
//! Screenshots are saved under `<target dir>/browser/` (the ones in `docs/screenshots/` come
//! from there).
//!
//! Needs `/usr/bin/chromedriver` and `/usr/bin/chromium` (`.ci/ensure-chromium` installs them)
//! and axe-core (`.ci/ensure-axe`).
//! Without them the test FAILS under `CI=true`/`CI=1` and is reported *ignored* with the reason
//! otherwise (its own harness, `harness = false`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
// Not in `support/mod.rs`: the CLI's tests include that module, without this one's crates.
#[path = "support/fleet.rs"]
mod fleet;

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use libtest_mimic::{Arguments, Completion, Trial};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Every WebDriver wait gives up after this long.
const WAIT: Duration = Duration::from_secs(20);

/// A child process killed (by its own pid) when the test ends, whatever happens.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `<target dir>/browser`: the test executable lives in `<target dir>/<profile>/deps/`.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap();
    target.join("browser")
}

/// Whether this is CI (`CI=true` or `CI=1`), where a missing browser fails the suite.
fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        v == "1" || v.eq_ignore_ascii_case("true")
    })
}

/// axe-core's browser build, installed by `.ci/ensure-axe`.
fn axe_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/peers/axe/node_modules/axe-core/axe.min.js")
}

/// Runs axe-core's WCAG 2 A/AA rules on the current page; panics listing every violation.
async fn assert_accessible(browser: &Client, page: &str) {
    let axe = std::fs::read_to_string(axe_path()).unwrap();
    browser.execute(&axe, vec![]).await.unwrap();
    let report = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})\
               .then(r => done({passes: r.passes.length, violations: r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' — ' +\
                 v.nodes.map(n => n.target.join(' ')).slice(0, 5).join(', '))}))\
               .catch(e => done({passes: 0, violations: ['axe failed: ' + e]}));",
            vec![],
        )
        .await
        .unwrap();
    let violations: Vec<String> = serde_json::from_value(report["violations"].clone()).unwrap();
    // The rules really ran: a page this size passes well over ten of them (color contrast,
    // labels, landmarks, document language, …).
    let passes = report["passes"].as_u64().unwrap();
    assert!(passes >= 10, "{page}: axe-core passed only {passes} rules");
    assert!(
        violations.is_empty(),
        "{page}: axe-core found {} violation(s):\n{}",
        violations.len(),
        violations.join("\n")
    );
}

/// Why the browser test cannot run here, if it cannot.
fn browser_missing() -> Option<String> {
    let mut missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if !axe_path().exists() {
        missing.push("axe-core (run .ci/ensure-axe)");
    }
    (!missing.is_empty()).then(|| {
        format!(
            "{} not installed (run .ci/ensure-chromium)",
            missing.join(" and ")
        )
    })
}

async fn start_chromedriver() -> (Reaped, String) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Reaped(child);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/status")).await
            && r.status().is_success()
        {
            return (child, url);
        }
        assert!(
            started.elapsed() < WAIT,
            "chromedriver did not answer on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn open_browser(webdriver: &str) -> Client {
    let mut caps = Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                // CI runs as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1024,900",
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(webdriver)
        .await
        .unwrap()
}

/// Starts `kit-oauth-server` with no configuration (the demo) in `dir` and returns it with the
/// URL it printed.
fn start_demo(dir: &Path) -> (Reaped, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kit-oauth-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KIT_OAUTH_BIND", "127.0.0.1:0")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (Reaped(child), url)
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
        .text()
        .await
        .unwrap()
}

async fn a_person_installs_from_the_sandbox_app_store_and_sees_authorized() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (mut server, demo_url) = start_demo(dir.path());
    let (_driver, webdriver) = start_chromedriver().await;
    let browser = open_browser(&webdriver).await;

    // The demo page: one obvious button.
    browser.goto(&demo_url).await.unwrap();
    let install = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::LinkText(
            "Install from the Kit App Store (sandbox)",
        ))
        .await
        .unwrap();
    assert_eq!(
        text_of(&browser, "#empty").await,
        "No connections yet.",
        "the demo starts with no connection"
    );
    assert_accessible(&browser, "the demo's empty dashboard").await;
    install.click().await.unwrap();

    // The sandbox App Store sends the browser to the server's /kit/oauth, which sends it to the
    // sandbox's consent page: the person types an account name and clicks Allow.
    let account = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input#account"))
        .await
        .unwrap();
    account.clear().await.unwrap();
    account.send_keys("Browser Person").await.unwrap();
    browser
        .find(Locator::Css("button.allow"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Callback → back on the sandbox's "installed" page.
    let status = text_of(&browser, "#install-status").await;
    assert_eq!(status, "installed");
    let here = browser.current_url().await.unwrap();
    assert_eq!(here.path(), "/apps/kit-oauth-demo", "{here}");
    assert_eq!(here.query(), Some("success=true"), "{here}");

    // The dashboard shows the connection.
    browser.goto(&demo_url).await.unwrap();
    let state = text_of(&browser, "article.card [data-state]").await;
    let cards = browser
        .find_all(Locator::Css("article.card[data-connection]"))
        .await
        .unwrap();
    assert_eq!(cards.len(), 1, "exactly one connection after one install");
    let card = cards[0].text().await.unwrap();
    let shot_dir = screenshot_dir();
    std::fs::create_dir_all(&shot_dir).unwrap();
    let shot = shot_dir.join("dashboard.png");
    std::fs::write(&shot, browser.screenshot().await.unwrap()).unwrap();
    assert_eq!(state, "Authorized", "dashboard card: {card}");
    assert!(card.contains("Browser Person"), "{card}");
    assert_accessible(&browser, "the dashboard with one connection").await;
    // The expiry counts down in the page, without a reload.
    let expires = text_of(&browser, "[data-expires]").await;
    assert!(expires.starts_with("in "), "{expires}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = text_of(&browser, "[data-expires]").await;
    assert_ne!(later, expires, "the countdown did not move");
    browser.close().await.unwrap();

    // SIGTERM: the demo stops cleanly.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = server.0.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    eprintln!(
        "browser test: install clicked through in {:.1} s; screenshot at {}",
        started.elapsed().as_secs_f64(),
        shot.display()
    );
}

/// The dashboard over 10,000 seeded connections: the list, a search, a timeline and the
/// overview, each checked by axe-core and photographed.
async fn the_fleet_dashboard_is_accessible_and_photographed() {
    let dir = tempfile::tempdir().unwrap();
    let url = support::sqlite_url(dir.path());
    let seeded = fleet::seed(&url, 10_000, 10, 3_000).await;
    let connection = seeded.ended[3].clone();
    fleet::history(&url, &connection).await;
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let running = support::start(
        listener,
        &base,
        &sandbox,
        &url,
        support::Extra {
            dashboard: Some(kit_oauth_server::DashboardAccess::Open),
            ..support::Extra::default()
        },
    )
    .await;
    let (_driver, webdriver) = start_chromedriver().await;
    let browser = open_browser(&webdriver).await;
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();

    browser.goto(&format!("{base}/")).await.unwrap();
    let cards = browser
        .find_all(Locator::Css("article.card[data-connection]"))
        .await
        .unwrap();
    assert_eq!(cards.len(), 50, "one page of the 10,000");
    assert_accessible(&browser, "the fleet list").await;
    std::fs::write(
        shots.join("fleet-list.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    // Keyboard: the search field takes focus and a search shows one connection.
    let search = browser.find(Locator::Css("input#q")).await.unwrap();
    let wanted = fleet::name(479);
    search.send_keys(&wanted.to_lowercase()).await.unwrap();
    browser
        .find(Locator::Css("form.search button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let found = search_results(&browser, "the search did not load").await;
    assert_eq!(found.len(), 1, "one match for {wanted}");
    assert!(found[0].text().await.unwrap().contains(&wanted));
    assert_accessible(&browser, "a search").await;

    browser
        .goto(&format!("{base}/connections/{}", connection.as_str()))
        .await
        .unwrap();
    let events = browser
        .find_all(Locator::Css("ol.timeline li"))
        .await
        .unwrap();
    assert!(events.len() >= 7, "{} events", events.len());
    assert_accessible(&browser, "a connection's timeline").await;
    std::fs::write(
        shots.join("timeline.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    browser.goto(&format!("{base}/overview")).await.unwrap();
    let bars = browser
        .find_all(Locator::Css("#refresh-chart rect"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 48, "24 hours, two bars each");
    assert_accessible(&browser, "the overview").await;
    std::fs::write(
        shots.join("overview.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    browser.close().await.unwrap();
    running.shutdown().await;
    eprintln!("fleet screenshots in {}", shots.display());
}

/// Whether the page still has the marker `mark` left in it (a reload clears it).
async fn marked(browser: &Client) -> bool {
    browser
        .execute("return window.kitMarker === 1", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap()
}

async fn mark(browser: &Client) {
    browser
        .execute("window.kitMarker = 1; return 1", vec![])
        .await
        .unwrap();
}

/// Waits (at most `WAIT`) for the page to reload, which clears the marker.
async fn reloads(browser: &Client, what: &str) {
    let started = Instant::now();
    while marked(browser).await {
        assert!(started.elapsed() < WAIT, "{what}: the page never reloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn active_id(browser: &Client) -> String {
    browser
        .execute("return document.activeElement.id", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// WCAG 2.2.1 with the reload period shortened to 1 s (`KIT_OAUTH_DASHBOARD_RELOAD`): an
/// unused page reloads, a focused one never does (a keyboard user keeps their place), Tab and
/// Enter reach and submit the search, and the labelled switch turns the reload off for later
/// pages too. "Never" is observed over three periods.
async fn a_keyboard_user_keeps_focus_and_can_turn_auto_refresh_off() {
    use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
    use fantoccini::key::Key;

    let period = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let url = support::sqlite_url(dir.path());
    fleet::seed(&url, 20, 2, 0).await;
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let running = support::start(
        listener,
        &base,
        &sandbox,
        &url,
        support::Extra {
            dashboard: Some(kit_oauth_server::DashboardAccess::Open),
            dashboard_reload: Some(Some(period)),
            ..support::Extra::default()
        },
    )
    .await;
    let (_driver, webdriver) = start_chromedriver().await;
    let browser = open_browser(&webdriver).await;
    browser.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(
        text_of(&browser, "button#auto-reload").await,
        "Turn auto-refresh off"
    );

    // Unused, the page reloads: what the rest of the test sees is not for lack of reloads.
    mark(&browser).await;
    reloads(&browser, "unused").await;

    // Focus alone (given by script, so no key or click counts as use) holds the reload...
    mark(&browser).await;
    browser
        .execute("document.getElementById('q').focus(); return 1", vec![])
        .await
        .unwrap();
    tokio::time::sleep(period * 3).await;
    assert!(marked(&browser).await, "the page reloaded under focus");
    assert_eq!(active_id(&browser).await, "q", "focus was lost");
    // ...and only it: without focus the reload resumes.
    browser
        .execute("document.activeElement.blur(); return 1", vec![])
        .await
        .unwrap();
    reloads(&browser, "after blur").await;

    // The keyboard: Tab from the top reaches the search field, typing and Enter search.
    let mut tabs = 0;
    while active_id(&browser).await != "q" {
        tabs += 1;
        assert!(tabs <= 10, "Tab never reached the search field");
        browser
            .perform_actions(
                KeyActions::new("keyboard".into())
                    .then(KeyAction::Down {
                        value: Key::Tab.into(),
                    })
                    .then(KeyAction::Up {
                        value: Key::Tab.into(),
                    }),
            )
            .await
            .unwrap();
    }
    mark(&browser).await;
    tokio::time::sleep(period * 3).await;
    assert!(
        marked(&browser).await,
        "the page reloaded under a keyboard user"
    );
    assert_eq!(active_id(&browser).await, "q");
    let wanted = fleet::name(7);
    let search = browser.active_element().await.unwrap();
    search.send_keys(&wanted).await.unwrap();
    search
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    let found = search_results(&browser, "Enter did not submit the search").await;
    assert_eq!(found.len(), 1, "one match for {wanted}");

    // The switch: off holds for the next page, though nothing there has focus.
    browser
        .find(Locator::Css("button#auto-reload"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        text_of(&browser, "button#auto-reload").await,
        "Turn auto-refresh on"
    );
    browser.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(
        text_of(&browser, "#auto-reload-state").await,
        "Auto-refresh is off."
    );
    mark(&browser).await;
    tokio::time::sleep(period * 3).await;
    assert!(
        marked(&browser).await,
        "the page reloaded with auto-refresh off"
    );
    assert_eq!(active_id(&browser).await, "", "nothing has focus here");
    // On again (then focus leaves the button): it reloads.
    browser
        .find(Locator::Css("button#auto-reload"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser
        .execute("document.activeElement.blur(); return 1", vec![])
        .await
        .unwrap();
    reloads(&browser, "switched on").await;
    browser.close().await.unwrap();
    running.shutdown().await;
}

fn run_in_browser<F: std::future::Future<Output = ()>>(
    test: impl FnOnce() -> F,
) -> Result<Completion, libtest_mimic::Failed> {
    if let Some(why) = browser_missing() {
        if is_ci() {
            return Err(format!("{why}; required under CI").into());
        }
        return Ok(Completion::ignored_with(why));
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test());
    Ok(Completion::Completed)
}

fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::ignorable_test(
            "a_keyboard_user_keeps_focus_and_can_turn_auto_refresh_off",
            || run_in_browser(a_keyboard_user_keeps_focus_and_can_turn_auto_refresh_off),
        ),
        Trial::ignorable_test("the_fleet_dashboard_is_accessible_and_photographed", || {
            run_in_browser(the_fleet_dashboard_is_accessible_and_photographed)
        }),
        Trial::ignorable_test(
            "a_person_installs_from_the_sandbox_app_store_and_sees_authorized",
            || run_in_browser(a_person_installs_from_the_sandbox_app_store_and_sees_authorized),
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}

/// Waits until the page is a search result (`?q=` in its URL; `why` fails the test after
/// `WAIT`) and returns its connection cards.
async fn search_results(browser: &Client, why: &str) -> Vec<fantoccini::elements::Element> {
    let searched = Instant::now();
    while !browser
        .current_url()
        .await
        .unwrap()
        .query()
        .is_some_and(|q| q.starts_with("q="))
    {
        assert!(searched.elapsed() < WAIT, "{why}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .find_all(Locator::Css("article.card[data-connection]"))
        .await
        .unwrap()
}
