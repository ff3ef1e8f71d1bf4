//! A complete install against the local kit-sandbox: authorize URL → consent (auto-approved)
//! → code exchange → account → refresh (rotation) → revoke.
//!
//! ```sh
//! cargo run -p kit-oauth-http --example exchange_and_refresh
//! ```

use std::error::Error;

use kit_oauth_core::{
    AccountLookup, AuthorizationCode, AuthorizeRequest, Clock as _, CsrfState, PkceVerifier,
    RevocableToken, SystemClock, TokenEndpoint, TokenSet,
};
use kit_oauth_http::{KitEndpoints, KitOAuthClient};
use kit_sandbox::Sandbox;

const REDIRECT: &str = "http://127.0.0.1:8080/kit/oauth/callback";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // A local Kit with a confidential app that approves consent by itself.
    let sandbox = Sandbox::builder()
        .client_id("my-app")
        .client_secret("my-secret")
        .redirect_uri(REDIRECT)
        .auto_approve(true)
        .rotation(kit_sandbox::Rotation::Strict)
        .spawn()
        .await?;

    // The adapter, pointed at the sandbox instead of https://api.kit.com.
    let kit = KitOAuthClient::new(
        KitEndpoints::builder()
            .base_url(sandbox.base_url())
            .client_id("my-app")
            .client_secret("my-secret")
            .redirect_uri(REDIRECT)
            .build()?,
    )?;

    // 1. The authorize URL (PKCE S256 + state) the browser is sent to.
    let mut rng = rand::rngs::OsRng;
    let state = CsrfState::generate(&mut rng);
    let verifier = PkceVerifier::generate(&mut rng);
    let challenge = verifier.challenge();
    let url = kit.authorize_url(&AuthorizeRequest {
        state: &state,
        challenge: &challenge,
        tenant: None,
        scope: None,
    });
    println!("authorize: {}", url.path());

    // 2. The "browser": the sandbox approves and redirects to the callback with a code.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let answer = browser.get(url).send().await?;
    let location = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .ok_or("no redirect from authorize")?
        .to_str()?;
    let callback = url::Url::parse(location)?;
    let param = |name: &str| {
        callback
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    if param("state").as_deref() != Some(state.expose_secret()) {
        return Err("state mismatch".into());
    }
    let code = AuthorizationCode::new(param("code").ok_or("no code in callback")?);

    // 3. Exchange the code, read the account.
    let response = kit.exchange_code(&code, &verifier).await?;
    let tokens = TokenSet::from_response(response, SystemClock.now(), None)?;
    let account = kit.account(tokens.access()).await?;
    println!("connected Kit account {} ({})", account.id, account.name);
    println!(
        "access token expires at unix {}",
        tokens.expires_at().unix_seconds()
    );

    // 4. Refresh: the refresh token rotates; the old one is spent.
    let refreshed = kit.refresh(tokens.refresh()).await?;
    let renewed = TokenSet::from_response(refreshed, SystemClock.now(), None)?;
    println!(
        "refreshed: new pair, expires at unix {}, rotated = {}",
        renewed.expires_at().unix_seconds(),
        renewed.refresh() != tokens.refresh()
    );
    if let Err(error) = kit.refresh(tokens.refresh()).await {
        // Secret-free by construction: safe to print.
        println!("reusing the spent refresh token: {error}");
    }

    // 5. Revoke the grant.
    kit.revoke(RevocableToken::Refresh(renewed.refresh()))
        .await?;
    println!(
        "revoked; sandbox stats: {} refresh(es)",
        sandbox.stats().refreshes_ok
    );
    sandbox.shutdown().await;
    Ok(())
}
