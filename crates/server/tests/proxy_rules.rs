//! The proxy applies the library's Kit rules (it goes through `KitClient::forward`): a 401 is
//! classified by Kit's exact messages, a refused token is verified with `GET /v4/account`
//! before the connection is marked dead and retried once when it still works, and a 5xx on an
//! idempotent call is retried. Against the sandbox over loopback, counting Kit's account calls
//! (the proxied call, the verification and the retry all hit `/v4/account`) and refreshes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kit_sandbox::{Fault, FaultEndpoint, FaultKind, SandboxHandle};
use reqwest::StatusCode;
use serde_json::Value;
use support::{API_KEY, Extra};

async fn get(url: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn account_calls(sandbox: &SandboxHandle) -> u64 {
    sandbox
        .stats()
        .requests
        .get("account")
        .copied()
        .unwrap_or(0)
}

fn status_fault(status: u16, body: Option<Value>) -> Fault {
    Fault {
        endpoint: FaultEndpoint::Account,
        kind: FaultKind::Status {
            status,
            body: body.map(|b| b.to_string()),
            retry_after: None,
        },
        count: 1,
    }
}

fn refused(message: &str) -> Fault {
    status_fault(401, Some(serde_json::json!({ "errors": [message] })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_is_verified_before_the_connection_is_called_dead() {
    let support::Broker {
        dir: _dir,
        base,
        sandbox,
        running,
    } = support::Broker::start(Extra::default()).await;
    let id = support::install(&base, &sandbox, "Hal").await;
    let account = format!("{base}/v1/connections/{id}/kit/account");
    let connection = format!("{base}/v1/connections/{id}");
    let refreshes = sandbox.stats().refreshes_ok;

    // Kit says "invalid" (or any text mentioning "expired") while the stored token works: one
    // verification, one retry, Kit's answer; no refresh, the connection stays authorized.
    for message in [
        "The access token is invalid",
        "the access token was revoked",
        "Your plan has expired; upgrade to use this endpoint",
    ] {
        let before = account_calls(&sandbox);
        sandbox.add_fault(refused(message)).unwrap();
        let (status, body) = get(&account).await;
        assert_eq!(status, StatusCode::OK, "{message}: {body}");
        assert_eq!(body["account"]["name"], "Hal");
        assert_eq!(
            account_calls(&sandbox),
            before + 3,
            "{message}: refused, verified, retried"
        );
    }
    assert_eq!(sandbox.stats().refreshes_ok, refreshes, "never refreshed");
    assert_eq!(get(&connection).await.1["state"], "authorized");

    // A 503 on a GET is retried (idempotent) and the caller gets Kit's 200.
    let before = account_calls(&sandbox);
    sandbox.add_fault(status_fault(503, None)).unwrap();
    let (status, _) = get(&account).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(account_calls(&sandbox), before + 2);

    // The creator revokes the app at Kit: the call is refused, the verification is refused
    // too, and only then is the connection marked; Kit's 401 goes back to the caller.
    let grant = sandbox
        .grants()
        .into_iter()
        .find(|g| g.account_name == "Hal")
        .unwrap();
    assert!(sandbox.revoke_grant(grant.id));
    let before = account_calls(&sandbox);
    let (status, body) = get(&account).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["errors"][0].as_str().is_some(),
        "Kit's own body: {body}"
    );
    assert_eq!(
        account_calls(&sandbox),
        before + 2,
        "the call and the check"
    );
    assert_eq!(sandbox.stats().refreshes_ok, refreshes);
    let (_, status) = get(&connection).await;
    assert_eq!(status["state"], "unauthorized", "{status}");
    running.shutdown().await;
}
