//! Helpers shared by the black-box tests: a client that does not follow redirects, PKCE, and
//! the authorize → code → token dance over real loopback HTTP.
#![allow(dead_code, unreachable_pub, unused_imports)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use kit_sandbox::Rotation;
use kit_sandbox::{Sandbox, SandboxBuilder, SandboxHandle};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub const REDIRECT: &str = "http://127.0.0.1:9/kit/oauth/callback";
pub const CLIENT: &str = "test-client";
pub const SECRET: &str = "test-secret";
/// Doorkeeper's one `invalid_grant` sentence.
pub const INVALID_GRANT: &str = "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.";
/// Doorkeeper's `invalid_client` sentence.
pub const INVALID_CLIENT: &str = "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.";
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

pub fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// A confidential client with auto-approve.
pub fn confidential() -> SandboxBuilder {
    Sandbox::builder()
        .client_id(CLIENT)
        .client_secret(SECRET)
        .redirect_uri(REDIRECT)
        .auto_approve(true)
}

/// A public (PKCE) client with auto-approve.
pub fn public() -> SandboxBuilder {
    Sandbox::builder()
        .client_id(CLIENT)
        .redirect_uri(REDIRECT)
        .auto_approve(true)
}

pub fn query_param(location: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

pub fn authorize_url(sb: &SandboxHandle, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&sb.url("/v4/oauth/authorize")).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", CLIENT)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", "public")
            .append_pair("state", "st-123");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    url.to_string()
}

/// GET authorize (auto-approve) and return the Location header.
pub async fn authorize(sb: &SandboxHandle, extra: &[(&str, &str)]) -> String {
    let resp = http().get(authorize_url(sb, extra)).send().await.unwrap();
    assert_eq!(resp.status(), 302, "{:?}", resp.text().await);
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// A code for a confidential client (no PKCE).
pub async fn code(sb: &SandboxHandle, extra: &[(&str, &str)]) -> String {
    let loc = authorize(sb, extra).await;
    assert_eq!(query_param(&loc, "state").as_deref(), Some("st-123"));
    query_param(&loc, "code").unwrap()
}

/// A code bound to `VERIFIER`'s challenge.
pub async fn pkce_code(sb: &SandboxHandle, extra: &[(&str, &str)]) -> String {
    let c = challenge(VERIFIER);
    let mut all = vec![
        ("code_challenge", c.as_str()),
        ("code_challenge_method", "S256"),
    ];
    all.extend_from_slice(extra);
    code(sb, &all).await
}

pub async fn post_json(sb: &SandboxHandle, path: &str, body: Value) -> (u16, Value) {
    let resp = http().post(sb.url(path)).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

pub async fn exchange(sb: &SandboxHandle, code: &str) -> (u16, Value) {
    post_json(
        sb,
        "/v4/oauth/token",
        serde_json::json!({
            "client_id": CLIENT, "client_secret": SECRET, "grant_type": "authorization_code",
            "code": code, "redirect_uri": REDIRECT
        }),
    )
    .await
}

pub async fn refresh(sb: &SandboxHandle, refresh_token: &str) -> (u16, Value) {
    post_json(
        sb,
        "/v4/oauth/token",
        serde_json::json!({
            "client_id": CLIENT, "client_secret": SECRET, "grant_type": "refresh_token",
            "refresh_token": refresh_token
        }),
    )
    .await
}

/// Tokens for a fresh grant of a confidential client.
pub async fn tokens(sb: &SandboxHandle, extra: &[(&str, &str)]) -> Value {
    let c = code(sb, extra).await;
    let (status, body) = exchange(sb, &c).await;
    assert_eq!(status, 200, "{body}");
    body
}

pub async fn get_account(sb: &SandboxHandle, token: &str) -> (u16, String) {
    let resp = http()
        .get(sb.url("/v4/account"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

pub fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
        .to_owned()
}
