//! The adapter against a second, independently written OAuth 2.0 server — panva's
//! `oidc-provider`, an OpenID-certified implementation (not Kit, not our sandbox) — to catch
//! assumptions our client and our sandbox share.
//!
//! The server is `tests/peers/oidc-provider` (installed by `.ci/ensure-oidc-provider`), run as a
//! child process on a free loopback port: a confidential client (`client_secret_post`), PKCE,
//! refresh tokens rotated on every use, RFC 7009 revocation, and consent approved by its
//! interaction URL without a browser. The test runs install (authorize → consent → code),
//! exchange, two refreshes with rotation, reuse of a rotated refresh token, revocation, and both
//! body encodings through `KitOAuthClient`.
//!
//! Without node or the installed peer the test is reported *ignored* with the reason; under
//! `CI=true` or `CI=1` it fails instead. A libtest-mimic harness, because libtest cannot ignore
//! a test at run time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::REDIRECT;
use kit_oauth_core::{
    AuthorizationCode, AuthorizeRequest, CsrfState, EndpointError, PkceVerifier, RefreshToken,
    RevocableToken, TenantName, TokenEndpoint,
};
use kit_oauth_http::{KitEndpoints, KitOAuthClient, TokenBody};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

const CLIENT_ID: &str = "second-server-client";
const CLIENT_SECRET: &str = "second-server-secret-0123456789";

fn main() {
    let args = Arguments::from_args();
    let trial = Trial::ignorable_test("exchange_refresh_revoke_against_oidc_provider", run);
    libtest_mimic::run(&args, vec![trial]).exit();
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn peer_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/peers/oidc-provider")
}

/// Why the peer cannot run here, if it cannot.
fn missing_peer() -> Option<String> {
    let node = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !node.is_ok_and(|s| s.success()) {
        return Some("node is not installed (the oidc-provider peer needs Node.js 20+)".into());
    }
    if !peer_dir().join("node_modules/oidc-provider").is_dir() {
        return Some(
            "tests/peers/oidc-provider is not installed: run .ci/ensure-oidc-provider".into(),
        );
    }
    None
}

fn run() -> Result<Completion, Failed> {
    if let Some(reason) = missing_peer() {
        return if in_ci() {
            Err(format!("CI requires the independent OAuth server: {reason}").into())
        } else {
            Ok(Completion::ignored_with(reason))
        };
    }
    let peer = Peer::start();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(flows(&peer.issuer));
    Ok(Completion::Completed)
}

/// The node process, ended (by its own handle) when the test ends.
struct Peer {
    child: Child,
    issuer: String,
}

impl Peer {
    fn start() -> Self {
        let mut child = Command::new("node")
            .arg("server.js")
            .current_dir(peer_dir())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", REDIRECT)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node server.js");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep reading what it prints later: a closed pipe would make its next log line fatal.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let started: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the peer printed {line:?} instead of its issuer: {e}"));
        let issuer = started["issuer"].as_str().unwrap().to_owned();
        Self { child, issuer }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(issuer: &str, body: TokenBody) -> KitOAuthClient {
    KitOAuthClient::new(
        KitEndpoints::builder()
            .base_url(issuer)
            .authorize_url(format!("{issuer}/auth"))
            .token_url(format!("{issuer}/token"))
            .revoke_url(format!("{issuer}/token/revocation"))
            .client_id(CLIENT_ID)
            .client_secret(CLIENT_SECRET)
            .redirect_uri(REDIRECT)
            .token_body(body)
            .request_timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// The adapter's authorize URL, followed like a browser (keeping the server's cookies across
/// its interaction redirects) until it redirects to our callback; the code from there.
async fn install(client: &KitOAuthClient) -> (AuthorizationCode, PkceVerifier) {
    let mut rng = rand::rngs::OsRng;
    let state = CsrfState::generate(&mut rng);
    let verifier = PkceVerifier::generate(&mut rng);
    let challenge = verifier.challenge();
    let tenant = TenantName::parse("shop-a").unwrap();
    let mut url = client.authorize_url(&AuthorizeRequest {
        state: &state,
        challenge: &challenge,
        tenant: Some(&tenant),
        scope: Some("public"),
    });
    let browser = common::browser();
    let mut cookies = BTreeMap::<String, String>::new();
    for _ in 0..6 {
        let jar = cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = browser
            .get(url.clone())
            .header(reqwest::header::COOKIE, jar)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_redirection(),
            "{url} answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        for set in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                cookies.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        let location = response.headers()[reqwest::header::LOCATION]
            .to_str()
            .unwrap();
        url = url.join(location).unwrap();
        if url.as_str().starts_with(REDIRECT) {
            let param = |name: &str| common::query(&url, name);
            assert_eq!(param("state").as_deref(), Some(state.expose_secret()));
            let code = param("code").unwrap_or_else(|| panic!("no code in {url}"));
            return (AuthorizationCode::new(code), verifier);
        }
    }
    panic!("no redirect to the callback after 6 hops (last {url})");
}

async fn flows(issuer: &str) {
    let form = client(issuer, TokenBody::Form);
    let (code, verifier) = install(&form).await;
    let tokens = form.exchange_code(&code, &verifier).await.unwrap();
    // Not Kit: no created_at; the lifetime counts from arrival.
    assert_eq!(tokens.created_at, None);
    assert_eq!(tokens.expires_in, Some(7200));
    assert_eq!(tokens.scope.as_deref(), Some("public"));
    let first = tokens
        .refresh_token
        .expect("a refresh token with the grant");

    // Two refreshes, each rotating both tokens.
    let second = form.refresh(&first).await.unwrap();
    let second_refresh = second.refresh_token.clone().expect("rotated");
    assert_ne!(second_refresh, first);
    assert_ne!(second.access_token, tokens.access_token);
    let third = form.refresh(&second_refresh).await.unwrap();
    let third_refresh = third.refresh_token.clone().expect("rotated");
    assert_ne!(third_refresh, second_refresh);

    // A rotated-away refresh token is refused as invalid_grant (the class that ends a grant).
    let reused = form.refresh(&first).await.unwrap_err();
    assert!(
        matches!(reused, EndpointError::InvalidGrant { .. }),
        "{reused:?}"
    );

    // A code is redeemed once (a replay also ends the grant it made, RFC 6749 §4.1.2).
    let again = form.exchange_code(&code, &verifier).await.unwrap_err();
    assert!(
        matches!(again, EndpointError::InvalidGrant { .. }),
        "{again:?}"
    );

    // A fresh install for revocation (reuse detection may have ended the first grant).
    let (code, verifier) = install(&form).await;
    let tokens = form.exchange_code(&code, &verifier).await.unwrap();
    let refresh = tokens.refresh_token.unwrap();
    form.revoke(RevocableToken::Access(&tokens.access_token))
        .await
        .unwrap();
    form.revoke(RevocableToken::Refresh(&refresh))
        .await
        .unwrap();
    let revoked = form.refresh(&refresh).await.unwrap_err();
    assert!(
        matches!(revoked, EndpointError::InvalidGrant { .. }),
        "{revoked:?}"
    );
    // Revoking an unknown token succeeds (RFC 7009 §2.2).
    form.revoke(RevocableToken::Refresh(&RefreshToken::new(
        "never-issued-refresh-token",
    )))
    .await
    .unwrap();

    // The JSON body Kit documents is refused by a strict RFC 6749 server: a typed protocol
    // error naming the cause, not a credential verdict that would end a grant.
    let json = client(issuer, TokenBody::Json);
    let (code, verifier) = install(&json).await;
    let refused = json.exchange_code(&code, &verifier).await.unwrap_err();
    match &refused {
        EndpointError::Protocol { status, excerpt } => {
            assert_eq!(*status, Some(400));
            assert!(excerpt.contains("invalid_request"), "{excerpt}");
        }
        other => panic!("{other:?}"),
    }
    // The same code still works with a form body (the refused request consumed nothing).
    let tokens = form.exchange_code(&code, &verifier).await.unwrap();
    assert!(tokens.refresh_token.is_some());
}
