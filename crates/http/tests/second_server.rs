//! The adapter against a second, independently written OAuth 2.0 server (not Kit, not the
//! sandbox), to catch assumptions shared by our client and our sandbox.
//!
//! Run by hand with the npm package `oauth2-mock-server` (v9):
//!
//! ```sh
//! npm install oauth2-mock-server && npx oauth2-mock-server -p 8089 &
//! KIT_OAUTH_SECOND_SERVER=http://127.0.0.1:8089 \
//!   cargo test -p kit-oauth-http --test second_server -- --ignored
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use kit_oauth_core::{RevocableToken, TokenEndpoint};
use kit_oauth_http::{KitEndpoints, KitOAuthClient, TokenBody};

#[tokio::test]
#[ignore = "needs KIT_OAUTH_SECOND_SERVER pointing at a running independent OAuth 2.0 server"]
async fn exchange_refresh_revoke_against_an_independent_server() {
    let base = std::env::var("KIT_OAUTH_SECOND_SERVER")
        .expect("set KIT_OAUTH_SECOND_SERVER=http://127.0.0.1:PORT");
    for body in [TokenBody::Form, TokenBody::Json] {
        let client = KitOAuthClient::new(
            KitEndpoints::builder()
                .base_url(&base)
                .authorize_url(format!("{base}/authorize"))
                .token_url(format!("{base}/token"))
                .revoke_url(format!("{base}/revoke"))
                .client_id("second-server-client")
                .client_secret("second-server-secret")
                .redirect_uri(REDIRECT)
                .token_body(body)
                .build()
                .unwrap(),
        )
        .unwrap();
        let auth = authorize(&client, Some("shop-a"), Some("openid")).await;
        let tokens = client
            .exchange_code(&auth.code, &auth.verifier)
            .await
            .unwrap();
        // Not Kit: no created_at; the lifetime counts from arrival.
        assert_eq!(tokens.created_at, None);
        assert!(tokens.expires_in.is_some());
        let refresh = tokens.refresh_token.expect("a refresh token");
        let next = client.refresh(&refresh).await.unwrap();
        // This server signs JWTs per second, so the access token may repeat; the refresh token
        // is a fresh UUID each time.
        assert!(next.refresh_token.as_ref().is_some_and(|r| r != &refresh));
        client
            .revoke(RevocableToken::Access(&next.access_token))
            .await
            .unwrap();
    }
}
