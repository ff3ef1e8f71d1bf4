//! Expiry counts from the response's arrival, whatever the token endpoint's clock says: with
//! Kit's clock 3 h ahead (the sandbox's clock moved forward) a 2-day token must not be listed as
//! living 2 days and 3 h, and with Kit's clock 3 h behind (a loopback token endpoint that stamps
//! `created_at` 3 h in the past; the sandbox clock only moves forward) it must not arrive due.
//! A skew over a minute is still logged (it may point at a wrong clock here), and the log carries
//! no token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use kit_oauth_core::{Clock as _, SystemClock, Timestamp, TokenEndpoint, TokenResponse, TokenSet};
use kit_oauth_http::{KitEndpoints, KitOAuthClient, TokenBody};

const SKEW: i64 = 3 * 3600;

/// The tests of this file run one at a time. The log test captures through a thread-local
/// subscriber, and `tracing` caches each call site's interest process-wide: a test on another
/// thread reaching the skew warning's call site while that subscriber is being installed could
/// cache "nobody listens" and the warning would go uncaptured (it did, once in a full run).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the manager stores: the adapter's answer, scheduled from the local arrival instant.
fn stored(tokens: TokenResponse) -> (TokenSet, Timestamp) {
    let arrived = SystemClock.now();
    (
        TokenSet::from_response(tokens, arrived, None).unwrap(),
        arrived,
    )
}

fn assert_near(actual: Timestamp, expected: Timestamp) {
    let gap = actual.unix_seconds().abs_diff(expected.unix_seconds());
    assert!(
        gap <= 5,
        "expires_at {actual:?} is {gap} s away from {expected:?}"
    );
}

#[tokio::test]
async fn kit_clock_ahead_does_not_stretch_the_lifetime() {
    let _one = ONE_AT_A_TIME.lock().await;
    let sb = confidential().spawn().await.unwrap();
    sb.advance_clock(u64::try_from(SKEW).unwrap());
    let client = oauth(&sb, Some(SECRET), TokenBody::Json);
    let auth = authorize(&client, None, None).await;
    let tokens = client
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let lifetime = tokens.expires_in.unwrap();
    let now = SystemClock.now();
    let skew = tokens.clock_skew(now).unwrap();
    assert!((skew - SKEW).abs() <= 5, "the sandbox is {skew} s ahead");
    let (set, arrived) = stored(tokens);
    assert_near(
        set.expires_at(),
        arrived.saturating_add(Duration::from_secs(lifetime)),
    );
    assert!(!set.is_due(arrived));

    let renewed = client.refresh(set.refresh()).await.unwrap();
    let lifetime = renewed.expires_in.unwrap();
    let (set, arrived) = stored(renewed);
    assert_near(
        set.expires_at(),
        arrived.saturating_add(Duration::from_secs(lifetime)),
    );
}

/// A token endpoint whose clock is `behind` seconds behind ours (only its `created_at` matters
/// here).
async fn lagging_token_endpoint(behind: i64) -> String {
    use axum::routing::post;

    let app = axum::Router::new().route(
        "/oauth/token",
        post(move || async move {
            let created_at = SystemClock.now().unix_seconds() - behind;
            axum::Json(serde_json::json!({
                "access_token": "lagging-access-token-0123456789",
                "refresh_token": "lagging-refresh-token-0123456789",
                "token_type": "Bearer",
                "expires_in": 7200,
                "created_at": created_at,
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn client_of(base: &str) -> KitOAuthClient {
    KitOAuthClient::new(
        KitEndpoints::builder()
            .base_url(base)
            .token_url(format!("{base}/oauth/token"))
            .client_id(CLIENT)
            .client_secret(SECRET)
            .redirect_uri(REDIRECT)
            .build()
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn kit_clock_behind_does_not_make_tokens_arrive_due() {
    let _one = ONE_AT_A_TIME.lock().await;
    let client = client_of(&lagging_token_endpoint(SKEW).await);
    let tokens = client
        .refresh(&kit_oauth_core::RefreshToken::new("any-refresh-token"))
        .await
        .unwrap();
    let skew = tokens.clock_skew(SystemClock.now()).unwrap();
    assert!((skew + SKEW).abs() <= 5, "the endpoint is {skew} s off");
    let (set, arrived) = stored(tokens);
    assert_near(
        set.expires_at(),
        arrived.saturating_add(Duration::from_secs(7200)),
    );
    // Not due on arrival: the 12-minute margin of a 2-hour token starts 108 minutes from now.
    assert!(!set.is_due(arrived));
    assert!(set.is_due(arrived.saturating_add(Duration::from_secs(7200 - 720))));
}

/// Every log line written while `subscriber`'s guard is held, as text.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const SKEW_WARNING: &str = "the token endpoint's created_at disagrees with the local clock";

/// What one refresh against an endpoint `behind` seconds behind logs, at every level.
async fn logs_of_a_refresh(behind: i64) -> String {
    let client = client_of(&lagging_token_endpoint(behind).await);
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // The test's runtime has one thread, so everything the refresh logs is on this one.
    let _guard = tracing::subscriber::set_default(subscriber);
    client
        .refresh(&kit_oauth_core::RefreshToken::new(
            "presented-refresh-token-42",
        ))
        .await
        .unwrap();
    captured.text()
}

#[tokio::test]
async fn a_skewed_created_at_is_logged_once_without_any_token() {
    let _one = ONE_AT_A_TIME.lock().await;
    let skewed = logs_of_a_refresh(SKEW).await;
    let warnings: Vec<&str> = skewed
        .lines()
        .filter(|line| line.contains(SKEW_WARNING))
        .collect();
    assert_eq!(warnings.len(), 1, "{skewed}");
    assert!(warnings[0].contains("WARN"), "{skewed}");
    // Negative: Kit's clock is behind ours, by SKEW (give or take the seconds the call took).
    let logged: i64 = warnings[0]
        .split("skew_secs=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no skew_secs in {skewed}"))
        .parse()
        .unwrap();
    assert!((logged + SKEW).abs() <= 5, "{skewed}");

    // Within the minute: the same refresh logs no warning.
    let in_time = logs_of_a_refresh(30).await;
    assert!(in_time.contains("token endpoint answered"), "{in_time}");
    assert!(!in_time.contains(SKEW_WARNING), "{in_time}");

    for logs in [&skewed, &in_time] {
        for secret in [
            "lagging-access-token-0123456789",
            "lagging-refresh-token-0123456789",
            "presented-refresh-token-42",
            SECRET,
        ] {
            assert!(!logs.contains(secret), "{secret} logged: {logs}");
        }
    }
}
