//! Property: paging any list of the sandbox with any `per_page` through the typed client's
//! stream visits every item exactly once, in Kit's order, in pages of `per_page` (the last one
//! possibly shorter).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::OnceLock;

use common::*;
use futures_util::TryStreamExt as _;
use kit_oauth_core::TokenEndpoint;
use kit_oauth_http::kit_api::{
    BulkSubscriber, ListPage, SortOrder, Subscriber, SubscriberFilter, Tag,
};
use kit_oauth_http::{KitClient, RetryPolicy, TokenBody};
use proptest::prelude::*;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

#[derive(Debug, Clone, Copy)]
enum Which {
    Tags,
    SubscribersDesc,
    SubscribersAsc,
}

/// Creates `n` items in a fresh sandbox account, pages through them, and returns (the ids in
/// creation order, the pages' ids).
async fn run(which: Which, n: usize, per_page: u32) -> (Vec<u64>, Vec<Vec<u64>>) {
    let sb = confidential().spawn().await.unwrap();
    let oauth = oauth(&sb, Some(SECRET), TokenBody::Json);
    let auth = authorize(&oauth, None, None).await;
    let tokens = oauth
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let source = SimpleSource::new(oauth, tokens.access_token, tokens.refresh_token.unwrap());
    let endpoints = endpoints_for(&sb, Some(SECRET)).build().unwrap();
    let client = KitClient::new(&endpoints, source)
        .unwrap()
        .with_retry_policy(RetryPolicy::none());
    let api = client.api(connection_id());
    let mut created = Vec::new();
    // At most 100 per bulk call, so every call is answered synchronously.
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        match which {
            Which::Tags => {
                let names: Vec<String> = chunk.iter().map(|i| format!("tag-{i}")).collect();
                let refs: Vec<&str> = names.iter().map(String::as_str).collect();
                let done = api
                    .bulk_create_tags(&refs, None)
                    .await
                    .unwrap()
                    .done()
                    .unwrap();
                created.extend(done.items.iter().map(|t| t.id.0));
            }
            Which::SubscribersDesc | Which::SubscribersAsc => {
                let subs: Vec<BulkSubscriber> = chunk
                    .iter()
                    .map(|i| BulkSubscriber {
                        email_address: format!("p{i}@example.com"),
                        first_name: None,
                        state: None,
                    })
                    .collect();
                let done = api
                    .bulk_upsert_subscribers(&subs, None)
                    .await
                    .unwrap()
                    .done()
                    .unwrap();
                created.extend(done.items.iter().map(|s| s.id.0));
            }
        }
    }
    let pages: Vec<Vec<u64>> = match which {
        Which::Tags => {
            let pages: Vec<ListPage<Tag>> = api
                .list_tags(false)
                .per_page(per_page)
                .pages()
                .try_collect()
                .await
                .unwrap();
            pages
                .iter()
                .map(|p| p.items.iter().map(|t| t.id.0).collect())
                .collect()
        }
        Which::SubscribersDesc | Which::SubscribersAsc => {
            let filter = SubscriberFilter {
                sort_order: matches!(which, Which::SubscribersAsc).then_some(SortOrder::Asc),
                ..Default::default()
            };
            let pages: Vec<ListPage<Subscriber>> = api
                .list_subscribers(&filter)
                .per_page(per_page)
                .pages()
                .try_collect()
                .await
                .unwrap();
            pages
                .iter()
                .map(|p| p.items.iter().map(|s| s.id.0).collect())
                .collect()
        }
    };
    sb.shutdown().await;
    (created, pages)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn paging_visits_every_item_once_in_order(
        which in prop_oneof![Just(Which::Tags), Just(Which::SubscribersDesc), Just(Which::SubscribersAsc)],
        n in 0usize..=230,
        per_page in 1u32..=250,
    ) {
        let (created, pages) = runtime().block_on(run(which, n, per_page));
        let mut expected = created.clone();
        expected.sort_unstable();
        if !matches!(which, Which::SubscribersAsc) {
            expected.reverse();
        }
        let visited: Vec<u64> = pages.iter().flatten().copied().collect();
        prop_assert_eq!(&visited, &expected);
        let per_page = usize::try_from(per_page).unwrap();
        prop_assert_eq!(pages.len(), n.div_ceil(per_page).max(1));
        for (i, page) in pages.iter().enumerate() {
            if i + 1 < pages.len() {
                prop_assert_eq!(page.len(), per_page);
            } else {
                prop_assert!(page.len() <= per_page);
            }
        }
    }
}
