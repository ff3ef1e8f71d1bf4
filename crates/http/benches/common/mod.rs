//! What both benches need before they measure: a first token pair from the sandbox.
#![allow(clippy::unwrap_used)]

use kit_oauth_core::{
    AccessToken, AuthorizationCode, AuthorizeRequest, CsrfState, PkceVerifier, RefreshToken,
    TokenEndpoint as _,
};
use kit_oauth_http::KitOAuthClient;

/// Authorize (auto-approved) and exchange: the first token pair.
pub(crate) async fn first_tokens(kit: &KitOAuthClient) -> (AccessToken, RefreshToken) {
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
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = browser.get(url).send().await.unwrap();
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let t = kit
        .exchange_code(&AuthorizationCode::new(code), &verifier)
        .await
        .unwrap();
    (t.access_token, t.refresh_token.unwrap())
}
