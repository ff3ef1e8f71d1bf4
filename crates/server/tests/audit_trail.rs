//! `GET /v1/connections/{id}/events` (keyset pages, tenant check, 400 on bad input) and what
//! the creator sees after Deny on Kit's consent page, against the Kit sandbox over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;

use kit_oauth_server::ApiKeys;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{API_KEY, APP, BrokerApi, Extra};

const GLOBEX_KEY: &str = "globex-key-0123456789";

fn kinds(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn event_ids(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_page_newest_first_only_for_the_connections_tenant() {
    let support::Broker {
        dir: _dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra {
        api_keys: Some(ApiKeys::parse(&format!("{API_KEY},globex={GLOBEX_KEY}")).unwrap()),
        ..Extra::default()
    })
    .await;
    let begin = support::begin_url(&base, &sandbox);
    let link = format!("{begin}&tenant={}", support::tenant_link("acme"));
    let ann = support::install_from(&base, &sandbox, &link, "Ann").await;
    let api = BrokerApi::new(&base, API_KEY);
    for _ in 0..3 {
        assert_eq!(api.refresh(&ann).await.status, StatusCode::OK);
    }
    let events = |query: &str| {
        let api = api.clone();
        let path = format!("/v1/connections/{ann}/events{query}");
        async move { api.call(Method::GET, &path, None).await }
    };

    let (status, all) = events("").await.pair();
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        kinds(&all),
        ["refreshed", "refreshed", "refreshed", "authorized"],
        "{all}"
    );
    assert!(all["next_cursor"].is_null(), "{all}");

    // Pages of 3 then 1: every event once, in the same order.
    let (_, first) = events("?limit=3").await.pair();
    assert_eq!(event_ids(&first).len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = events(&format!("?limit=3&cursor={cursor}")).await.pair();
    assert_eq!(kinds(&second), ["authorized"]);
    assert!(second["next_cursor"].is_null(), "{second}");
    let paged: Vec<String> = event_ids(&first)
        .into_iter()
        .chain(event_ids(&second))
        .collect();
    assert_eq!(paged, event_ids(&all));
    assert_eq!(paged.iter().collect::<BTreeSet<_>>().len(), 4);

    // Bad input is a 400, never clamped; another tenant's key, a stranger and a wrong id are
    // refused as for the connection itself.
    for query in [
        "?limit=0",
        "?limit=201",
        "?limit=abc",
        "?cursor=",
        "?cursor=abc",
        "?cursor=12.",
        "?cursor=x.evt_1",
        "?cursor=1234567890123456789.evt_1",
    ] {
        let (status, error) = events(query).await.pair();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {error}");
        assert_eq!(error["error"], "bad_request", "{query}: {error}");
    }
    let path = format!("/v1/connections/{ann}/events");
    let other = api
        .with_key(GLOBEX_KEY)
        .call(Method::GET, &path, None)
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{other:?}");
    let anonymous = BrokerApi::anonymous(&base)
        .call(Method::GET, &path, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let missing = api
        .call(Method::GET, "/v1/connections/nope/events", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    running.shutdown().await;
}

fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// Starts an install in `browser` and presses Deny on the sandbox's consent page; returns the
/// callback URL Kit sent the browser to.
async fn deny(
    browser: &reqwest::Client,
    sandbox: &kit_sandbox::SandboxHandle,
    begin: &str,
) -> String {
    let started = browser.get(begin).send().await.unwrap();
    assert_eq!(started.status(), StatusCode::FOUND);
    let consent = browser
        .get(location(&started))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = support::hidden_inputs(&consent);
    form.push(("account".into(), "Dee".into()));
    form.push(("decision".into(), "deny".into()));
    let answered = browser
        .post(sandbox.url(&support::form_action(&consent)))
        .form(&form)
        .send()
        .await
        .unwrap();
    let callback = location(&answered);
    assert!(callback.contains("error=access_denied"), "{callback}");
    callback
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_deny_the_creator_is_back_on_kits_page_which_says_not_installed() {
    let support::Broker {
        dir: _dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra::default()).await;
    let begin = support::begin_url(&base, &sandbox);

    // The browser that started the install goes back to Kit's app page, without success=true.
    let browser = support::browser();
    let callback = deny(&browser, &sandbox, &begin).await;
    let back = browser.get(&callback).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let to = location(&back);
    assert_eq!(to, format!("{}/apps/{APP}", sandbox.base_url()));
    let kit_page = reqwest::get(&to).await.unwrap().text().await.unwrap();
    assert!(
        kit_page.contains("<span id=\"install-status\">not installed</span>"),
        "{kit_page}"
    );
    // The pending install is gone: the same callback again gets the explained page.
    let again = browser.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let page = again.text().await.unwrap();
    assert!(page.contains("Access was not granted"), "{page}");
    assert!(page.contains("Start the install again"), "{page}");

    // Another browser cannot consume someone's install with a denial: it gets a page, and the
    // right browser is still sent back to Kit afterwards.
    let owner = support::browser();
    let callback = deny(&owner, &sandbox, &begin).await;
    let stranger = support::browser().get(&callback).send().await.unwrap();
    assert_eq!(stranger.status(), StatusCode::FORBIDDEN);
    let back = owner.get(&callback).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    assert_eq!(
        location(&back),
        format!("{}/apps/{APP}", sandbox.base_url())
    );

    // Nothing was stored for either denial.
    let list = BrokerApi::new(&base, API_KEY).list("").await.body;
    assert_eq!(list["connections"].as_array().unwrap().len(), 0, "{list}");
    let metrics = support::metrics(&base).await;
    assert_eq!(
        support::sample(&metrics, "kit_oauth_installs_total{outcome=\"denied\"}"),
        4.0
    );
    running.shutdown().await;
}
