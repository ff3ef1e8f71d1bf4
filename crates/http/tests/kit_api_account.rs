//! The account's colors, creator profile, email and growth stats, and the subscriber filter
//! (docs/kit-api-v4.md §2, §3), through the typed client against kit-sandbox over loopback
//! HTTP: each documented shape and one documented error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::*;
use futures_util::TryStreamExt as _;
use kit_oauth_core::{ConnectionId, TokenEndpoint};
use kit_oauth_http::kit_api::*;
use kit_oauth_http::{ApiError, KitClient, RetryPolicy, TokenBody};
use kit_sandbox::SandboxHandle;
use serde_json::{Value, json};

struct Env {
    sb: SandboxHandle,
    client: KitClient<Arc<SimpleSource>>,
    conn: ConnectionId,
}

async fn env() -> Env {
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
    Env {
        sb,
        client,
        conn: connection_id(),
    }
}

fn assert_kit(err: &ApiError, status: u16, message: &str) {
    assert_eq!(err.kit_status(), Some(status), "{err}");
    assert_eq!(err.kit_messages(), [message.to_owned()], "{err}");
}

async fn control(sb: &SandboxHandle, body: Value) -> Value {
    reqwest::Client::new()
        .put(sb.url("/_sandbox/kit_api"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn colors_are_read_and_replaced_and_a_bad_code_is_422() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn);
    assert_eq!(api.account_colors().await.unwrap(), Vec::<String>::new());
    let colors = vec!["#008000".to_owned(), "#fff".to_owned()];
    assert_eq!(api.set_account_colors(&colors).await.unwrap(), colors);
    assert_eq!(api.account_colors().await.unwrap(), colors);
    let err = api
        .set_account_colors(&["#123_not_a_code".to_owned()])
        .await
        .unwrap_err();
    assert_kit(
        &err,
        422,
        "Colors #123_not_a_code is not a valid hex color code.",
    );
    // A refused write changes nothing.
    assert_eq!(api.account_colors().await.unwrap(), colors);
}

#[tokio::test]
async fn the_creator_profile_is_typed_or_404() {
    let Env { sb, client, conn } = env().await;
    let api = client.api(conn);
    let profile = api.creator_profile().await.unwrap();
    assert!(profile.name.is_some_and(|n| !n.is_empty()));
    assert!(profile.profile_url.is_some());
    control(&sb, json!({"creator_profiles": false})).await;
    assert_kit(&api.creator_profile().await.unwrap_err(), 404, "Not Found");
}

#[tokio::test]
async fn email_and_growth_stats_count_the_accounts_activity() {
    let Env { sb, client, conn } = env().await;
    let api = client.api(conn);
    let mut ids = Vec::new();
    for email in ["g1@example.com", "g2@example.com", "g3@example.com"] {
        let saved = api
            .upsert_subscriber(&NewSubscriber::email(email))
            .await
            .unwrap();
        ids.push(saved.into_inner().subscriber);
    }
    api.unsubscribe(ids[2].id).await.unwrap();
    // A broadcast sent now to the two active subscribers completes a minute later.
    api.create_broadcast(&BroadcastInput {
        subject: Some("Stats".into()),
        content: Some("<p>Hi</p>".into()),
        send_at: Some(Some(ids[0].created_at.clone())),
        ..Default::default()
    })
    .await
    .unwrap();
    sb.advance_clock(120);

    let email = api.email_stats().await.unwrap();
    assert_eq!(email.email_stats_mode, "last_90");
    assert_eq!((email.sent, email.opened, email.clicked), (2, 0, 0));
    assert_eq!(email.open_rate, Some(0.0));

    let growth = api.growth_stats(None, None).await.unwrap();
    assert_eq!(
        (
            growth.new_subscribers,
            growth.cancellations,
            growth.net_new_subscribers,
            growth.subscribers
        ),
        (3, 1, 2, 2)
    );
    assert!(growth.ending.ends_with("-05:00"), "{}", growth.ending);

    let past = api
        .growth_stats(Some("2020-01-01"), Some("2020-01-31"))
        .await
        .unwrap();
    assert_eq!(
        past,
        GrowthStats {
            cancellations: 0,
            net_new_subscribers: 0,
            new_subscribers: 0,
            subscribers: 0,
            starting: "2020-01-01T00:00:00-05:00".into(),
            ending: "2020-01-31T23:59:59-05:00".into(),
        }
    );
    let err = api.growth_stats(Some("yesterday"), None).await.unwrap_err();
    assert_kit(
        &err,
        422,
        "Starting date is incorrectly formatted. Use YYYY-MM-DD.",
    );
}

#[tokio::test]
async fn the_filter_lists_matches_with_string_ids_and_refuses_unknown_conditions() {
    let Env {
        sb: _sb,
        client,
        conn,
    } = env().await;
    let api = client.api(conn);
    let tag = api.create_tag("vip").await.unwrap().into_inner();
    let mut tagged = Vec::new();
    for i in 0..5 {
        let s = api
            .upsert_subscriber(&NewSubscriber::email(format!("f{i}@example.com")))
            .await
            .unwrap()
            .into_inner()
            .subscriber;
        if i % 2 == 0 {
            api.tag_subscriber(tag.id, s.id).await.unwrap();
            tagged.push(s.id);
        }
    }
    // Paged two at a time, newest first, as every list.
    let found: Vec<FilteredSubscriber> = api
        .filter_subscribers(&[FilterCondition::TaggedWithAny(vec![tag.id])])
        .unwrap()
        .per_page(2)
        .items()
        .try_collect()
        .await
        .unwrap();
    tagged.reverse();
    assert_eq!(found.iter().map(|s| s.id).collect::<Vec<_>>(), tagged);
    assert!(found.iter().all(|s| s.tag_ids == [tag.id]));

    // Nobody in the sandbox has opened anything.
    let opened = api
        .filter_subscribers(&[FilterCondition::Opens(EngagementCount {
            count_greater_than: Some(0),
            ..EngagementCount::default()
        })])
        .unwrap()
        .first_page()
        .await
        .unwrap();
    assert!(opened.items.is_empty());

    let err = api
        .filter_subscribers(&[FilterCondition::Raw(json!({"type": "moon_phase"}))])
        .unwrap()
        .first_page()
        .await
        .unwrap_err();
    assert_kit(&err, 422, "Filter type moon_phase is not supported");
}
