//! The dashboard's sign-in: throttled per client address and per presented key (429 with
//! `Retry-After` and the time to retry on the page).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::num::NonZeroU32;
use std::sync::Arc;

use kit_oauth_server::{ApiKeys, DashboardAccess, SignInLimits};
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
    support::Broker::start(Extra {
        dashboard: Some(DashboardAccess::Key(Arc::new(
            ApiKeys::parse(ADMIN_KEY).unwrap(),
        ))),
        sign_in_limits: limits,
        ..Extra::default()
    })
    .await
}

async fn sign_in(base: &str, key: &str) -> reqwest::Response {
    support::browser()
        .post(format!("{base}/login"))
        .form(&[("key", key)])
        .send()
        .await
        .unwrap()
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
