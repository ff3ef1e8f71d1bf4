//! An app's own, hand-written OAuth against the Kit sandbox — no broker involved: authorize,
//! Allow on the consent page, exchange the code with the http adapter. What an app adopting the
//! broker has in its database before it imports.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::panic)]

use kit_oauth::core::{
    AuthorizationCode, AuthorizeRequest, CsrfState, PkceVerifier, TokenEndpoint as _,
};
use kit_oauth::http::{KitEndpoints, KitOAuthClient};
use kit_sandbox::SandboxHandle;

/// Tokens an app got from Kit by itself.
pub struct AppTokens {
    pub access: String,
    pub refresh: String,
    pub expires_in: u64,
}

fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\"")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split("name=\"").nth(1)?.split('"').next()?;
            let value = rest.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.replace("&amp;", "&")))
        })
        .collect()
}

fn form_action(html: &str) -> String {
    html.split("<form")
        .nth(1)
        .and_then(|f| f.split("action=\"").nth(1))
        .and_then(|a| a.split('"').next())
        .unwrap()
        .to_owned()
}

/// Connects `account` to the app registered at `sandbox` as (`client_id`, `secret`,
/// `redirect_uri`), the way an app without kit-oauth does.
pub async fn oauth(
    sandbox: &SandboxHandle,
    client_id: &str,
    secret: &str,
    redirect_uri: &str,
    account: &str,
) -> AppTokens {
    let endpoints = KitEndpoints::builder()
        .base_url(sandbox.base_url())
        .client_id(client_id)
        .client_secret(secret)
        .redirect_uri(redirect_uri)
        .build()
        .unwrap();
    let client = KitOAuthClient::new(endpoints).unwrap();
    let mut rng = rand::rngs::OsRng;
    let state = CsrfState::generate(&mut rng);
    let verifier = PkceVerifier::generate(&mut rng);
    let url = client.authorize_url(&AuthorizeRequest {
        state: &state,
        challenge: &verifier.challenge(),
        tenant: None,
        scope: None,
    });
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = browser.get(url).send().await.unwrap().text().await.unwrap();
    let mut form = hidden_inputs(&consent);
    form.push(("account".into(), account.into()));
    form.push(("decision".into(), "allow".into()));
    let answered = browser
        .post(sandbox.url(&form_action(&consent)))
        .form(&form)
        .send()
        .await
        .unwrap();
    let location = answered.headers()["location"].to_str().unwrap().to_owned();
    let code = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map_or_else(|| panic!("no code in {location}"), |(_, v)| v.into_owned());
    let tokens = client
        .exchange_code(&AuthorizationCode::new(code), &verifier)
        .await
        .unwrap();
    AppTokens {
        access: tokens.access_token.expose_secret().to_owned(),
        refresh: tokens.refresh_token.unwrap().expose_secret().to_owned(),
        expires_in: tokens.expires_in.unwrap(),
    }
}
