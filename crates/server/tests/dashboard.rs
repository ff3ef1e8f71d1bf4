//! The dashboard's sign-in: throttled per client address and per presented key (429 with
//! `Retry-After` and the time to retry on the page).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::num::NonZeroU32;
use std::sync::Arc;

use kit_oauth_server::{ApiKeys, DashboardAccess, SignInLimits, TrustedProxies};
use reqwest::StatusCode;
use support::Extra;

const ADMIN_KEY: &str = "dashboard-admin-key-0123456789";

fn limits(per_address: u32, per_key: u32) -> SignInLimits {
    SignInLimits {
        per_address: NonZeroU32::new(per_address).unwrap(),
        per_key: NonZeroU32::new(per_key).unwrap(),
    }
}

async fn broker(limits: Option<SignInLimits>) -> support::Broker {
    behind(limits, None).await
}

/// A broker whose TCP peers in `proxies` are believed about `X-Forwarded-For`.
async fn behind(limits: Option<SignInLimits>, proxies: Option<&str>) -> support::Broker {
    support::Broker::start(Extra {
        dashboard: Some(DashboardAccess::Key(Arc::new(
            ApiKeys::parse(ADMIN_KEY).unwrap(),
        ))),
        sign_in_limits: limits,
        trusted_proxies: proxies.map(|p| TrustedProxies::parse(p).unwrap()),
        ..Extra::default()
    })
    .await
}

async fn sign_in(base: &str, key: &str) -> reqwest::Response {
    sign_in_for(base, key, None).await
}

/// A sign-in whose request carries `X-Forwarded-For: forwarded_for`, as a proxy's would.
async fn sign_in_for(base: &str, key: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = support::browser()
        .post(format!("{base}/login"))
        .form(&[("key", key)]);
    if let Some(client) = forwarded_for {
        request = request.header("x-forwarded-for", client);
    }
    request.send().await.unwrap()
}

/// Behind a trusted proxy each client has its own budget: one person guessing keys does not
/// lock out everyone else who comes through the same proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let broker = behind(Some(limits(3, 100)), Some("127.0.0.0/8, ::1")).await;
    let guesser = Some("203.0.113.9");
    for attempt in 0..3 {
        let key = format!("wrong-key-{attempt:02}-0123456789");
        let answer = sign_in_for(&broker.base, &key, guesser).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{attempt}");
    }
    let refused = sign_in_for(&broker.base, ADMIN_KEY, guesser).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Someone else behind the same proxy, and the right-most untrusted hop decides: an
    // address the guesser writes to the left of it changes nothing.
    let colleague = sign_in_for(&broker.base, ADMIN_KEY, Some("198.51.100.7")).await;
    assert_eq!(colleague.status(), StatusCode::SEE_OTHER);
    let disguised = sign_in_for(&broker.base, ADMIN_KEY, Some("198.51.100.7, 203.0.113.9")).await;
    assert_eq!(disguised.status(), StatusCode::TOO_MANY_REQUESTS);
    broker.running.shutdown().await;
}

/// From a peer that is not a trusted proxy the header is the client's own claim: it neither
/// splits the budget nor escapes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_escape_the_limit_with_x_forwarded_for() {
    let broker = behind(Some(limits(3, 100)), Some("10.0.0.0/8")).await;
    for attempt in 0..3 {
        let key = format!("wrong-key-{attempt:02}-0123456789");
        let client = format!("203.0.113.{attempt}");
        let answer = sign_in_for(&broker.base, &key, Some(&client)).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{attempt}");
    }
    let refused = sign_in_for(&broker.base, ADMIN_KEY, Some("203.0.113.200")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    broker.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sign_ins_a_minute_from_one_address_then_429_with_when_to_retry() {
    let broker = broker(None).await;
    let defaults = SignInLimits::default();
    assert_eq!(defaults, limits(10, 5), "the figures the README gives");
    for attempt in 0..10 {
        let answer = sign_in(&broker.base, &format!("wrong-key-{attempt:02}-0123456789")).await;
        assert_eq!(
            answer.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    // The eleventh is refused before the key is even checked: the right key too.
    let refused = sign_in(&broker.base, ADMIN_KEY).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let page = refused.text().await.unwrap();
    assert!(
        page.contains(&format!("Try again in {retry_after} s (at ")),
        "{page}"
    );
    broker.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_is_tried_at_most_per_key_times_a_minute() {
    let broker = broker(Some(limits(100, 2))).await;
    for _ in 0..2 {
        let answer = sign_in(&broker.base, "guessed-key-0123456789").await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    }
    let refused = sign_in(&broker.base, "guessed-key-0123456789").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another key from the same address still has its own budget.
    let admin = sign_in(&broker.base, ADMIN_KEY).await;
    assert_eq!(admin.status(), StatusCode::SEE_OTHER);
    broker.running.shutdown().await;
}

/// The `kit_oauth_session=…` pair of a response's `Set-Cookie`.
fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("kit_oauth_session="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned()
}

async fn page(base: &str, cookie: &str) -> String {
    reqwest::Client::new()
        .get(format!("{base}/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Behind a load balancer without sticky sessions: signed in on A, the session works on B;
/// signed out on B, it no longer works on A. Two in-process servers on one SQLite file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_on_every_instance_and_signing_out_ends_it_everywhere() {
    let a = broker(None).await;
    let (listener, b_base) = support::listener().await;
    let b = support::start(
        listener,
        &b_base,
        &a.sandbox,
        &support::sqlite_url(a.dir.path()),
        Extra {
            dashboard: Some(DashboardAccess::Key(Arc::new(
                ApiKeys::parse(ADMIN_KEY).unwrap(),
            ))),
            ..Extra::default()
        },
    )
    .await;

    let signed_in = sign_in(&a.base, ADMIN_KEY).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(&signed_in);
    let on_a = page(&a.base, &cookie).await;
    let on_b = page(&b_base, &cookie).await;
    for page in [&on_a, &on_b] {
        assert!(page.contains("Kit connections"), "{page}");
    }

    // A second session, started before the sign-out, ends with it too.
    let other = session_cookie(&sign_in(&a.base, ADMIN_KEY).await);
    let csrf = support::hidden_inputs(&on_b)
        .into_iter()
        .find(|(name, _)| name == "csrf")
        .unwrap()
        .1;
    let signed_out = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{b_base}/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    for (base, cookie) in [(&a.base, &cookie), (&b_base, &cookie), (&a.base, &other)] {
        let page = page(base, cookie).await;
        assert!(!page.contains("Kit connections"), "{page}");
        assert!(page.contains("Admin key"), "the sign-in form: {page}");
    }
    // Signing in again works.
    let again = session_cookie(&sign_in(&b_base, ADMIN_KEY).await);
    assert!(page(&a.base, &again).await.contains("Kit connections"));
    b.shutdown().await;
    a.running.shutdown().await;
}
