//! Throughput of a paged list through the typed client against kit-sandbox over loopback:
//! 5,000 subscribers, streamed page by page (`per_page` 1000 and 100).
//!
//! ```sh
//! cargo bench -p kit-oauth-http --bench kit_api_paging
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::TryStreamExt as _;
use kit_oauth_core::{AccessToken, ConnectionId};
use kit_oauth_http::kit_api::{BulkSubscriber, SubscriberFilter};
use kit_oauth_http::{
    KitClient, KitEndpoints, KitOAuthClient, ReauthReason, TokenSource, TokenSourceError,
};
use kit_sandbox::{Sandbox, SandboxHandle};

const REDIRECT: &str = "http://127.0.0.1:9/kit/oauth/callback";
const ITEMS: usize = 5_000;

/// One fixed token: the bench measures paging, not refreshing.
struct Fixed(AccessToken);

impl TokenSource for Fixed {
    async fn access_token(&self, _: &ConnectionId) -> Result<AccessToken, TokenSourceError> {
        Ok(self.0.clone())
    }
    async fn force_refresh(
        &self,
        _: &ConnectionId,
        stale: &AccessToken,
    ) -> Result<AccessToken, TokenSourceError> {
        Ok(stale.clone())
    }
    async fn token_refused(
        &self,
        _: &ConnectionId,
        _: &AccessToken,
        reason: &ReauthReason,
    ) -> Result<AccessToken, TokenSourceError> {
        Err(TokenSourceError::ReauthRequired {
            reason: reason.message.clone(),
        })
    }
}

async fn setup() -> (SandboxHandle, KitClient<Arc<Fixed>>) {
    let sb = Sandbox::builder()
        .client_id("bench-app")
        .client_secret("bench-secret")
        .redirect_uri(REDIRECT)
        .auto_approve(true)
        .rate_limit(u32::MAX)
        .spawn()
        .await
        .unwrap();
    let endpoints = KitEndpoints::builder()
        .base_url(sb.base_url())
        .client_id("bench-app")
        .client_secret("bench-secret")
        .redirect_uri(REDIRECT)
        .build()
        .unwrap();
    let oauth = KitOAuthClient::new(endpoints.clone()).unwrap();
    let (access, _) = common::first_tokens(&oauth).await;
    let client = KitClient::new(&endpoints, Arc::new(Fixed(access))).unwrap();
    let api = client.api(ConnectionId::generate(&mut rand::rngs::OsRng));
    for chunk in 0..ITEMS / 100 {
        let subs: Vec<BulkSubscriber> = (0..100)
            .map(|i| BulkSubscriber {
                email_address: format!("bench{chunk}-{i}@example.com"),
                first_name: Some("Bench".into()),
                state: None,
            })
            .collect();
        api.bulk_upsert_subscribers(&subs, None).await.unwrap();
    }
    (sb, client)
}

fn paging(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_sb, client) = rt.block_on(setup());
    let conn = ConnectionId::generate(&mut rand::rngs::OsRng);
    let mut group = c.benchmark_group("kit_api_paging");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.sample_size(20);
    for per_page in [1000u32, 100] {
        group.bench_function(format!("subscribers_5000_per_page_{per_page}"), |b| {
            b.to_async(&rt).iter(|| async {
                let n = client
                    .api(conn.clone())
                    .list_subscribers(&SubscriberFilter::default())
                    .per_page(per_page)
                    .items()
                    .try_fold(0usize, |n, _| async move { Ok(n + 1) })
                    .await
                    .unwrap();
                assert_eq!(n, ITEMS);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, paging);
criterion_main!(benches);
