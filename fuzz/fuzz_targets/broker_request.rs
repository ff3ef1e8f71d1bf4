//! The broker API's request parsing, through the real axum router in-process
//! (`tower::ServiceExt::oneshot`): the `Authorization: Bearer` key and its tenant scope, the
//! list query (`tenant`, `state`, `cursor`, `limit`), connection ids in paths, and the proxy's
//! Kit API path. The router runs on the real library over a SQLite file with three connections
//! (tenants `acme`, `globex` and none); the proxy forwards to a loopback stand-in for Kit's API
//! that records what it receives.
//!
//! Properties: no request gets a 500; nothing succeeds without a valid key; a key scoped to
//! `acme` never sees, gets a token for, or proxies as another tenant's connection; a token
//! handed out is the connection's own; every request that reaches "Kit" is under `/v4/` with no
//! dot segments, carries the connection's bearer token and never the caller's API key.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use kit_oauth::KitOAuth;
use kit_oauth::core::{
    AccessToken, Connection, ConnectionId, ConnectionStore as _, Installed, KitAccount,
    KitAccountId, RefreshToken, TenantName, Timestamp, TokenSet, Unauthorized,
};
use kit_oauth::http::KitEndpoints;
use kit_oauth::store::{KeyRing, SeaOrmStore};
use kit_oauth_server::{ApiKeys, BrokerOptions, Engine, KitApi};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

/// Sees every connection.
const ALL_KEY: &str = "all-key-fuzz-0123456789abcdef";
/// Sees only tenant `acme` (configured as its SHA-256, the `sha256:` form).
const ACME_KEY: &str = "acme-key-fuzz-0123456789abcdef";

/// (id, tenant, access token) of the seeded connections.
const CONNECTIONS: [(&str, Option<&str>, &str); 3] = [
    ("conn-acme-1", Some("acme"), "at-acme-9f8e7d6c5b4a"),
    ("conn-globex-1", Some("globex"), "at-globex-1a2b3c4d5e6f"),
    ("conn-single-1", None, "at-single-0a9b8c7d6e5f"),
];

/// What the stand-in for Kit's API received.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    authorization: Vec<String>,
    all_headers: Vec<String>,
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    router: Router,
    seen: Arc<Mutex<Vec<Seen>>>,
    _kit: KitOAuth,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (router, kit, dir) = runtime.block_on(setup(seen.clone()));
        Fixture {
            runtime,
            router,
            seen,
            _kit: kit,
            _dir: dir,
        }
    })
}

async fn setup(seen: Arc<Mutex<Vec<Seen>>>) -> (Router, KitOAuth, tempfile::TempDir) {
    // Kit's API, as far as the proxy can tell: records each request, answers 200 JSON.
    let record = move |request: Request<Body>| {
        let seen = seen.clone();
        async move {
            let headers = request.headers();
            seen.lock().expect("not poisoned").push(Seen {
                path: request
                    .uri()
                    .path_and_query()
                    .map_or_else(String::new, ToString::to_string),
                authorization: headers
                    .get_all("authorization")
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                    .collect(),
                all_headers: headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes()).trim()))
                    .collect(),
            });
            axum::Json(serde_json::json!({ "ok": true }))
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let kit_url = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, Router::new().fallback(record)).await;
    });

    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("broker.db").display()
    );
    let store = SeaOrmStore::connect(&url, KeyRing::generate())
        .await
        .expect("a SQLite store");
    let now = Timestamp::from_unix_millis(
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("after 1970")
                .as_millis(),
        )
        .expect("fits"),
    );
    let year = Duration::from_secs(365 * 24 * 3600);
    for (i, (id, tenant, token)) in CONNECTIONS.iter().enumerate() {
        // Through the flow's import transition, as every stored connection is.
        let connection =
            Connection::<Unauthorized>::new(tenant.map(|t| TenantName::parse(t).expect("a tenant")))
                .import(
                    ConnectionId::parse(id).expect("an id"),
                    KitAccount {
                        id: KitAccountId::parse(&format!("{}", 100 + i)).expect("an account"),
                        name: format!("Account {i}"),
                        primary_email: None,
                    },
                    TokenSet::from_parts(
                        AccessToken::new(*token),
                        RefreshToken::new(format!("rt-{token}")),
                        Some("public".into()),
                        now,
                        now.saturating_add(year),
                    ),
                );
        store
            .upsert_installed(&Installed::new(&connection, now.saturating_add(year / 2), now))
            .await
            .expect("seeded");
    }
    let endpoints = KitEndpoints::builder()
        .base_url(kit_url.clone())
        .client_id("fuzz-client")
        .client_secret("fuzz-client-secret")
        .redirect_uri("http://127.0.0.1:9/kit/oauth/callback")
        .build()
        .expect("endpoints");
    let kit = KitOAuth::builder()
        .endpoints(endpoints)
        .store(store)
        .build()
        .await
        .expect("the library");
    let acme_hash = kit_oauth::core::Sha256Hash::of(ACME_KEY.as_bytes());
    let options = BrokerOptions {
        api_keys: ApiKeys::parse(&format!("{ALL_KEY}, acme=sha256:{acme_hash}")).expect("API keys"),
        kit_api: Some(KitApi::new(url::Url::parse(&kit_url).expect("a URL")).expect("a client")),
        ..BrokerOptions::default()
    };
    let router = kit_oauth_server::router(
        Engine::new(kit.manager().clone(), kit.install().clone()),
        options,
    );
    (router, kit, dir)
}

/// Which seeded connections a response may concern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    All,
    Acme,
}

impl Who {
    fn sees(self, tenant: Option<&str>) -> bool {
        match self {
            Self::Nobody => false,
            Self::All => true,
            Self::Acme => tenant == Some("acme"),
        }
    }
}

/// The input is an HTTP request as text: `METHOD URI`, header lines `Name: value`, an empty
/// line, the body. Only `/v1/` URIs are sent, never a DELETE or a refresh (they would change
/// the fixture between runs).
fn build(data: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = std::str::from_utf8(lines.next()?).ok()?;
    let (method, uri) = first.split_once(' ')?;
    let method = Method::from_bytes(method.as_bytes()).ok()?;
    if method == Method::DELETE
        || !uri.starts_with("/v1/")
        || uri.to_ascii_lowercase().contains("refresh")
    {
        return None;
    }
    let mut request = Request::builder().method(method).uri(uri);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        request = request.header(&line[..colon], value);
    }
    request.body(Body::from(body.to_vec())).ok()
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some(request) = build(data) else {
        return;
    };
    let input = String::from_utf8_lossy(data).into_owned();
    let path = request.uri().path().to_owned();
    let authorization: Vec<String> = request
        .headers()
        .get_all("authorization")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .collect();
    let sent_headers: Vec<String> = request
        .headers()
        .iter()
        .filter(|(n, _)| *n == "accept" || *n == "content-type")
        .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v.as_bytes()).trim()))
        .collect();
    let exact_key = authorization.len() == 1
        && [ALL_KEY, ACME_KEY]
            .iter()
            .any(|k| authorization[0] == format!("Bearer {k}"));
    let authorization = authorization.join("\n");
    // Who the caller can be, at most: a key has to be in the header to be presented.
    let who = match (
        authorization.contains(ALL_KEY),
        authorization.contains(ACME_KEY),
    ) {
        (true, _) => Who::All,
        (false, true) => Who::Acme,
        (false, false) => Who::Nobody,
    };
    let seen_before = f.seen.lock().expect("not poisoned").len();
    let (status, body) = f.runtime.block_on(async {
        let response = f
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, body)
    });
    let seen: Vec<Seen> = f.seen.lock().expect("not poisoned")[seen_before..].to_vec();

    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 for {input:?}: {}",
        String::from_utf8_lossy(&body)
    );
    if exact_key {
        assert_ne!(status, StatusCode::UNAUTHORIZED, "a valid key was refused");
    }
    if who == Who::Nobody {
        assert!(!status.is_success(), "{status} without a key for {input:?}");
        assert!(seen.is_empty(), "Kit was called without a key");
    }

    // Whatever "Kit" received: confined to /v4/, the connection's token, never the API key.
    for request in &seen {
        let path = request.path.split('?').next().unwrap_or_default();
        assert!(
            path.starts_with("/v4/"),
            "proxied outside /v4/: {request:?}"
        );
        assert!(
            path["/v4/".len()..]
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != ".."),
            "proxied with dot or empty segments: {request:?}"
        );
        assert_eq!(request.authorization.len(), 1, "{request:?}");
        let (_, tenant, _) = CONNECTIONS
            .iter()
            .find(|(_, _, token)| request.authorization[0] == format!("Bearer {token}"))
            .unwrap_or_else(|| panic!("Kit got a token that is no connection's: {request:?}"));
        assert!(
            who.sees(*tenant),
            "proxied as a connection the key cannot see"
        );
        // `Accept` and `Content-Type` are passed through by design: a key the caller put in
        // one of those may reach Kit there, and nowhere else.
        for header in &request.all_headers {
            if header.contains(ALL_KEY) || header.contains(ACME_KEY) {
                assert!(
                    sent_headers.contains(header),
                    "the API key was forwarded to Kit: {header}"
                );
            }
        }
    }
    if !status.is_success() {
        return;
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return;
    };
    // Listed connections: only the key's.
    if let Some(list) = json.get("connections").and_then(|c| c.as_array()) {
        for view in list {
            let tenant = view.get("tenant").and_then(|t| t.as_str());
            assert!(who.sees(tenant), "{who:?} listed {view}");
        }
    }
    // One connection or a token: only the key's, and a token is the connection's own.
    if let Some(token) = json.get("access_token").and_then(|t| t.as_str()) {
        let (id, tenant, _) = CONNECTIONS
            .iter()
            .find(|(_, _, t)| *t == token)
            .unwrap_or_else(|| panic!("handed out a token that is no connection's: {json}"));
        assert!(who.sees(*tenant), "{who:?} got the token of {id}");
        if let Some(asked) = path
            .strip_prefix("/v1/connections/")
            .and_then(|p| p.strip_suffix("/token"))
            .filter(|p| !p.contains('%'))
        {
            assert_eq!(*id, asked, "asked for the token of {asked}, got {id}'s");
        }
    } else if let Some(tenant) = json.get("tenant") {
        assert!(who.sees(tenant.as_str()), "{who:?} was shown {json}");
    }
});
