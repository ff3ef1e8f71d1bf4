//! The TokenEndpoint and AccountLookup adapter against kit-sandbox over real loopback HTTP:
//! full flows, body encodings, lenient parsing, both path families, every error class and
//! every fault kind the sandbox offers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use kit_oauth_core::{
    AccessToken, AccountLookup, AuthorizationCode, EndpointError, LookupError, PkceVerifier,
    RefreshToken, RevocableToken, Timestamp, TokenEndpoint, TokenSet,
};
use kit_oauth_http::{KitOAuthClient, PathFamily, TokenBody, USER_AGENT};
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, SandboxHandle};

fn fault(endpoint: FaultEndpoint, kind: FaultKind) -> Fault {
    Fault::new(endpoint, kind)
}

fn status_fault(status: u16, body: Option<&str>, retry_after: Option<u64>) -> FaultKind {
    FaultKind::Status {
        status,
        body: body.map(str::to_owned),
        retry_after,
    }
}

/// authorize → consent (auto-approve) → exchange → account → refresh ×3 → revoke → 401.
async fn full_flow(sb: &SandboxHandle, client: &KitOAuthClient) {
    let auth = authorize(client, Some("shop-a"), None).await;
    let url = &auth.authorize_url;
    assert_eq!(query(url, "response_type").as_deref(), Some("code"));
    assert_eq!(query(url, "client_id").as_deref(), Some(CLIENT));
    assert_eq!(query(url, "redirect_uri").as_deref(), Some(REDIRECT));
    assert_eq!(query(url, "code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(
        query(url, "code_challenge"),
        Some(auth.verifier.challenge().as_str().to_owned())
    );
    assert_eq!(query(url, "tenant_name").as_deref(), Some("shop-a"));
    assert_eq!(query(url, "scope"), None, "scope only when asked");
    assert!(query(url, "client_secret").is_none());

    let tokens = client
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    assert_eq!(tokens.expires_in, Some(172_800));
    assert_eq!(tokens.scope.as_deref(), Some("public"));
    let created_at = tokens.created_at.expect("Kit sends created_at");
    assert!((created_at - sb.now()).abs() <= 5);
    // The lifetime counts from the arrival we pass, not from Kit's created_at.
    let set =
        TokenSet::from_response(tokens.clone(), Timestamp::from_unix_seconds(0), None).unwrap();
    assert_eq!(set.expires_at(), Timestamp::from_unix_seconds(172_800));

    let account = client.account(&tokens.access_token).await.unwrap();
    assert_eq!(
        account.id.as_str(),
        SandboxHandle::account_id(ACCOUNT).to_string()
    );
    assert_eq!(account.name, ACCOUNT);

    let mut access = tokens.access_token;
    let mut refresh = tokens.refresh_token.unwrap();
    let mut seen = vec![refresh.clone()];
    for _ in 0..3 {
        let next = client.refresh(&refresh).await.unwrap();
        assert_eq!(next.expires_in, Some(7200));
        let rotated = next.refresh_token.unwrap();
        assert!(!seen.contains(&rotated), "refresh token must rotate");
        assert!(next.access_token != access);
        seen.push(rotated.clone());
        access = next.access_token;
        refresh = rotated;
        client.account(&access).await.unwrap();
    }
    let stats = sb.stats();
    assert_eq!(stats.refreshes_ok, 3);
    assert_eq!(stats.codes_redeemed, 1);
    assert_eq!(stats.requests["account"], 4);

    client
        .revoke(RevocableToken::Refresh(&refresh))
        .await
        .unwrap();
    assert_eq!(sb.stats().revocations, 1);
    match client.account(&access).await {
        Err(LookupError::Unauthorized { message }) => {
            assert!(
                message.contains("revoked") || message.contains("invalid"),
                "{message}"
            );
        }
        other => panic!("expected 401 after revoke, got {other:?}"),
    }
    // The spent refresh token is dead too.
    assert!(matches!(
        client.refresh(&refresh).await,
        Err(EndpointError::InvalidGrant { .. })
    ));
}

#[tokio::test]
async fn confidential_flow_with_json_bodies() {
    let sb = confidential().spawn().await.unwrap();
    let client = oauth(&sb, Some(SECRET), TokenBody::Json);
    full_flow(&sb, &client).await;
}

#[tokio::test]
async fn confidential_flow_with_form_bodies_on_legacy_paths() {
    let sb = confidential().spawn().await.unwrap();
    let endpoints = endpoints_for(&sb, Some(SECRET))
        .token_body(TokenBody::Form)
        .path_family(PathFamily::Legacy)
        .build()
        .unwrap();
    assert!(endpoints.token_url().path() == "/oauth/token");
    let client = KitOAuthClient::new(endpoints).unwrap();
    full_flow(&sb, &client).await;
}

#[tokio::test]
async fn public_flow_sends_the_verifier_and_no_secret() {
    let sb = public().spawn().await.unwrap();
    let client = oauth(&sb, None, TokenBody::Json);
    full_flow(&sb, &client).await;
    // A public client's exchange without the right verifier is refused.
    let auth = authorize(&client, None, None).await;
    let wrong = PkceVerifier::generate(&mut rand::rngs::OsRng);
    assert!(matches!(
        client.exchange_code(&auth.code, &wrong).await,
        Err(EndpointError::InvalidGrant { .. })
    ));
    assert_eq!(sb.stats().invalid_grant.get("pkce_mismatch"), Some(&1));
}

#[tokio::test]
async fn public_flow_with_form_bodies_on_v4_paths() {
    let sb = public().spawn().await.unwrap();
    let client = oauth(&sb, None, TokenBody::Form);
    full_flow(&sb, &client).await;
}

#[tokio::test]
async fn lowercase_token_type_omitted_scope_and_scope_on_request() {
    let sb = confidential()
        .lowercase_token_type(true)
        .omit_scope(true)
        .spawn()
        .await
        .unwrap();
    let client = oauth(&sb, Some(SECRET), TokenBody::Json);
    let auth = authorize(&client, None, Some("public")).await;
    assert_eq!(
        query(&auth.authorize_url, "scope").as_deref(),
        Some("public")
    );
    assert_eq!(query(&auth.authorize_url, "tenant_name"), None);
    let tokens = client
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    assert_eq!(tokens.scope, None);
    let refreshed = client
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    assert_eq!(refreshed.scope, None);
    client.account(&refreshed.access_token).await.unwrap();
}

#[tokio::test]
async fn error_classes_are_classified_and_secret_free() {
    let sb = confidential()
        .revoke_on_code_replay(true)
        .spawn()
        .await
        .unwrap();
    let good = oauth(&sb, Some(SECRET), TokenBody::Json);
    let auth = authorize(&good, None, None).await;
    let secrets_of = |auth: &Authorized| {
        vec![
            auth.code.expose_secret().to_owned(),
            auth.verifier.expose_secret().to_owned(),
            SECRET.to_owned(),
        ]
    };

    // invalid_client: a wrong secret (the secret we sent must not show either).
    let wrong_secret = "wrong-secret-5a4b3c2d1e";
    let bad = oauth(&sb, Some(wrong_secret), TokenBody::Json);
    let err = bad
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EndpointError::InvalidClient { .. }),
        "{err:?}"
    );
    let mut secrets = secrets_of(&auth);
    secrets.push(wrong_secret.to_owned());
    let s: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_secret_free(&err, &err.to_string(), &s);
    assert_eq!(sb.stats().invalid_client, 1);

    // invalid_grant: an unknown code.
    let unknown = AuthorizationCode::new("unknown-code-0123456789abcdef");
    let err = good
        .exchange_code(&unknown, &auth.verifier)
        .await
        .unwrap_err();
    assert!(matches!(err, EndpointError::InvalidGrant { .. }), "{err:?}");
    assert_secret_free(&err, &err.to_string(), &[unknown.expose_secret(), SECRET]);

    // The real code still works once, then is invalid_grant (code reuse).
    let tokens = good
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let err = good
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap_err();
    assert!(matches!(err, EndpointError::InvalidGrant { .. }), "{err:?}");
    assert_eq!(sb.stats().codes_redeemed_twice, 1);

    // ... and the second redemption revoked what the code had issued (RFC 6749 §4.1.2).
    let err = good
        .refresh(tokens.refresh_token.as_ref().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, EndpointError::InvalidGrant { .. }), "{err:?}");

    // invalid_grant: a spent refresh token.
    let auth = authorize(&good, None, None).await;
    let tokens = good
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let rt = tokens.refresh_token.unwrap();
    good.refresh(&rt).await.unwrap();
    let err = good.refresh(&rt).await.unwrap_err();
    assert!(matches!(err, EndpointError::InvalidGrant { .. }), "{err:?}");
    assert_secret_free(&err, &err.to_string(), &[rt.expose_secret(), SECRET]);
    assert_eq!(sb.stats().invalid_grant.get("refresh_spent"), Some(&1));

    // Transient: nothing listening.
    let closed = KitOAuthClient::new(
        kit_oauth_http::KitEndpoints::builder()
            .base_url("http://127.0.0.1:1")
            .client_id(CLIENT)
            .client_secret(SECRET)
            .redirect_uri(REDIRECT)
            .build()
            .unwrap(),
    )
    .unwrap();
    let err = closed.refresh(&rt).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_secret_free(&err, &err.to_string(), &[rt.expose_secret(), SECRET]);
}

/// One refresh against a fault; returns the error and checks it never shows a secret.
async fn refresh_under(
    sb: &SandboxHandle,
    client: &KitOAuthClient,
    refresh: &RefreshToken,
    f: Fault,
) -> EndpointError {
    sb.add_fault(f).unwrap();
    let err = client.refresh(refresh).await.unwrap_err();
    assert_secret_free(&err, &err.to_string(), &[refresh.expose_secret(), SECRET]);
    sb.clear_faults();
    err
}

async fn fresh_tokens(sb: &SandboxHandle, client: &KitOAuthClient) -> (AccessToken, RefreshToken) {
    let auth = authorize(client, None, None).await;
    let t = client
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let _ = sb;
    (t.access_token, t.refresh_token.unwrap())
}

#[tokio::test]
async fn every_token_endpoint_fault_kind() {
    let sb = confidential().spawn().await.unwrap();
    let client = KitOAuthClient::new(
        endpoints_for(&sb, Some(SECRET))
            .request_timeout(Duration::from_millis(400))
            .build()
            .unwrap(),
    )
    .unwrap();
    let (_, rt) = fresh_tokens(&sb, &client).await;

    // 503 with Retry-After → Transient with the hint.
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, status_fault(503, None, Some(3))),
    )
    .await;
    assert_eq!(
        err,
        EndpointError::Transient {
            retry_after: Some(Duration::from_secs(3)),
            reason: "the token endpoint answered HTTP 503".into()
        }
    );
    // 429 without a body → Transient, no hint.
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, status_fault(429, None, None)),
    )
    .await;
    assert!(
        matches!(
            err,
            EndpointError::Transient {
                retry_after: None,
                ..
            }
        ),
        "{err:?}"
    );
    // 500 with a body echoing the token → Transient, and the body is never shown.
    let echo = format!(
        r#"{{"error":"server_error","refresh_token":"{}"}}"#,
        rt.expose_secret()
    );
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, status_fault(500, Some(&echo), None)),
    )
    .await;
    assert!(err.is_transient(), "{err:?}");
    // 400 with a non-OAuth body → Protocol with the status and an excerpt.
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(
            FaultEndpoint::Token,
            status_fault(400, Some("<html>nope</html>"), None),
        ),
    )
    .await;
    match &err {
        EndpointError::Protocol { status, excerpt } => {
            assert_eq!(*status, Some(400));
            assert!(excerpt.contains("nope"), "{excerpt}");
        }
        other => panic!("{other:?}"),
    }
    // 400 whose body echoes the refresh token in an unexpected field → excerpt redacted.
    let leaky = format!(r#"{{"message":"bad token {}"}}"#, rt.expose_secret());
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, status_fault(400, Some(&leaky), None)),
    )
    .await;
    assert!(
        matches!(
            err,
            EndpointError::Protocol {
                status: Some(400),
                ..
            }
        ),
        "{err:?}"
    );
    // 401 with no body → InvalidClient (RFC 6749 §5.2).
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, status_fault(401, None, None)),
    )
    .await;
    assert!(
        matches!(err, EndpointError::InvalidClient { .. }),
        "{err:?}"
    );
    // A redirect is not followed.
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, status_fault(302, None, None)),
    )
    .await;
    assert!(
        matches!(
            err,
            EndpointError::Protocol {
                status: Some(302),
                ..
            }
        ),
        "{err:?}"
    );
    // An oversized body is cut off at the cap → Protocol, never allocated in full.
    let huge = format!(r#"{{"error":"{}"}}"#, "x".repeat(200 * 1024));
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, status_fault(400, Some(&huge), None)),
    )
    .await;
    match &err {
        EndpointError::Protocol { excerpt, .. } => assert!(excerpt.contains("larger than")),
        other => panic!("{other:?}"),
    }
    // Dropped connection → Transient.
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, FaultKind::Drop),
    )
    .await;
    assert!(err.is_transient(), "{err:?}");
    // Malformed JSON → Protocol (status 200).
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, FaultKind::MalformedJson),
    )
    .await;
    assert!(
        matches!(
            err,
            EndpointError::Protocol {
                status: Some(200),
                ..
            }
        ),
        "{err:?}"
    );
    // The truncated body carried an access token: the excerpt must not.
    assert!(
        !format!("{err} {err:?}").contains("sandbox-malformed"),
        "{err}"
    );
    // None of the faults above processed the refresh: the token is still good.
    assert_eq!(sb.stats().refreshes_ok, 0);

    // Latency past the timeout → Transient, though the server rotated the tokens.
    let err = refresh_under(
        &sb,
        &client,
        &rt,
        fault(FaultEndpoint::Token, FaultKind::Latency { ms: 2_000 }),
    )
    .await;
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(sb.stats().refreshes_ok, 1);
    // ... so the refresh token sent is spent: the next use is invalid_grant.
    let err = client.refresh(&rt).await.unwrap_err();
    assert!(matches!(err, EndpointError::InvalidGrant { .. }), "{err:?}");

    // Rotate-then-drop: Transient, the token is spent server-side.
    let (_, rt2) = fresh_tokens(&sb, &client).await;
    let err = refresh_under(
        &sb,
        &client,
        &rt2,
        fault(FaultEndpoint::Token, FaultKind::RotateThenDrop),
    )
    .await;
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(sb.stats().refreshes_ok, 2);
    assert!(matches!(
        client.refresh(&rt2).await,
        Err(EndpointError::InvalidGrant { .. })
    ));
}

#[tokio::test]
async fn revoke_and_account_faults() {
    let sb = confidential().spawn().await.unwrap();
    let client = KitOAuthClient::new(
        endpoints_for(&sb, Some(SECRET))
            .request_timeout(Duration::from_millis(400))
            .build()
            .unwrap(),
    )
    .unwrap();
    let (at, rt) = fresh_tokens(&sb, &client).await;
    let secrets = [at.expose_secret(), rt.expose_secret(), SECRET];

    sb.add_fault(fault(
        FaultEndpoint::Revoke,
        status_fault(503, None, Some(1)),
    ))
    .unwrap();
    let err = client
        .revoke(RevocableToken::Access(&at))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EndpointError::Transient {
            retry_after: Some(Duration::from_secs(1)),
            reason: "the endpoint answered HTTP 503".into()
        }
    );
    sb.add_fault(fault(FaultEndpoint::Revoke, FaultKind::Drop))
        .unwrap();
    let err = client
        .revoke(RevocableToken::Refresh(&rt))
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_secret_free(&err, &err.to_string(), &secrets);

    for (kind, check) in [
        (
            status_fault(503, None, Some(2)),
            (|e: &LookupError| matches!(e, LookupError::Transient { retry_after: Some(d), .. } if *d == Duration::from_secs(2)))
                as fn(&LookupError) -> bool,
        ),
        (status_fault(429, None, None), |e| {
            matches!(e, LookupError::Transient { .. })
        }),
        (FaultKind::Drop, |e| {
            matches!(e, LookupError::Transient { .. })
        }),
        (FaultKind::Latency { ms: 2_000 }, |e| {
            matches!(e, LookupError::Transient { .. })
        }),
        (FaultKind::MalformedJson, |e| {
            matches!(
                e,
                LookupError::Protocol {
                    status: Some(200),
                    ..
                }
            )
        }),
        (
            status_fault(404, Some("{\"errors\":[\"Not Found\"]}"), None),
            |e| {
                matches!(
                    e,
                    LookupError::Protocol {
                        status: Some(404),
                        ..
                    }
                )
            },
        ),
    ] {
        sb.add_fault(fault(FaultEndpoint::Account, kind.clone()))
            .unwrap();
        let err = client.account(&at).await.unwrap_err();
        assert!(check(&err), "{kind:?} gave {err:?}");
        assert_secret_free(&err, &err.to_string(), &secrets);
        sb.clear_faults();
    }

    // Expired vs invalid 401s.
    sb.advance_clock(172_801);
    assert_eq!(
        client.account(&at).await.unwrap_err(),
        LookupError::TokenExpired
    );
    let bogus = AccessToken::new("not-a-real-token-1234567890");
    let err = client.account(&bogus).await.unwrap_err();
    assert!(matches!(err, LookupError::Unauthorized { .. }), "{err:?}");
    assert_secret_free(&err, &err.to_string(), &[bogus.expose_secret()]);

    // Revoke always succeeds for unknown tokens (RFC 7009).
    client.revoke(RevocableToken::Access(&bogus)).await.unwrap();
}

#[tokio::test]
async fn a_second_request_reuses_the_connection_and_names_the_crate() {
    let sb = confidential().spawn().await.unwrap();
    let proxy = counting_proxy(sb.addr()).await;
    // Its own reqwest pool: the proxy's port is unique, so only this test's requests count.
    let endpoints = kit_oauth_http::KitEndpoints::builder()
        .base_url(&proxy.base_url)
        .client_id(CLIENT)
        .client_secret(SECRET)
        .redirect_uri(REDIRECT)
        .build()
        .unwrap();
    let client = KitOAuthClient::new(endpoints).unwrap();
    let (_, rt) = fresh_tokens(&sb, &oauth(&sb, Some(SECRET), TokenBody::Json)).await;

    let next = client.refresh(&rt).await.unwrap();
    client.account(&next.access_token).await.unwrap();
    let next = client
        .refresh(next.refresh_token.as_ref().unwrap())
        .await
        .unwrap();
    client.account(&next.access_token).await.unwrap();
    assert_eq!(sb.stats().refreshes_ok, 2);
    assert_eq!(
        proxy.accepted.load(Ordering::SeqCst),
        1,
        "four requests must share one kept-alive TCP connection"
    );
    let first = String::from_utf8_lossy(&proxy.first_request.lock().unwrap()).to_lowercase();
    assert!(first.starts_with("post /v4/oauth/token"), "{first}");
    assert!(
        first.contains(&format!("user-agent: {}", USER_AGENT.to_lowercase())),
        "{first}"
    );
    assert!(first.contains("content-type: application/json"), "{first}");
}

#[tokio::test]
async fn form_bodies_are_form_encoded_with_the_secret_in_the_body() {
    let sb = confidential().spawn().await.unwrap();
    let proxy = counting_proxy(sb.addr()).await;
    let endpoints = kit_oauth_http::KitEndpoints::builder()
        .base_url(&proxy.base_url)
        .client_id(CLIENT)
        .client_secret(SECRET)
        .redirect_uri(REDIRECT)
        .token_body(TokenBody::Form)
        .build()
        .unwrap();
    let client = KitOAuthClient::new(endpoints).unwrap();
    let (_, rt) = fresh_tokens(&sb, &oauth(&sb, Some(SECRET), TokenBody::Json)).await;
    client.refresh(&rt).await.unwrap();
    let first = String::from_utf8_lossy(&proxy.first_request.lock().unwrap()).into_owned();
    let lower = first.to_lowercase();
    assert!(
        lower.contains("content-type: application/x-www-form-urlencoded"),
        "{first}"
    );
    assert!(!lower.contains("authorization: basic"), "{first}");
    assert!(first.contains("grant_type=refresh_token"), "{first}");
    assert!(
        first.contains(&format!("client_secret={SECRET}")),
        "{first}"
    );
    assert!(first.contains(&format!("client_id={CLIENT}")), "{first}");
}
