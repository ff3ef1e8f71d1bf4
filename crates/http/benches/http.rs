//! Criterion benchmarks of the adapter over loopback against kit-sandbox.
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-http cargo bench -p kit-oauth-http --bench http
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::hint::black_box;
use std::sync::Mutex;

use criterion::{Criterion, criterion_group, criterion_main};
use kit_oauth_core::{
    AccountLookup, AuthorizeRequest, CsrfState, PkceVerifier, TenantName, TokenEndpoint,
};
use kit_oauth_http::{KitEndpoints, KitOAuthClient, TokenBody};
use kit_sandbox::Sandbox;

const REDIRECT: &str = "http://127.0.0.1:9/kit/oauth/callback";

fn client(base: &str, body: TokenBody) -> KitOAuthClient {
    KitOAuthClient::new(
        KitEndpoints::builder()
            .base_url(base)
            .client_id("bench-app")
            .client_secret("bench-secret")
            .redirect_uri(REDIRECT)
            .token_body(body)
            .build()
            .unwrap(),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt.block_on(async {
        Sandbox::builder()
            .client_id("bench-app")
            .client_secret("bench-secret")
            .redirect_uri(REDIRECT)
            .auto_approve(true)
            .rate_limit(u32::MAX)
            .rotation(kit_sandbox::Rotation::Strict)
            .spawn()
            .await
            .unwrap()
    });

    for (name, body) in [("json", TokenBody::Json), ("form", TokenBody::Form)] {
        let kit = client(sandbox.base_url(), body);
        let (_, refresh) = rt.block_on(common::first_tokens(&kit));
        // The refresh token rotates on every call: keep the latest between iterations (the lock
        // is never held across an await).
        let current = Mutex::new(refresh);
        c.bench_function(
            &format!("refresh round-trip over loopback ({name} body)"),
            |b| {
                b.to_async(&rt).iter(|| async {
                    let token = current.lock().unwrap().clone();
                    let next = kit.refresh(&token).await.unwrap();
                    *current.lock().unwrap() = next.refresh_token.unwrap();
                    black_box(next.access_token);
                });
            },
        );
    }

    let kit = client(sandbox.base_url(), TokenBody::Json);
    let (access, _) = rt.block_on(common::first_tokens(&kit));
    c.bench_function("GET /v4/account round-trip over loopback", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(kit.account(&access).await.unwrap()) });
    });

    let mut rng = rand::rngs::OsRng;
    let state = CsrfState::generate(&mut rng);
    let challenge = PkceVerifier::generate(&mut rng).challenge();
    let tenant = TenantName::parse("shop-a").unwrap();
    c.bench_function("authorize URL (PKCE S256, state, tenant)", |b| {
        b.iter(|| {
            black_box(kit.authorize_url(&AuthorizeRequest {
                state: &state,
                challenge: &challenge,
                tenant: Some(&tenant),
                scope: Some("public"),
            }))
        });
    });

    let stats = sandbox.stats();
    println!(
        "sandbox served {} refreshes, {} invalid_grant",
        stats.refreshes_ok, stats.invalid_grant_total
    );
    assert_eq!(stats.invalid_grant_total, 0);
    drop(sandbox);
}

criterion_group!(benches, bench);
criterion_main!(benches);
