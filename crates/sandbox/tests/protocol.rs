//! Black-box tests of the OAuth endpoints and API v4 over real loopback HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn code_exchange_returns_the_documented_shape_with_created_at() {
    let sb = confidential().spawn().await.unwrap();
    let c = code(&sb, &[]).await;
    let resp = http()
        .post(sb.url("/v4/oauth/token"))
        .json(&json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let text = resp.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "access_token",
            "created_at",
            "expires_in",
            "refresh_token",
            "scope",
            "token_type"
        ]
    );
    // Field order as documented.
    assert!(text.starts_with("{\"access_token\":"), "{text}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 172_800);
    assert_eq!(body["scope"], "public");
    assert_eq!(body["created_at"].as_i64().unwrap(), sb.now());
    let st = sb.stats();
    assert_eq!(
        (st.codes_issued, st.codes_redeemed, st.grants_created),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn both_path_families_and_form_bodies_work() {
    let sb = confidential().spawn().await.unwrap();
    let loc = http()
        .get(authorize_url(&sb, &[]).replace("/v4/oauth/", "/oauth/"))
        .send()
        .await
        .unwrap();
    assert_eq!(loc.status(), 302);
    let c = query_param(loc.headers()["location"].to_str().unwrap(), "code").unwrap();
    let resp = http()
        .post(sb.url("/oauth/token"))
        .form(&[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let t: Value = resp.json().await.unwrap();
    let rt = s(&t, "refresh_token");
    let resp = http()
        .post(sb.url("/oauth/token"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "Basic client authentication works");
    let t2: Value = resp.json().await.unwrap();
    let resp = http()
        .post(sb.url("/oauth/revoke"))
        .form(&[
            ("token", s(&t2, "access_token").as_str()),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "{}");
    // The revoked access token is refused; presenting it also spends the pair it replaced
    // (revoke-on-use), so nothing of the grant is left.
    assert_eq!(get_account(&sb, &s(&t2, "access_token")).await.0, 401);
    assert_eq!(get_account(&sb, &s(&t, "access_token")).await.0, 401);
    assert_eq!(sb.stats().grants_revoked, 1);
}

#[tokio::test]
async fn codes_are_single_use_and_a_replay_keeps_their_tokens() {
    let sb = confidential().spawn().await.unwrap();
    let c = code(&sb, &[]).await;
    let (st, t) = exchange(&sb, &c).await;
    assert_eq!(st, 200);
    let (st2, e) = exchange(&sb, &c).await;
    assert_eq!(st2, 400);
    assert_eq!(
        e,
        json!({"error": "invalid_grant", "error_description": INVALID_GRANT})
    );
    // Doorkeeper keeps the tokens issued from a replayed code.
    assert_eq!(get_account(&sb, &s(&t, "access_token")).await.0, 200);
    let (st4, _) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(st4, 200);
    let stats = sb.stats();
    assert_eq!(stats.codes_redeemed_twice, 1);
    assert_eq!(stats.invalid_grant["code_reused"], 1);
    assert_eq!(stats.invalid_grant_total, 1);
    assert_eq!(stats.grants_revoked, 0);

    // The stricter switch: a replay also revokes what the code issued (RFC 6749 §4.1.2).
    let sb = confidential()
        .revoke_on_code_replay(true)
        .spawn()
        .await
        .unwrap();
    let c = code(&sb, &[]).await;
    let (_, t) = exchange(&sb, &c).await;
    assert_eq!(exchange(&sb, &c).await.0, 400);
    assert_eq!(
        get_account(&sb, &s(&t, "access_token")).await,
        (
            401,
            r#"{"errors":["The access token was revoked"]}"#.to_owned()
        )
    );
    let (st, _) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(st, 400);
    assert_eq!(sb.stats().grants_revoked, 1);
}

#[tokio::test]
async fn code_exchange_checks_expiry_redirect_uri_and_client() {
    let sb = confidential().code_ttl(60).spawn().await.unwrap();
    let c = code(&sb, &[]).await;
    let (st, e) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code", "code": c, "redirect_uri": "http://127.0.0.1:9/other"})).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let (st, e) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "client_secret": "wrong", "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT})).await;
    assert_eq!((st, e["error"].as_str()), (401, Some("invalid_client")));
    let (st, e) = post_json(&sb, "/v4/oauth/token", json!({"client_id": "other", "client_secret": SECRET, "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT})).await;
    assert_eq!((st, e["error"].as_str()), (401, Some("invalid_client")));
    let (st, e) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT})).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (401, Some("invalid_client")),
        "confidential clients must send the secret"
    );
    sb.advance_clock(61);
    let (st, e) = exchange(&sb, &c).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let (st, _) = exchange(&sb, "no-such-code").await;
    assert_eq!(st, 400);
    let stats = sb.stats();
    assert_eq!(stats.invalid_grant["redirect_uri_mismatch"], 1);
    assert_eq!(stats.invalid_grant["code_expired"], 1);
    assert_eq!(stats.invalid_grant["code_unknown"], 1);
    assert_eq!(stats.invalid_client, 3);
    assert_eq!(stats.codes_redeemed, 0);
}

#[tokio::test]
async fn public_client_needs_pkce_s256_and_the_right_verifier() {
    let sb = public().spawn().await.unwrap();
    // No challenge: refused on the error page (a sandbox rule for public clients).
    let resp = http().get(authorize_url(&sb, &[])).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("location"));
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Missing required parameter: code_challenge."),
        "{page}"
    );
    // plain is accepted, as Doorkeeper accepts it.
    let plain = code(
        &sb,
        &[
            ("code_challenge", VERIFIER),
            ("code_challenge_method", "plain"),
            ("tenant_name", "plain"),
        ],
    )
    .await;
    let (st, t) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "grant_type": "authorization_code", "code": plain, "redirect_uri": REDIRECT, "code_verifier": VERIFIER})).await;
    assert_eq!(st, 200, "{t}");
    let c = pkce_code(&sb, &[]).await;
    let body = |v: &str| json!({"client_id": CLIENT, "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT, "code_verifier": v});
    let wrong = "x".repeat(50);
    let (st, e) = post_json(&sb, "/v4/oauth/token", body(&wrong)).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let (st, e) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT})).await;
    assert_eq!(
        (st, e),
        (
            400,
            json!({"error": "invalid_request", "error_description": "Missing required parameter: code_verifier."})
        )
    );
    let (st, e) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "client_secret": "x", "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT, "code_verifier": VERIFIER})).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (401, Some("invalid_client")),
        "a public client has no secret"
    );
    let (st, t) = post_json(&sb, "/v4/oauth/token", body(VERIFIER)).await;
    assert_eq!(st, 200, "{t}");
    // Public refresh: client_id only.
    let (st, t2) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "grant_type": "refresh_token", "refresh_token": s(&t, "refresh_token")})).await;
    assert_eq!(st, 200, "{t2}");
    assert_eq!(t2["expires_in"], 7_200);
    let stats = sb.stats();
    assert_eq!(stats.invalid_grant["pkce_mismatch"], 1);
    assert_eq!(stats.invalid_grant_total, 1);
    assert_eq!(stats.invalid_request, 1);
    assert_eq!(stats.invalid_client, 1);
    assert_eq!(
        stats.codes_redeemed, 2,
        "failed tries did not use the code up"
    );
}

#[tokio::test]
async fn confidential_client_pkce_is_optional_but_verified_when_sent() {
    let sb = confidential().spawn().await.unwrap();
    let c = pkce_code(&sb, &[]).await;
    let (st, e) = exchange(&sb, &c).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_request")),
        "challenge sent, verifier missing"
    );
    let (st, t) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT, "code_verifier": VERIFIER})).await;
    assert_eq!(st, 200, "{t}");
    // A verifier without a challenge is a downgrade attempt.
    let c2 = code(&sb, &[("tenant_name", "other")]).await;
    let (st, e) = post_json(&sb, "/v4/oauth/token", json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code", "code": c2, "redirect_uri": REDIRECT, "code_verifier": VERIFIER})).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(sb.stats().invalid_grant["pkce_unexpected_verifier"], 1);
}

#[tokio::test]
async fn strict_refresh_revokes_the_old_pair_at_once() {
    let sb = confidential()
        .rotation(Rotation::Strict)
        .spawn()
        .await
        .unwrap();
    let t = tokens(&sb, &[]).await;
    sb.advance_clock(100);
    let (st, t2) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(st, 200);
    assert_ne!(t2["refresh_token"], t["refresh_token"]);
    assert_ne!(t2["access_token"], t["access_token"]);
    assert_eq!(t2["expires_in"], 7_200);
    assert_eq!(t2["created_at"].as_i64().unwrap(), sb.now());
    // The old access token died with the rotation; the new one works.
    assert_eq!(
        get_account(&sb, &s(&t, "access_token")).await,
        (
            401,
            r#"{"errors":["The access token was revoked"]}"#.to_owned()
        )
    );
    assert_eq!(get_account(&sb, &s(&t2, "access_token")).await.0, 200);
    let (st, e) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    // Without reuse detection the grant survives.
    let (st, _) = refresh(&sb, &s(&t2, "refresh_token")).await;
    assert_eq!(st, 200);
    let stats = sb.stats();
    assert_eq!(stats.refreshes_ok, 2);
    assert_eq!(stats.refresh_reuse_attempts, 1);
    assert_eq!(stats.invalid_grant["refresh_spent"], 1);
    assert_eq!(stats.grants_revoked, 0);
}

#[tokio::test]
async fn reuse_detection_revokes_the_whole_grant() {
    let sb = confidential()
        .rotation(Rotation::ReuseDetection)
        .spawn()
        .await
        .unwrap();
    let t = tokens(&sb, &[]).await;
    let (_, t2) = refresh(&sb, &s(&t, "refresh_token")).await;
    let (st, e) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_grant")));
    let (st, body) = get_account(&sb, &s(&t2, "access_token")).await;
    assert_eq!(st, 401);
    assert_eq!(body, r#"{"errors":["The access token was revoked"]}"#);
    let (st, _) = refresh(&sb, &s(&t2, "refresh_token")).await;
    assert_eq!(st, 400);
    let stats = sb.stats();
    assert_eq!(stats.refresh_reuse_attempts, 1);
    assert_eq!(stats.invalid_grant["refresh_reused"], 1);
    assert_eq!(stats.invalid_grant["refresh_revoked"], 1);
    assert_eq!(stats.grants_revoked, 1);
    assert!(!sb.grants()[0].alive);
}

#[tokio::test]
async fn reuse_grace_returns_the_same_pair_once_within_the_window() {
    let sb = confidential()
        .rotation(Rotation::ReuseDetection)
        .reuse_grace(30)
        .spawn()
        .await
        .unwrap();
    let t = tokens(&sb, &[]).await;
    let (_, t2) = refresh(&sb, &s(&t, "refresh_token")).await;
    sb.advance_clock(10);
    let (st, again) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(st, 200);
    assert_eq!(again, t2, "the same new pair, created_at included");
    // Only once: the second reuse is a reuse (and with detection, revokes the grant).
    let (st, _) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(st, 400);
    let stats = sb.stats();
    assert_eq!(stats.refresh_grace_hits, 1);
    assert_eq!(stats.refresh_reuse_attempts, 2);
    assert_eq!(stats.grants_revoked, 1);

    // Outside the window there is no grace.
    let t = tokens(&sb, &[("tenant_name", "b")]).await;
    let (_, _t2) = refresh(&sb, &s(&t, "refresh_token")).await;
    sb.advance_clock(31);
    let (st, _) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(st, 400);
    assert_eq!(sb.stats().refresh_grace_hits, 1);
}

#[tokio::test]
async fn grants_are_keyed_by_account_client_and_tenant_name() {
    let sb = confidential().spawn().await.unwrap();
    let a = tokens(&sb, &[("tenant_name", "shop-a")]).await;
    let b = tokens(&sb, &[("tenant_name", "shop-b")]).await;
    let other = tokens(
        &sb,
        &[
            ("tenant_name", "shop-a"),
            ("sandbox_account", "Someone Else"),
        ],
    )
    .await;
    let grants = sb.grants();
    assert_eq!(grants.len(), 3);
    assert_eq!(grants.iter().filter(|g| g.alive).count(), 3);
    assert_eq!(grants[0].account_id, grants[1].account_id);
    assert_ne!(grants[0].account_id, grants[2].account_id);
    assert_eq!(grants[0].tenant_name.as_deref(), Some("shop-a"));
    // Revoking one tenant's grant leaves the others alone.
    let resp = http()
        .post(sb.url("/v4/oauth/revoke"))
        .form(&[
            ("token", s(&a, "refresh_token").as_str()),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "{}");
    assert_eq!(get_account(&sb, &s(&a, "access_token")).await.0, 401);
    assert_eq!(get_account(&sb, &s(&b, "access_token")).await.0, 200);
    assert_eq!(get_account(&sb, &s(&other, "access_token")).await.0, 200);
    // Re-authorizing the same key adds a pair to the grant instead of adding a grant; as on
    // Doorkeeper, the earlier pair keeps working.
    let b2 = tokens(&sb, &[("tenant_name", "shop-b")]).await;
    assert_eq!(sb.grants().len(), 3);
    assert_eq!(sb.stats().grants_created, 3);
    assert_eq!(get_account(&sb, &s(&b, "access_token")).await.0, 200);
    assert_eq!(get_account(&sb, &s(&b2, "access_token")).await.0, 200);

    // The stricter switch: one pair per install, the earlier one revoked.
    let sb = confidential()
        .revoke_on_reauthorization(true)
        .spawn()
        .await
        .unwrap();
    let first = tokens(&sb, &[("tenant_name", "shop-b")]).await;
    let second = tokens(&sb, &[("tenant_name", "shop-b")]).await;
    assert_eq!(
        get_account(&sb, &s(&first, "access_token")).await,
        (
            401,
            r#"{"errors":["The access token was revoked"]}"#.to_owned()
        )
    );
    assert_eq!(get_account(&sb, &s(&second, "access_token")).await.0, 200);
    assert_eq!((sb.grants().len(), sb.stats().grants_revoked), (1, 0));
}

#[tokio::test]
async fn revoke_refuses_unauthenticated_clients_and_ignores_unknown_tokens() {
    let sb = confidential().spawn().await.unwrap();
    let t = tokens(&sb, &[]).await;
    let at = s(&t, "access_token");
    let url = sb.url("/v4/oauth/revoke");
    let refused = json!({"error": "unauthorized_client", "error_description": "You are not authorized to revoke this token"});
    for req in [
        http().post(&url).form(&[
            ("token", at.as_str()),
            ("client_id", CLIENT),
            ("client_secret", "wrong"),
        ]),
        http()
            .post(&url)
            .basic_auth(CLIENT, Some("wrong"))
            .form(&[("token", at.as_str())]),
        http().post(&url).form(&[("token", at.as_str())]),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403);
        assert_eq!(resp.json::<Value>().await.unwrap(), refused);
    }
    assert_eq!(
        get_account(&sb, &at).await.0,
        200,
        "the refused revokes kept the token"
    );
    for form in [
        vec![
            ("token", "unknown"),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
        ],
        vec![("client_id", CLIENT), ("client_secret", SECRET)],
        vec![
            ("token", at.as_str()),
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("token_type_hint", "access_token"),
        ],
    ] {
        let resp = http().post(&url).form(&form).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "{}");
    }
    assert_eq!(
        get_account(&sb, &at).await,
        (
            401,
            r#"{"errors":["The access token was revoked"]}"#.to_owned()
        )
    );
    let (st, e) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "revoke killed the refresh token too"
    );
    let stats = sb.stats();
    assert_eq!(stats.revocations, 3);
    assert_eq!(stats.revocations_refused, 3);
    assert_eq!(stats.grants_revoked, 1);
}

#[tokio::test]
async fn token_type_and_scope_options() {
    let sb = confidential()
        .lowercase_token_type(true)
        .omit_scope(true)
        .access_ttl(3600)
        .spawn()
        .await
        .unwrap();
    let t = tokens(&sb, &[]).await;
    assert_eq!(t["token_type"], "bearer");
    assert!(t.get("scope").is_none());
    assert_eq!(t["expires_in"], 3600);
}

#[tokio::test]
async fn token_endpoint_rejects_bad_input_with_rfc6749_errors() {
    let sb = confidential().spawn().await.unwrap();
    let rt = s(&tokens(&sb, &[]).await, "refresh_token");
    let c = http();
    let url = sb.url("/v4/oauth/token");
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (c.post(&url).form(&[("client_id", CLIENT)]), 400, "invalid_request"),
        (c.post(&url).form(&[("grant_type", "password"), ("client_id", CLIENT)]), 400, "unsupported_grant_type"),
        (c.post(&url).form(&[("grant_type", "client_credentials")]), 400, "unsupported_grant_type"),
        (c.post(&url).body("grant_type=refresh_token&grant_type=refresh_token&client_id=test-client&client_secret=test-secret&refresh_token=x").header("content-type", "application/x-www-form-urlencoded"), 400, "invalid_request"),
        (c.post(&url).body(r#"{"grant_type":"refresh_token","grant_type":"refresh_token"}"#).header("content-type", "application/json"), 400, "invalid_request"),
        (c.post(&url).body("grant_type=refresh_token").header("content-type", "text/plain"), 400, "invalid_request"),
        (c.post(&url).body(b"grant_type=%ff%fe".to_vec()).header("content-type", "application/x-www-form-urlencoded"), 400, "invalid_request"),
        (c.post(&url).body(format!("grant_type=refresh_token&x={}", "a".repeat(100_000))).header("content-type", "application/x-www-form-urlencoded"), 400, "invalid_request"),
        (c.post(&url).body("[1,2]").header("content-type", "application/json"), 400, "invalid_request"),
        (c.post(&url).form(&[("grant_type", "refresh_token"), ("client_id", CLIENT), ("client_secret", SECRET)]), 400, "invalid_request"),
        (c.post(&url).form(&[("grant_type", "authorization_code"), ("client_id", CLIENT), ("client_secret", SECRET), ("code", "x")]), 400, "invalid_request"),
        // The refresh token is checked before the client (Doorkeeper's order).
        (c.post(&url).form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]), 400, "invalid_grant"),
        (c.post(&url).basic_auth(CLIENT, Some(SECRET)).form(&[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_secret", SECRET)]), 400, "invalid_grant"),
        (c.post(&url).header("authorization", "Basic !!!").form(&[("grant_type", "refresh_token"), ("refresh_token", "x")]), 400, "invalid_grant"),
        (c.post(&url).header("authorization", "Basic !!!").form(&[("grant_type", "refresh_token"), ("refresh_token", &rt)]), 401, "invalid_client"),
        (c.post(&url).form(&[("grant_type", "refresh_token"), ("refresh_token", &rt), ("client_id", CLIENT), ("client_secret", "wrong")]), 401, "invalid_client"),
        (c.post(&url).form(&[("grant_type", "refresh_token"), ("refresh_token", "x"), ("client_id", CLIENT), ("client_secret", SECRET), ("scope", "admin")]), 400, "invalid_scope"),
        (c.post(&url).form(&[("grant_type", "refresh_token"), ("refresh_token", "nope"), ("client_id", CLIENT), ("client_secret", SECRET)]), 400, "invalid_grant"),
    ];
    for (i, (req, status, error)) in cases.into_iter().enumerate() {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "case {i}");
        if status == 401 {
            assert!(resp.headers().contains_key("www-authenticate"), "case {i}");
        }
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], error, "case {i}: {body}");
        let description = body["error_description"].as_str().unwrap();
        match error {
            "invalid_grant" => assert_eq!(description, INVALID_GRANT, "case {i}"),
            "invalid_client" => assert_eq!(description, INVALID_CLIENT, "case {i}"),
            "unsupported_grant_type" => assert_eq!(
                description,
                "The authorization grant type is not supported by the authorization server.",
                "case {i}"
            ),
            _ => assert!(!description.is_empty(), "case {i}"),
        }
    }
    // JSON that does not parse never reaches Doorkeeper: Rails answers a bare 400.
    for body in [&b"{\"grant_type\":\"\xff\"}"[..], &b"{\"grant_type\":"[..]] {
        let resp = c
            .post(&url)
            .body(body.to_vec())
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-type"], "text/html; charset=UTF-8");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    let st = sb.stats();
    assert_eq!(st.unsupported_grant_type, 2);
    assert_eq!(st.invalid_client, 2);
    assert_eq!(
        st.refreshes_ok, 0,
        "the wrong-client requests did not rotate"
    );
    // A GET is not a token request.
    assert_eq!(c.get(&url).send().await.unwrap().status(), 405);
}

#[tokio::test]
async fn account_endpoint_returns_the_documented_shape() {
    let sb = confidential().spawn().await.unwrap();
    let t = tokens(&sb, &[("sandbox_account", "Jane Doe")]).await;
    let (st, body) = get_account(&sb, &s(&t, "access_token")).await;
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["account"]["name"], "Jane Doe");
    assert_eq!(
        v["account"]["id"].as_u64().unwrap(),
        kit_sandbox::SandboxHandle::account_id("Jane Doe")
    );
    assert_eq!(
        v["account"]["primary_email_address"],
        "jane-doe@example.com"
    );
    assert_eq!(v["user"]["email"], "jane-doe@example.com");
    assert!(v["user"]["id"].is_u64());
    for k in ["plan_type", "created_at"] {
        assert!(v["account"][k].is_string(), "{k}");
    }
    for k in ["name", "friendly_name", "utc_offset"] {
        assert!(v["account"]["timezone"][k].is_string(), "{k}");
    }
    // Another sandbox gives the same account the same id.
    let sb2 = confidential().spawn().await.unwrap();
    let t2 = tokens(&sb2, &[("sandbox_account", "Jane Doe")]).await;
    let (_, body2) = get_account(&sb2, &s(&t2, "access_token")).await;
    let v2: Value = serde_json::from_str(&body2).unwrap();
    assert_eq!(v2["account"]["id"], v["account"]["id"]);
}

#[tokio::test]
async fn api_401_bodies_are_exact() {
    let sb = confidential().access_ttl(100).spawn().await.unwrap();
    let t = tokens(&sb, &[]).await;
    let (st, body) = get_account(&sb, "garbage").await;
    assert_eq!(
        (st, body.as_str()),
        (401, r#"{"errors":["The access token is invalid"]}"#)
    );
    let resp = http().get(sb.url("/v4/account")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"errors":["The access token is invalid"]}"#
    );
    sb.advance_clock(100);
    let (st, body) = get_account(&sb, &s(&t, "access_token")).await;
    assert_eq!(
        (st, body.as_str()),
        (401, r#"{"errors":["The access token expired"]}"#)
    );
    // Refreshing after expiry works and the new token is good.
    let (_, t2) = refresh(&sb, &s(&t, "refresh_token")).await;
    assert_eq!(get_account(&sb, &s(&t2, "access_token")).await.0, 200);
    assert!(sb.revoke_grant(sb.grants()[0].id));
    let (st, body) = get_account(&sb, &s(&t2, "access_token")).await;
    assert_eq!(
        (st, body.as_str()),
        (401, r#"{"errors":["The access token was revoked"]}"#)
    );
    // Other /v4 paths authenticate the same way.
    let resp = http()
        .get(sb.url("/v4/subscribers"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(sb.stats().unauthorized_401, 5);
}

#[tokio::test]
async fn rate_limit_is_per_access_token_per_rolling_minute() {
    let sb = confidential().rate_limit(5).spawn().await.unwrap();
    let a = tokens(&sb, &[("tenant_name", "a")]).await;
    let b = tokens(&sb, &[("tenant_name", "b")]).await;
    let a_tok = s(&a, "access_token");
    for _ in 0..5 {
        assert_eq!(get_account(&sb, &a_tok).await.0, 200);
    }
    assert_eq!(get_account(&sb, &a_tok).await.0, 429);
    assert_eq!(get_account(&sb, &a_tok).await.0, 429);
    assert_eq!(
        get_account(&sb, &s(&b, "access_token")).await.0,
        200,
        "another token has its own budget"
    );
    sb.advance_clock(61);
    assert_eq!(get_account(&sb, &a_tok).await.0, 200, "the window rolled");
    let st = sb.stats();
    assert_eq!(st.rate_limited_429, 2);
    assert_eq!(st.api_ok, 7);
}
