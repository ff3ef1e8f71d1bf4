//! `POST /v1/connections` (import) and `DELETE /v1/connections/{id}?force=true`, against the
//! Kit sandbox over loopback and a SQLite file, with the broker started in-process.
//!
//! The "hand-written OAuth" of an app adopting the broker is simulated with the http adapter
//! alone: authorize at the sandbox, Allow on its consent page, exchange the code — no broker
//! involved. Every test counts what reached Kit (the sandbox's own counters).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod hand_written;
mod support;

use hand_written::AppTokens;
use kit_sandbox::{Fault, FaultEndpoint, FaultKind, SandboxHandle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{API_KEY, APP, Broker, BrokerApi, CLIENT_SECRET, Extra};

/// The app's own OAuth, before it adopts the broker.
async fn hand_written_oauth(broker: &Broker, account: &str) -> AppTokens {
    hand_written::oauth(
        &broker.sandbox,
        APP,
        CLIENT_SECRET,
        &format!("{}/kit/oauth/callback", broker.base),
        account,
    )
    .await
}

/// The status and JSON body of an answer.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

async fn import(api: &BrokerApi, body: &Value) -> Answer {
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/connections",
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
        .pair();
    Answer { status, body }
}

fn refreshes(sandbox: &SandboxHandle) -> u64 {
    sandbox.stats().requests.get("token").copied().unwrap_or(0)
}

fn kit_calls(sandbox: &SandboxHandle) -> u64 {
    let requests = sandbox.stats().requests;
    ["token", "account", "revoke", "api"]
        .iter()
        .map(|k| requests.get(*k).copied().unwrap_or(0))
        .sum()
}

fn in_an_hour() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (now + 3600).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_working_access_token_imports_without_a_refresh_and_the_next_refresh_happens_once() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);
    let app = hand_written_oauth(&broker, "Adopted Creator").await;
    assert_eq!(app.expires_in, 172_800);
    let token_calls = refreshes(&broker.sandbox);

    let reply = import(
        &api,
        &json!({"refresh_token": app.refresh, "access_token": app.access, "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["outcome"], "created");
    assert_eq!(reply.body["refreshed"], false);
    assert_eq!(reply.body["connection"]["account_name"], "Adopted Creator");
    assert_eq!(
        refreshes(&broker.sandbox),
        token_calls,
        "0 refreshes at Kit"
    );
    let id = reply.body["connection"]["id"].as_str().unwrap().to_owned();

    // Served without reconnecting: the app's own access token, from the broker.
    let served = api.token(&id).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.body["access_token"], app.access.as_str());
    assert_eq!(refreshes(&broker.sandbox), token_calls);

    // Importing the same grant again: the existing id, nothing written, nothing sent.
    let again = import(
        &api,
        &json!({"refresh_token": app.refresh, "access_token": app.access}),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["outcome"], "already_present");
    assert_eq!(again.body["connection"]["id"], id.as_str());
    assert_eq!(refreshes(&broker.sandbox), token_calls);

    // Its next refresh: exactly one at Kit, and the grant lives on (Strict rotation: a second
    // use of the imported refresh token would be invalid_grant).
    let refreshed = api.refresh(&id).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let stats = broker.sandbox.stats();
    assert_eq!(refreshes(&broker.sandbox), token_calls + 1);
    assert_eq!(stats.invalid_grant_total, 0);
    assert_ne!(refreshed.body["access_token"], app.access.as_str());
    let reused = api.token(&id).await;
    assert_eq!(reused.body["access_token"], refreshed.body["access_token"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_working_access_token_exactly_one_refresh_and_the_new_pair_is_stored() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);
    let app = hand_written_oauth(&broker, "Refresh Only").await;
    let before = refreshes(&broker.sandbox);

    let reply = import(&api, &json!({"refresh_token": app.refresh})).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(reply.body["refreshed"], true);
    assert_eq!(refreshes(&broker.sandbox), before + 1, "exactly 1 refresh");
    assert_eq!(broker.sandbox.stats().refreshes_ok, 1);
    let id = reply.body["connection"]["id"].as_str().unwrap().to_owned();

    // The stored pair is the new one: a token now costs no further refresh, and it works.
    let served = api.token(&id).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_ne!(served.body["access_token"], app.access.as_str());
    let account = api.kit(Method::GET, &id, "account", None).await;
    assert_eq!(account.status, StatusCode::OK, "{}", account.body);
    assert_eq!(refreshes(&broker.sandbox), before + 1);

    // The app's old pair again: its refresh token was spent by the import, so it is refused
    // before anything reaches Kit (not even the account lookup with the old access token).
    let calls = kit_calls(&broker.sandbox);
    let spent = import(
        &api,
        &json!({"refresh_token": app.refresh, "access_token": app.access}),
    )
    .await;
    assert_eq!(spent.status, StatusCode::CONFLICT, "{}", spent.body);
    assert_eq!(spent.error(), "refresh_token_spent");
    assert_eq!(kit_calls(&broker.sandbox), calls, "0 calls to Kit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_the_broker_spent_is_refused_without_calling_kit() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);
    let app = hand_written_oauth(&broker, "Spent Twice").await;
    let reply = import(
        &api,
        &json!({"refresh_token": app.refresh, "access_token": app.access, "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let id = reply.body["connection"]["id"].as_str().unwrap().to_owned();
    // The broker's refresh spends the imported refresh token.
    assert_eq!(api.refresh(&id).await.status, StatusCode::OK);

    let calls = kit_calls(&broker.sandbox);
    let again = import(&api, &json!({"refresh_token": app.refresh})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.error(), "refresh_token_spent");
    assert_eq!(kit_calls(&broker.sandbox), calls, "0 calls to Kit");
    assert_eq!(broker.sandbox.stats().invalid_grant_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_kit_refuses_store_nothing_and_bad_bodies_are_400() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);

    let refused = import(
        &api,
        &json!({"refresh_token": "not-a-token-kit-issued", "access_token": "nor-this"}),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert_eq!(refused.error(), "kit_refused");
    assert!(
        refused.body["message"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{}",
        refused.body
    );
    let stats = broker.sandbox.stats();
    assert_eq!(stats.requests["account"], 1);
    assert_eq!(stats.requests["token"], 1);
    assert_eq!(BrokerApi::ids(&api.list("").await.body).len(), 0);

    for body in [
        json!({}),
        json!({"refresh_token": ""}),
        json!({"refresh_token": "x", "expires_at": "tomorrow"}),
        json!({"refresh_token": "x", "expires_at": 1.5}),
        json!({"refresh_token": "has space"}),
        json!({"refresh_token": "x", "access_token": "caf\u{e9}"}),
        json!({"refresh_token": "x", "surprise": 1}),
        json!({"refresh_token": "x", "tenant": "bad\u{1}tenant"}),
    ] {
        let reply = import(&api, &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
    }
    assert_eq!(
        broker.sandbox.stats().requests["token"],
        1,
        "400s reach no one"
    );
    let anonymous = BrokerApi::anonymous(&broker.base);
    assert_eq!(
        import(&anonymous, &json!({"refresh_token": "x"}))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_scoped_key_imports_into_its_own_tenant_only() {
    let keys = kit_oauth_server::ApiKeys::parse(&format!("{API_KEY},shop-a=shop-a-key-0123456789"))
        .unwrap();
    let broker = Broker::start(Extra {
        api_keys: Some(keys),
        ..Extra::default()
    })
    .await;
    let scoped = BrokerApi::new(&broker.base, "shop-a-key-0123456789");
    let app = hand_written_oauth(&broker, "Shop Owner").await;
    let calls = kit_calls(&broker.sandbox);
    let elsewhere = import(
        &scoped,
        &json!({"refresh_token": app.refresh, "access_token": app.access, "tenant": "shop-b"}),
    )
    .await;
    assert_eq!(
        elsewhere.status,
        StatusCode::FORBIDDEN,
        "{}",
        elsewhere.body
    );
    assert_eq!(kit_calls(&broker.sandbox), calls);

    let own = import(
        &scoped,
        &json!({"refresh_token": app.refresh, "access_token": app.access, "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.body);
    assert_eq!(own.body["connection"]["tenant"], "shop-a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_kit_will_not_revoke_is_kept_unless_forced() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);
    let id = support::install(&broker.base, &broker.sandbox, "Kept Grant").await;
    broker
        .sandbox
        .add_fault(
            Fault::new(
                FaultEndpoint::Revoke,
                FaultKind::Status {
                    status: 403,
                    body: Some(r#"{"error":"unauthorized_client","error_description":"You are not authorized to revoke this token"}"#.into()),
                    retry_after: None,
                },
            )
            .times(2),
        )
        .unwrap();

    let refused = api.delete(&id).await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{}", refused.body);
    assert_eq!(refused.error(), "kit_kept_grant");
    assert!(refused.body["message"].as_str().unwrap().contains("kept"));
    assert_eq!(
        api.show(&id).await.status,
        StatusCode::OK,
        "the row is kept"
    );
    assert_eq!(broker.sandbox.stats().requests["revoke"], 1);

    let forced = api
        .call(
            Method::DELETE,
            &format!("/v1/connections/{id}?force=true"),
            None,
        )
        .await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.body);
    assert_eq!(forced.body["removed"], true);
    assert_eq!(forced.body["revoked_at_kit"], false);
    assert!(forced.body["kit_reason"].as_str().is_some());
    assert_eq!(api.show(&id).await.status, StatusCode::NOT_FOUND);
    let stats = broker.sandbox.stats();
    assert_eq!(stats.requests["revoke"], 2);
    assert_eq!(stats.revocations, 0);
    assert_eq!(
        stats.grants_alive, 1,
        "Kit was not told: the grant lives there"
    );

    let bad = api
        .call(
            Method::DELETE,
            &format!("/v1/connections/{id}?force=maybe"),
            None,
        )
        .await;
    assert_eq!(
        bad.status,
        StatusCode::NOT_FOUND,
        "the row is gone before the query is read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_imports_racing_with_one_refresh_token_send_it_once() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);
    let app = hand_written_oauth(&broker, "Raced").await;
    let before = refreshes(&broker.sandbox);
    let body = json!({"refresh_token": app.refresh});
    let (a, b) = tokio::join!(import(&api, &body), import(&api, &body));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT]);
    assert_eq!(refreshes(&broker.sandbox), before + 1, "sent once");
    assert_eq!(broker.sandbox.stats().invalid_grant_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_identifies_a_connected_account_replaces_its_tokens() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);
    let first = hand_written_oauth(&broker, "Twice Connected").await;
    let created = import(
        &api,
        &json!({"refresh_token": first.refresh, "access_token": first.access, "expires_at": in_an_hour()}),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["connection"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The app connected the same account again by itself, and hands over only that refresh
    // token: identifying the account spends it, so the fresh pair is kept — in the existing row.
    let second = hand_written_oauth(&broker, "Twice Connected").await;
    let before = refreshes(&broker.sandbox);
    let replaced = import(&api, &json!({"refresh_token": second.refresh})).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["outcome"], "replaced");
    assert_eq!(replaced.body["refreshed"], true);
    assert_eq!(replaced.body["connection"]["id"], id.as_str());
    assert_eq!(refreshes(&broker.sandbox), before + 1);
    let served = api.token(&id).await;
    assert_ne!(served.body["access_token"], first.access.as_str());
    assert_ne!(served.body["access_token"], second.access.as_str());
    assert_eq!(
        api.kit(Method::GET, &id, "account", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        BrokerApi::ids(&api.list("").await.body),
        std::slice::from_ref(&id)
    );

    // Its spent token names the connection it went into.
    let spent = import(&api, &json!({"refresh_token": second.refresh})).await;
    assert_eq!(spent.status, StatusCode::CONFLICT);
    assert!(
        spent.body["message"].as_str().unwrap().contains(&id),
        "{}",
        spent.body
    );
    assert_eq!(refreshes(&broker.sandbox), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pair_imported_into_two_tenants_is_held_by_one_connection() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);
    let app = hand_written_oauth(&broker, "Two Shops").await;
    let before = refreshes(&broker.sandbox);
    let pair = |tenant: &str| {
        json!({"refresh_token": app.refresh, "access_token": app.access,
               "expires_at": in_an_hour(), "tenant": tenant})
    };

    let a = import(&api, &pair("shop-a")).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["connection"]["id"].as_str().unwrap().to_owned();

    // Tenant B: identified with the access token (one account lookup), then refused because
    // shop-a's connection holds that refresh token; the answer names it and no token.
    let accounts = broker.sandbox.stats().requests["account"];
    let b = import(&api, &pair("shop-b")).await;
    assert_eq!(b.status, StatusCode::CONFLICT, "{}", b.body);
    assert_eq!(b.error(), "refresh_token_held");
    let message = b.body["message"].as_str().unwrap();
    assert!(message.contains(&id), "{}", b.body);
    assert!(!b.body.to_string().contains(app.refresh.as_str()));
    assert!(!b.body.to_string().contains(app.access.as_str()));
    assert_eq!(broker.sandbox.stats().requests["account"], accounts + 1);

    // The same tenant again keeps today's answer.
    let again = import(&api, &pair("shop-a")).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["outcome"], "already_present");
    assert_eq!(again.body["connection"]["id"], id.as_str());

    assert_eq!(
        BrokerApi::ids(&api.list("").await.body),
        std::slice::from_ref(&id),
        "exactly 1 row"
    );
    assert_eq!(refreshes(&broker.sandbox), before, "0 refreshes");

    // The one holder refreshes the chain once, and it lives on.
    assert_eq!(api.refresh(&id).await.status, StatusCode::OK);
    assert_eq!(refreshes(&broker.sandbox), before + 1);
    assert_eq!(broker.sandbox.stats().invalid_grant_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_spends_another_tenants_token_stores_the_successor_with_its_holder() {
    let broker = Broker::start(Extra::default()).await;
    let api = BrokerApi::new(&broker.base, API_KEY);
    let app = hand_written_oauth(&broker, "Moved Chain").await;
    let a = import(
        &api,
        &json!({"refresh_token": app.refresh, "access_token": app.access,
                "expires_at": in_an_hour(), "tenant": "shop-a"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let id = a.body["connection"]["id"].as_str().unwrap().to_owned();
    let before = refreshes(&broker.sandbox);

    // Only the refresh token, into tenant B: identifying the account spends it (the account is
    // unknown until then), so the new pair continues shop-a's chain, in shop-a's row.
    let b = import(
        &api,
        &json!({"refresh_token": app.refresh, "tenant": "shop-b"}),
    )
    .await;
    assert_eq!(b.status, StatusCode::CONFLICT, "{}", b.body);
    assert_eq!(b.error(), "refresh_token_held_successor_stored");
    assert!(b.body["message"].as_str().unwrap().contains(&id));
    assert_eq!(refreshes(&broker.sandbox), before + 1);
    assert_eq!(
        BrokerApi::ids(&api.list("").await.body),
        std::slice::from_ref(&id),
        "exactly 1 row"
    );

    // shop-a holds the new pair: it is served, and its next refresh works (Strict rotation:
    // the spent token would be invalid_grant).
    let served = api.token(&id).await;
    assert_eq!(served.status, StatusCode::OK);
    assert_ne!(served.body["access_token"], app.access.as_str());
    assert_eq!(api.refresh(&id).await.status, StatusCode::OK);
    assert_eq!(refreshes(&broker.sandbox), before + 2);
    assert_eq!(broker.sandbox.stats().invalid_grant_total, 0);
}
