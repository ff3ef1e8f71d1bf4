//! The sandbox walks the cases a live Doorkeeper 5.5 (Kit's OAuth server) was observed to
//! answer, in both of Doorkeeper's rotation modes, and must give the same status, `error`,
//! `error_description` and 401 body at every step (`docs/kit-protocol.md`, "Doorkeeper
//! observed"). Token values differ by nature; a success is checked for its shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kit_sandbox::SandboxHandle;
use serde_json::{Value, json};

const REVOKED: &str = r#"{"errors":["The access token was revoked"]}"#;
const EXPIRED: &str = r#"{"errors":["The access token expired"]}"#;
const INVALID: &str = r#"{"errors":["The access token is invalid"]}"#;

fn invalid_grant() -> (u16, Value) {
    (
        400,
        json!({"error": "invalid_grant", "error_description": INVALID_GRANT}),
    )
}

/// A sandbox configured like the observed Doorkeeper: confidential client, 7200 s tokens.
async fn doorkeeper_like(rotation: Rotation) -> SandboxHandle {
    confidential()
        .rotation(rotation)
        .access_ttl(7_200)
        .spawn()
        .await
        .unwrap()
}

/// A success carries a new pair in Doorkeeper's shape; returns it.
#[track_caller]
fn pair(answer: (u16, Value), expires_in: u64) -> Value {
    let (st, t) = answer;
    assert_eq!(st, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "public");
    assert_eq!(t["expires_in"], expires_in);
    assert!(t["created_at"].is_i64());
    assert!(t["access_token"].is_string() && t["refresh_token"].is_string());
    t
}

async fn account(sb: &SandboxHandle, t: &Value) -> (u16, String) {
    get_account(sb, &s(t, "access_token")).await
}

async fn refresh_of(sb: &SandboxHandle, t: &Value) -> (u16, Value) {
    refresh(sb, &s(t, "refresh_token")).await
}

#[tokio::test]
async fn rotation_steps_match_doorkeeper_with_previous_refresh_token() {
    rotation_steps(Rotation::RevokeOnUse).await;
}

#[tokio::test]
async fn rotation_steps_match_doorkeeper_without_previous_refresh_token() {
    rotation_steps(Rotation::Strict).await;
}

async fn rotation_steps(mode: Rotation) {
    let rou = mode == Rotation::RevokeOnUse;
    let sb = doorkeeper_like(mode).await;
    let t1 = pair(exchange(&sb, &code(&sb, &[]).await).await, 7_200);
    // The same exchange as a form body on the unversioned path.
    let c = code(&sb, &[]).await;
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
    pair((200, resp.json().await.unwrap()), 7_200);
    assert_eq!(account(&sb, &t1).await.0, 200);

    let t2 = pair(refresh_of(&sb, &t1).await, 7_200);
    let old_at = account(&sb, &t1).await;
    if rou {
        assert_eq!(old_at.0, 200, "AT1 works until AT2 is used");
    } else {
        assert_eq!(old_at, (401, REVOKED.to_owned()));
    }
    // RT1 again, before AT2 is used.
    let again = refresh_of(&sb, &t1).await;
    let t3 = if rou {
        Some(pair(again, 7_200))
    } else {
        assert_eq!(again, invalid_grant());
        None
    };
    assert_eq!(account(&sb, &t2).await.0, 200);
    assert_eq!(
        refresh_of(&sb, &t1).await,
        invalid_grant(),
        "after AT2 was used"
    );
    assert_eq!(account(&sb, &t1).await, (401, REVOKED.to_owned()));
    if let Some(t3) = t3 {
        assert_eq!(account(&sb, &t3).await.0, 200, "AT3 outlives RT1");
        pair(refresh_of(&sb, &t3).await, 7_200);
        pair(refresh_of(&sb, &t2).await, 7_200);
    }

    // A chain RTa -> RTb -> RTc where only ATc is used.
    let ta = tokens(&sb, &[("tenant_name", "chain")]).await;
    let tb = pair(refresh_of(&sb, &ta).await, 7_200);
    let tc = pair(refresh_of(&sb, &tb).await, 7_200);
    assert_eq!(account(&sb, &tc).await.0, 200);
    assert_eq!(refresh_of(&sb, &tb).await, invalid_grant());
    let from_a = refresh_of(&sb, &ta).await;
    if rou {
        pair(from_a, 7_200);
    } else {
        assert_eq!(from_a, invalid_grant());
    }
    assert_eq!(account(&sb, &tb).await, (401, REVOKED.to_owned()));
    assert_eq!(
        refresh_of(&sb, &ta).await,
        invalid_grant(),
        "presenting ATb, even revoked, spent RTa"
    );

    let stats = sb.stats();
    // Counted alike in both modes: RT1 twice after its refresh, RTb once, RTa twice.
    assert_eq!(stats.refresh_reuse_attempts, 5);
    assert_eq!(stats.refresh_reuse_accepted, if rou { 2 } else { 0 });
    assert_eq!(
        stats.grants_revoked, 0,
        "no Doorkeeper mode ends a grant on reuse"
    );
}

#[tokio::test]
async fn revocation_matches_doorkeeper() {
    for mode in [Rotation::RevokeOnUse, Rotation::Strict] {
        let sb = doorkeeper_like(mode).await;
        let revoke = |form: Vec<(&'static str, String)>, basic: Option<&'static str>| {
            let mut req = http().post(sb.url("/v4/oauth/revoke")).form(&form);
            if let Some(secret) = basic {
                req = req.basic_auth(CLIENT, Some(secret));
            }
            async move {
                let resp = req.send().await.unwrap();
                (resp.status().as_u16(), resp.text().await.unwrap())
            }
        };
        let ok = (200, "{}".to_owned());
        let refused = (
            403,
            r#"{"error":"unauthorized_client","error_description":"You are not authorized to revoke this token"}"#.to_owned(),
        );
        let creds = |token: &Value, k: &str, secret: &'static str| {
            vec![
                ("token", s(token, k)),
                ("client_id", CLIENT.to_owned()),
                ("client_secret", secret.to_owned()),
            ]
        };

        let t = tokens(&sb, &[]).await;
        assert_eq!(revoke(creds(&t, "access_token", SECRET), None).await, ok);
        assert_eq!(account(&sb, &t).await, (401, REVOKED.to_owned()));
        assert_eq!(refresh_of(&sb, &t).await, invalid_grant());

        let t = tokens(&sb, &[]).await;
        assert_eq!(
            revoke(creds(&t, "access_token", "wrong"), None).await,
            refused
        );
        let at = vec![("token", s(&t, "access_token"))];
        assert_eq!(revoke(at.clone(), Some("wrong")).await, refused);
        assert_eq!(revoke(at, None).await, refused);
        assert_eq!(account(&sb, &t).await.0, 200, "{mode}");
        let rt = vec![("token", s(&t, "refresh_token"))];
        assert_eq!(revoke(rt, Some(SECRET)).await, ok);
        assert_eq!(account(&sb, &t).await, (401, REVOKED.to_owned()));
        assert_eq!(refresh_of(&sb, &t).await, invalid_grant());
        let unknown = vec![
            ("token", "unknown".to_owned()),
            ("client_id", CLIENT.to_owned()),
            ("client_secret", SECRET.to_owned()),
        ];
        assert_eq!(revoke(unknown, None).await, ok);
        let stats = sb.stats();
        assert_eq!((stats.revocations, stats.revocations_refused), (3, 3));
    }
}

#[tokio::test]
async fn expired_tokens_match_doorkeeper() {
    for mode in [Rotation::RevokeOnUse, Rotation::Strict] {
        let sb = confidential()
            .rotation(mode)
            .access_ttl(2)
            .refresh_access_ttl(2)
            .spawn()
            .await
            .unwrap();
        let t = tokens(&sb, &[]).await;
        sb.advance_clock(3);
        assert_eq!(account(&sb, &t).await, (401, EXPIRED.to_owned()));
        let t2 = pair(refresh_of(&sb, &t).await, 2);
        sb.advance_clock(3);
        // Doorkeeper revokes only a pair whose access token is still valid: the revoke
        // answers 200 and the refresh token goes on working.
        let resp = http()
            .post(sb.url("/v4/oauth/revoke"))
            .basic_auth(CLIENT, Some(SECRET))
            .form(&[("token", s(&t2, "refresh_token"))])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "{}");
        pair(refresh_of(&sb, &t2).await, 2);
        assert_eq!(sb.stats().grants_revoked, 0, "{mode}");
    }
    // The stricter switch revokes it anyway (RFC 7009's reading).
    let sb = confidential()
        .access_ttl(2)
        .revoke_expired(true)
        .spawn()
        .await
        .unwrap();
    let t = tokens(&sb, &[]).await;
    sb.advance_clock(3);
    let resp = http()
        .post(sb.url("/v4/oauth/revoke"))
        .basic_auth(CLIENT, Some(SECRET))
        .form(&[("token", s(&t, "refresh_token"))])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(refresh_of(&sb, &t).await, invalid_grant());
    assert_eq!(sb.stats().grants_revoked, 1);
}

#[tokio::test]
async fn code_exchange_and_pkce_match_doorkeeper() {
    let sb = doorkeeper_like(Rotation::RevokeOnUse).await;
    let c = code(&sb, &[]).await;
    let t = pair(exchange(&sb, &c).await, 7_200);
    assert_eq!(exchange(&sb, &c).await, invalid_grant(), "same code again");
    assert_eq!(account(&sb, &t).await.0, 200, "a replay keeps the tokens");

    let c = pkce_code(&sb, &[]).await;
    let with = |v: Option<&str>| {
        let mut body = json!({"client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code", "code": c, "redirect_uri": REDIRECT});
        if let Some(v) = v {
            body["code_verifier"] = json!(v);
        }
        body
    };
    let wrong = "w".repeat(43);
    assert_eq!(
        post_json(&sb, "/v4/oauth/token", with(Some(&wrong))).await,
        invalid_grant()
    );
    assert_eq!(
        post_json(&sb, "/v4/oauth/token", with(None)).await,
        (
            400,
            json!({"error": "invalid_request", "error_description": "Missing required parameter: code_verifier."})
        )
    );
    pair(
        post_json(&sb, "/v4/oauth/token", with(Some(VERIFIER))).await,
        7_200,
    );
    // A code without PKCE needs no verifier.
    pair(exchange(&sb, &code(&sb, &[]).await).await, 7_200);
    let stats = sb.stats();
    assert_eq!(stats.codes_redeemed, 3);
    assert_eq!(stats.invalid_grant_total, 2);
}

#[tokio::test]
async fn token_endpoint_errors_match_doorkeeper() {
    let sb = doorkeeper_like(Rotation::RevokeOnUse).await;
    let url = sb.url("/v4/oauth/token");
    let t = tokens(&sb, &[]).await;
    let rt = s(&t, "refresh_token");
    let refresh_body = |creds: &[(&str, &str)]| {
        let mut body = json!({"grant_type": "refresh_token", "refresh_token": rt});
        for (k, v) in creds {
            body[*k] = json!(v);
        }
        body
    };
    let wrong = post_json(
        &sb,
        "/v4/oauth/token",
        refresh_body(&[("client_id", CLIENT), ("client_secret", "wrong")]),
    )
    .await;
    assert_eq!(
        wrong,
        (
            401,
            json!({"error": "invalid_client", "error_description": INVALID_CLIENT})
        )
    );
    assert_eq!(
        post_json(&sb, "/v4/oauth/token", refresh_body(&[])).await,
        invalid_grant(),
        "no client credentials"
    );
    let resp = http()
        .post(&url)
        .basic_auth(CLIENT, Some(SECRET))
        .json(&refresh_body(&[]))
        .send()
        .await
        .unwrap();
    pair((resp.status().as_u16(), resp.json().await.unwrap()), 7_200);
    assert_eq!(
        post_json(&sb, "/v4/oauth/token", json!({"grant_type": "refresh_token", "refresh_token": "nope", "client_id": CLIENT, "client_secret": SECRET})).await,
        invalid_grant()
    );
    assert_eq!(
        post_json(&sb, "/v4/oauth/token", json!({"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET})).await,
        (
            400,
            json!({"error": "unsupported_grant_type", "error_description": "The authorization grant type is not supported by the authorization server."})
        )
    );
    assert_eq!(
        post_json(
            &sb,
            "/v4/oauth/token",
            json!({"client_id": CLIENT, "client_secret": SECRET})
        )
        .await,
        (
            400,
            json!({"error": "invalid_request", "error_description": "Missing required parameter: grant_type."})
        )
    );
    let resp = http()
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=UTF-8");
    assert_eq!(resp.text().await.unwrap(), "");
    assert_eq!(sb.stats().refreshes_ok, 1, "only the Basic refresh rotated");
}

#[tokio::test]
async fn api_refusals_match_doorkeeper() {
    let sb = doorkeeper_like(Rotation::RevokeOnUse).await;
    let resp = http().get(sb.url("/v4/account")).send().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap()),
        (401, INVALID.to_owned())
    );
    assert_eq!(get_account(&sb, "unknown").await, (401, INVALID.to_owned()));
    assert_eq!(sb.stats().unauthorized_401, 2);
}

#[tokio::test]
async fn authorize_errors_are_doorkeeper_pages() {
    let sb = doorkeeper_like(Rotation::RevokeOnUse).await;
    let s512 = [("code_challenge", "abc"), ("code_challenge_method", "S512")];
    let mut urls: Vec<(String, &str)> = vec![(
        authorize_url(&sb, &s512),
        "The code challenge method must be plain or S256.",
    )];
    urls.push((
        authorize_url(&sb, &[]).replace("scope=public", "scope=admin"),
        "The requested scope is invalid, unknown, or malformed.",
    ));
    urls.push((
        authorize_url(&sb, &[])
            .replace(&urlencoded(REDIRECT), "http%3A%2F%2F127.0.0.1%3A9%2Fother"),
        "The requested redirect uri is malformed or doesn&#39;t match client redirect URI.",
    ));
    urls.push((
        authorize_url(&sb, &[]).replace(CLIENT, "unknown-client"),
        "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
    ));
    for (url, sentence) in urls {
        let resp = http().get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        assert!(!resp.headers().contains_key("location"), "{url}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let page = resp.text().await.unwrap();
        assert!(page.contains(sentence), "{url}: {page}");
    }
    assert_eq!(sb.stats().codes_issued, 0);
}

fn urlencoded(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
