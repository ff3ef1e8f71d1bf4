//! Install expiry through HTTP (with the library's clock injected, so ten minutes pass at once),
//! the sign-in hook of `GET /kit/oauth`, and what a graceful shutdown does to a refresh in
//! flight. The server runs in-process (`app::start`, as the binary does), against the Kit
//! sandbox over loopback and a SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit_oauth::core::{Clock as _, ManualClock, SystemClock};
use kit_oauth_server::{InstalledBy, SignIn};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind};
use reqwest::StatusCode;
use secrecy::SecretString;
use support::{API_KEY, BrokerApi, Extra};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_after_ten_minutes_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let clock = ManualClock::new(SystemClock.now());
    let running = support::start(
        listener,
        &base,
        &sandbox,
        &support::sqlite_url(dir.path()),
        Extra {
            clock: Some(Arc::new(clock.clone())),
            ..Extra::default()
        },
    )
    .await;

    // Nine minutes is still in time.
    let browser = support::browser();
    let callback = support::until_callback(
        &browser,
        &sandbox,
        &support::begin_url(&base, &sandbox),
        "Patient",
    )
    .await;
    clock.advance(Duration::from_secs(9 * 60));
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::FOUND);

    // Eleven minutes is not: 400, a page that says so, no code exchange, nothing stored.
    let browser = support::browser();
    let callback = support::until_callback(
        &browser,
        &sandbox,
        &support::begin_url(&base, &sandbox),
        "Slow",
    )
    .await;
    clock.advance(Duration::from_secs(11 * 60));
    let late = browser.get(&callback).send().await.unwrap();
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert_eq!(late.headers()["cache-control"], "no-store");
    let page = late.text().await.unwrap();
    assert!(page.contains("The install link expired"), "{page}");
    assert!(page.contains("Start the install again"), "{page}");
    assert_eq!(
        sandbox.stats().codes_redeemed,
        1,
        "only the in-time install"
    );
    let list = BrokerApi::new(&base, API_KEY).list("").await.body;
    let names: Vec<&str> = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["account_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Patient"]);
    // The state is spent: presenting the callback again is an unknown state, not an install.
    let again = browser.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sandbox.stats().codes_redeemed, 1);
    running.shutdown().await;
}

const USER_SECRET: &str = "user-signing-secret-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_hook_binds_the_signed_user_to_the_install() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let seen: Arc<Mutex<Vec<InstalledBy>>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let hook = SignIn::new(SecretString::from(USER_SECRET))
        .on_installed(move |by| recorder.lock().unwrap().push(by.clone()));
    let app_side = SignIn::new(SecretString::from(USER_SECRET));
    let running = support::start(
        listener,
        &base,
        &sandbox,
        &support::sqlite_url(dir.path()),
        Extra {
            sign_in: Some(hook),
            ..Extra::default()
        },
    )
    .await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let begin = support::begin_url(&base, &sandbox);
    let get = |url: String| async move { support::browser().get(url).send().await.unwrap() };

    // Refusals, before anything is stored or sent to Kit.
    let missing = get(begin.clone()).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(
        missing
            .text()
            .await
            .unwrap()
            .contains("Sign in to the app first")
    );
    let other_secret = SignIn::new(SecretString::from("not-the-apps-secret-0123"));
    let forged = get(format!(
        "{begin}&user={}",
        other_secret.sign("user-42", now + 300)
    ))
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let expired = get(format!(
        "{begin}&user={}",
        app_side.sign("user-42", now - 1)
    ))
    .await;
    assert_eq!(expired.status(), StatusCode::BAD_REQUEST);
    assert!(
        expired
            .text()
            .await
            .unwrap()
            .contains("The sign-in link expired")
    );
    let forever = get(format!(
        "{begin}&user={}",
        app_side.sign("user-42", now + 86_400)
    ))
    .await;
    assert_eq!(forever.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        sandbox
            .stats()
            .requests
            .get("authorize")
            .copied()
            .unwrap_or(0),
        0,
        "no refused request reached Kit"
    );

    // One browser, two tabs: user-42 starts an install, then user-7 starts another. The first
    // tab's callback is no longer the signed-in user's install: refused, code not redeemed.
    let browser = support::browser();
    let first = support::until_callback(
        &browser,
        &sandbox,
        &format!("{begin}&user={}", app_side.sign("user-42", now + 300)),
        "Alice",
    )
    .await;
    let second = support::until_callback(
        &browser,
        &sandbox,
        &format!("{begin}&user={}", app_side.sign("user-7", now + 300)),
        "Bob",
    )
    .await;
    let stale_tab = browser.get(&first).send().await.unwrap();
    assert_eq!(stale_tab.status(), StatusCode::FORBIDDEN);
    assert!(
        stale_tab
            .text()
            .await
            .unwrap()
            .contains("Nothing was saved")
    );
    assert_eq!(sandbox.stats().codes_redeemed, 0);
    assert!(seen.lock().unwrap().is_empty());

    // The second tab completes, and the app learns that user-7 connected Bob's account.
    let done = browser.get(&second).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::FOUND);
    let id = support::connection_id(&base, "Bob").await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].user, "user-7");
    assert_eq!(seen[0].connection_id.as_str(), id);
    assert_eq!(seen[0].account.name, "Bob");
    assert_eq!(sandbox.stats().codes_redeemed, 1);
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_a_refresh_in_flight_and_releases_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let database = support::sqlite_url(dir.path());
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let running = support::start(listener, &base, &sandbox, &database, Extra::default()).await;
    let id = support::install(&base, &sandbox, "Carol").await;

    // Kit takes 1.5 s to answer the next refresh; shutdown begins while it is in flight.
    sandbox
        .add_fault(Fault {
            endpoint: FaultEndpoint::Token,
            kind: FaultKind::Latency { ms: 1500 },
            count: 1,
        })
        .unwrap();
    let api = BrokerApi::new(&base, API_KEY);
    let request = tokio::spawn({
        let (api, id) = (api.clone(), id.clone());
        async move {
            let reply = api.refresh(&id).await;
            (reply.status, reply.body)
        }
    });
    for _ in 0..100 {
        if sandbox.stats().refreshes_ok == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sandbox.stats().refreshes_ok,
        1,
        "Kit has rotated the tokens"
    );
    running.shutdown().await;
    let (status, body) = request.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let refreshed = body["access_token"].as_str().unwrap().to_owned();

    // A new instance on the same database: the refreshed token was committed, and the lease
    // was released (a forced refresh would otherwise wait for it, then fail).
    let (listener, base) = support::listener().await;
    let next = support::start(listener, &base, &sandbox, &database, Extra::default()).await;
    let api = BrokerApi::new(&base, API_KEY);
    let token = api.token(&id).await.body;
    assert_eq!(token["access_token"], refreshed.as_str());
    let started = std::time::Instant::now();
    let again = api.refresh(&id).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(sandbox.stats().refreshes_ok, 2);
    let metrics = support::metrics(&base).await;
    assert_eq!(
        support::sample(&metrics, "kit_oauth_lease_waits_total{outcome=\"woke\"}"),
        0.0,
        "nobody waited for a lease: {metrics}"
    );
    eprintln!(
        "forced refresh after restart took {} ms",
        started.elapsed().as_millis()
    );
    next.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_token_endpoint_is_a_502_page_and_stores_nothing() {
    let support::Broker {
        dir: _dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra::default()).await;
    let browser = support::browser();
    let callback = support::until_callback(
        &browser,
        &sandbox,
        &support::begin_url(&base, &sandbox),
        "Unlucky",
    )
    .await;
    sandbox
        .add_fault(Fault {
            endpoint: FaultEndpoint::Token,
            kind: FaultKind::Status {
                status: 500,
                body: None,
                retry_after: None,
            },
            count: 1,
        })
        .unwrap();
    let failed = browser.get(&callback).send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);
    let page = failed.text().await.unwrap();
    assert!(page.contains("Kit did not complete the install"), "{page}");
    assert!(page.contains("Start the install again"), "{page}");
    assert_eq!(sandbox.stats().codes_redeemed, 0);
    let list = BrokerApi::new(&base, API_KEY).list("").await.body;
    assert_eq!(list["connections"].as_array().unwrap().len(), 0, "{list}");
    running.shutdown().await;
}

/// An embedding app reads its signed-in user from its own session cookie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedding_apps_extractor_names_the_user_without_a_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let seen: Arc<Mutex<Vec<InstalledBy>>> = Arc::default();
    let recorder = Arc::clone(&seen);
    let hook = SignIn::new(SecretString::from(USER_SECRET))
        .user_from(|headers| {
            kit_oauth_server::web::cookie(headers, "app_session")
                .and_then(|session| session.strip_prefix("session-of-"))
                .map(str::to_owned)
        })
        .on_installed(move |by| recorder.lock().unwrap().push(by.clone()));
    let running = support::start(
        listener,
        &base,
        &sandbox,
        &support::sqlite_url(dir.path()),
        Extra {
            sign_in: Some(hook),
            ..Extra::default()
        },
    )
    .await;
    let begin = support::begin_url(&base, &sandbox);

    // No session, no parameter: sign in first.
    let anonymous = support::browser().get(&begin).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // With the app's session cookie the install goes through and names the user.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(
        "app_session=session-of-user-5; Path=/",
        &base.parse().unwrap(),
    );
    let browser = reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let callback = support::until_callback(&browser, &sandbox, &begin, "Frank").await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::FOUND);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].user, "user-5");
    assert_eq!(seen[0].account.name, "Frank");
    running.shutdown().await;
}
