//! # kit-oauth-server — the Kit OAuth broker over HTTP
//!
//! An axum [`router`] that an app can mount, and the `kit-oauth-server` binary built on it:
//!
//! - `GET /kit/oauth` and `GET /kit/oauth/callback`: the install flow (the app's Authorization
//!   URL and Redirect URI on Kit);
//! - `/v1/...`: the broker API for apps in any language (fresh tokens, refresh, revoke, and a
//!   proxy to Kit's API v4 that injects the token), with bearer API keys;
//! - `GET /`: the operator dashboard;
//! - `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.
//!
//! ```no_run
//! # async fn demo(kit: kit_oauth::KitOAuth) {
//! use kit_oauth_server::{BrokerOptions, Engine, router};
//! let app = router(Engine::of(&kit), BrokerOptions::default());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

pub mod api;
pub mod app;
pub mod bulk;
pub mod client_addr;
pub mod config;
pub mod count_snapshot;
pub mod dashboard;
#[cfg(feature = "demo")]
pub mod demo;
pub mod events;
pub mod extract;
pub mod import;
pub mod install;
pub mod install_link;
pub mod keys;
pub mod kit_budget;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod ops_routes;
pub mod overview;
pub mod pages;
pub mod proxy;
pub mod sessions;
pub mod sign_in;
pub mod telemetry;
pub mod throttle;
pub mod timeline;
pub mod web;
pub mod webhook;

use std::sync::Arc;

use axum::Router;
use axum::http::Request;
use axum::routing::{any, get, post};
use kit_oauth::core::Url;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

pub use client_addr::TrustedProxies;
pub use install_link::{InstallLinks, TenantRefused};
pub use keys::{ApiKeys, Scope};
pub use limits::RouteLimits;
pub use ops::Engine;
pub use proxy::KitApi;
pub use sign_in::{InstalledBy, SignIn, SignInError, SignedUser};
pub use throttle::SignInLimits;
pub use web::CookiePolicy;

/// The request id header, set on every request (or kept from the caller) and on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A boxed, `Send` future (what a [`ReadyCheck`] returns).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A readiness probe (`/readyz`): `Ok` when the database is reachable and migrated.
pub type ReadyCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Who may use the dashboard.
#[derive(Clone, Default)]
pub enum DashboardAccess {
    /// Everyone (demo mode on loopback only).
    Open,
    /// People who sign in with this key (an admin key, or an unscoped API key).
    Key(Arc<ApiKeys>),
    /// Nobody: the dashboard is off.
    #[default]
    Disabled,
}

/// What the demo shows on the dashboard.
#[derive(Debug, Clone)]
pub struct DemoInfo {
    /// The sandbox App Store's install link.
    pub app_store_install_url: String,
    /// The sandbox's base URL.
    pub sandbox_url: String,
    /// The demo's API key, shown on the dashboard for curl examples.
    pub api_key: String,
}

/// Everything about the HTTP layer that is not the library.
#[derive(Clone)]
pub struct BrokerOptions {
    /// Keys of the broker API.
    pub api_keys: ApiKeys,
    /// Who may use the dashboard.
    pub dashboard: DashboardAccess,
    /// Cookie flags.
    pub cookies: CookiePolicy,
    /// Kit's API for the proxy (`None`: the proxy answers 501).
    pub kit_api: Option<KitApi>,
    /// Where an error page's "start again" link points.
    pub start_again_url: String,
    /// `/readyz`; `None` probes by listing one connection.
    pub ready: Option<ReadyCheck>,
    /// Demo details for the dashboard.
    pub demo: Option<DemoInfo>,
    /// The sign-in hook of `GET /kit/oauth` (`None`: anyone with Kit's link may install).
    pub sign_in: Option<SignIn>,
    /// The verifier of signed install links naming a tenant (`None`: only a tenant signed with
    /// the user names one; a `tenant` parameter is refused).
    pub install_links: Option<InstallLinks>,
    /// How often the dashboard's sign-in form may be tried.
    pub sign_in_limits: SignInLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client the sign-in limit counts.
    pub trusted_proxies: TrustedProxies,
    /// Every route's time limit.
    pub route_limits: RouteLimits,
    /// The key dashboard sessions are signed with (`None`: one of this process, so sessions
    /// hold on this instance only).
    pub session_key: Option<sessions::SessionKey>,
    /// Kit bulk requests through the broker (`None`: those routes answer 501 and 404).
    pub bulk: Option<bulk::BulkOptions>,
    /// How often the dashboard's list and timeline pages reload themselves while nobody is
    /// using them (`None`: never; `KIT_OAUTH_DASHBOARD_RELOAD`).
    pub dashboard_reload: Option<std::time::Duration>,
}

/// The dashboard's reload period unless `KIT_OAUTH_DASHBOARD_RELOAD` says otherwise.
pub const DEFAULT_DASHBOARD_RELOAD: std::time::Duration = std::time::Duration::from_secs(15);

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            api_keys: ApiKeys::none(),
            dashboard: DashboardAccess::Disabled,
            cookies: CookiePolicy { secure: true },
            kit_api: None,
            start_again_url: kit_oauth::core::DEFAULT_REDIRECT_PREFIX.to_owned(),
            ready: None,
            demo: None,
            sign_in: None,
            install_links: None,
            sign_in_limits: SignInLimits::default(),
            trusted_proxies: TrustedProxies::none(),
            route_limits: RouteLimits::default(),
            session_key: None,
            bulk: None,
            dashboard_reload: Some(DEFAULT_DASHBOARD_RELOAD),
        }
    }
}

impl std::fmt::Debug for BrokerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerOptions")
            .field("api_keys", &self.api_keys)
            .field("cookies", &self.cookies)
            .field("demo", &self.demo.is_some())
            .field("sign_in", &self.sign_in.is_some())
            .finish_non_exhaustive()
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) engine: Arc<Engine>,
    pub(crate) options: Arc<BrokerOptions>,
    pub(crate) sessions: sessions::Sessions,
    pub(crate) sign_in_throttle: throttle::SignInThrottle,
    pub(crate) route_limits: RouteLimits,
    pub(crate) counts: count_snapshot::CountSnapshot,
}

/// The broker's routes, with request ids, request logs and HTTP metrics.
///
/// Mount it at the root of a host (the install routes are `/kit/oauth…`).
pub fn router(engine: Engine, options: BrokerOptions) -> Router {
    metrics::install();
    let state = AppState {
        engine: Arc::new(engine),
        sign_in_throttle: throttle::SignInThrottle::new(options.sign_in_limits),
        route_limits: options.route_limits,
        counts: count_snapshot::CountSnapshot::default(),
        sessions: sessions::Sessions::new(
            options
                .session_key
                .clone()
                .unwrap_or_else(sessions::SessionKey::random),
        ),
        options: Arc::new(options),
    };
    let route_limits = state.route_limits;
    let routes = Router::new()
        .route("/kit/oauth", get(install::begin))
        .route("/kit/oauth/callback", get(install::callback))
        .route("/v1/connections", get(api::list).post(import::create))
        .route("/v1/connections/{id}", get(api::show).delete(api::delete))
        .route("/v1/connections/{id}/token", post(api::token))
        .route("/v1/connections/{id}/refresh", post(api::refresh))
        .route("/v1/connections/{id}/events", get(events::list))
        .route("/v1/connections/{id}/kit/{*path}", any(proxy::handle))
        .route("/v1/connections/{id}/bulk/{*kind}", post(bulk::start))
        .route("/v1/bulk/{id}", get(bulk::show))
        .route(
            "/kit/bulk/{token}",
            post(bulk::callback).layer(axum::extract::DefaultBodyLimit::max(
                kit_oauth::store::BULK_RESULT_MAX_BYTES,
            )),
        )
        .route("/", get(dashboard::page))
        .route("/overview", get(overview::page_of))
        .route("/connections/{id}", get(timeline::page_of))
        .route("/login", post(dashboard::login))
        .route("/logout", post(dashboard::logout))
        .route("/connections/{id}/refresh", post(dashboard::refresh))
        .route("/connections/{id}/revoke", post(dashboard::revoke))
        .route("/healthz", get(ops_routes::healthz))
        .route("/readyz", get(ops_routes::readyz))
        .route("/metrics", get(ops_routes::metrics))
        .route("/openapi.json", get(openapi::document))
        .with_state(state);
    routes
        .layer(axum::middleware::from_fn_with_state(
            route_limits,
            limits::enforce,
        ))
        .layer(axum::middleware::from_fn(metrics::track_http))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_request(())
                .on_response(telemetry::on_response)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(http::HeaderName::from_static(
            REQUEST_ID_HEADER,
        )))
        .layer(SetRequestIdLayer::new(
            http::HeaderName::from_static(REQUEST_ID_HEADER),
            RandomRequestId,
        ))
}

/// Request ids: 12 random bytes, hex (unguessable, so they can be shown to users).
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let mut bytes = [0u8; 12];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
        http::HeaderValue::from_str(&hex::encode(bytes))
            .ok()
            .map(RequestId::new)
    }
}

/// Whether a URL is plain-HTTP loopback (where the demo may drop the `Secure` cookie flag).
#[must_use]
pub fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http" && matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"))
}
