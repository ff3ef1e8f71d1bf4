//! Assembling and running the whole server: the library facade, the refresher, webhooks, the
//! router, graceful shutdown. The binary and the end-to-end tests both start it from here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kit_oauth::core::Clock;
use kit_oauth::http::kit_api::RateBudget;
use kit_oauth::{BuildError, KitOAuth, KitOAuthConfig, RefresherConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use secrecy::ExposeSecret as _;

use crate::keys::ApiKeys;
use crate::metrics::MetricsEvents;
use crate::sessions::SessionKey;
use crate::webhook::{WebhookConfig, WebhookWorker};
use crate::{
    BrokerOptions, CookiePolicy, DashboardAccess, DemoInfo, Engine, InstallLinks, KitApi,
    ReadyCheck, RouteLimits, SignIn, SignInLimits, TrustedProxies,
};

/// What to run.
pub struct RunConfig {
    /// The library's configuration (Kit endpoints, database, key ring).
    pub library: KitOAuthConfig,
    /// A bound listener.
    pub listener: TcpListener,
    /// Broker API keys.
    pub api_keys: ApiKeys,
    /// Dashboard access.
    pub dashboard: DashboardAccess,
    /// Webhook receiver, signing secret and retry pace.
    pub webhook: Option<WebhookConfig>,
    /// Demo details (dashboard banner, loopback cookies).
    pub demo: Option<DemoInfo>,
    /// Background refresher pace.
    pub refresher: RefresherConfig,
    /// How long shutdown waits for webhook deliveries.
    pub shutdown_grace: Duration,
    /// The clock of the library (`None`: the system clock). Tests inject a manual one to let
    /// ten minutes pass without waiting for them.
    pub clock: Option<Arc<dyn Clock>>,
    /// The sign-in hook of `GET /kit/oauth`.
    pub sign_in: Option<SignIn>,
    /// Signed install links naming a tenant.
    pub install_links: Option<InstallLinks>,
    /// The dashboard sign-in throttle.
    pub sign_in_limits: SignInLimits,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: TrustedProxies,
    /// Every route's time limit.
    pub route_limits: RouteLimits,
    /// The per-connection Kit API budget shared by the proxy and the library (`None`: Kit's
    /// 600 per 60 s, [`RateBudget::kit`]).
    pub kit_rate_budget: Option<RateBudget>,
    /// The dashboard's reload period while unused (`None`: never).
    pub dashboard_reload: Option<Duration>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad configuration (exit code 2).
    #[error(transparent)]
    Config(#[from] kit_oauth::ConfigError),
    /// Anything else: the database, the network (exit code 1).
    #[error("{0}")]
    Failed(String),
}

impl From<BuildError> for StartError {
    fn from(error: BuildError) -> Self {
        match error {
            BuildError::Config(config) => Self::Config(config),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// A running server.
pub struct Running {
    addr: SocketAddr,
    kit: KitOAuth,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The library facade it runs on.
    #[must_use]
    pub fn kit(&self) -> &KitOAuth {
        &self.kit
    }

    /// Stops accepting, finishes requests, stops the refresher (in-flight refreshes commit or
    /// release their leases) and webhook deliveries, then returns.
    pub async fn shutdown(self) {
        let Self {
            kit, stop, task, ..
        } = self;
        // The webhook queue closes when the last manager clone (and its sinks) is gone.
        drop(kit);
        let _ = stop.send(true);
        if let Err(error) = task.await {
            tracing::error!(%error, "the server task failed");
        }
    }

    /// Runs until SIGTERM or SIGINT, then shuts down gracefully.
    pub async fn until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Builds the facade, starts the refresher and serves.
///
/// # Errors
/// [`StartError::Config`] for configuration problems, [`StartError::Failed`] otherwise.
pub async fn start(config: RunConfig) -> Result<Running, StartError> {
    let addr = config
        .listener
        .local_addr()
        .map_err(|e| StartError::Failed(format!("cannot read the listen address: {e}")))?;
    // A broker runs for long: it opens its whole pool at start-up, so no request waits for a
    // new database connection (`StoreOptions::warm_pool`).
    let mut builder = KitOAuth::builder()
        .config(config.library.clone())
        .store_options(kit_oauth::store::StoreOptions {
            warm_pool: true,
            ..kit_oauth::store::StoreOptions::default()
        })
        .event_sink(MetricsEvents);
    if let Some(clock) = &config.clock {
        builder = builder.clock(Arc::clone(clock));
    }
    if let Some(budget) = config.kit_rate_budget.clone() {
        builder = builder.rate_budget(budget);
    }
    let mut sign_in = config.sign_in;
    let mut bulk_webhook = None;
    let worker = match config.webhook.clone() {
        Some(webhook) => {
            let (sink, worker) = WebhookWorker::spawn(webhook)
                .map_err(|e| StartError::Failed(format!("webhook client: {e}")))?;
            // Apps in other languages learn who installed from the webhook.
            sign_in = sign_in.map(|hook| {
                let sink = sink.clone();
                hook.also_on_installed(move |by| sink.installed_by(by))
            });
            bulk_webhook = Some(sink.clone());
            builder = builder.event_sink(sink);
            Some(worker)
        }
        None => None,
    };
    let kit = builder.build().await?;
    let refresher = kit.refresher(config.refresher.clone()).spawn();
    let store = kit.manager().store().clone();
    let ready: ReadyCheck = Arc::new(move || {
        let store = store.clone();
        Box::pin(async move { store.readiness().await.map_err(|e| e.to_string()) })
    });
    let loopback = crate::is_loopback_http(&config.library.redirect_uri);
    let start_again_url = if config.demo.is_some() {
        "/".to_owned()
    } else {
        config
            .library
            .redirect_allow
            .prefixes()
            .next()
            .unwrap_or(kit_oauth::core::DEFAULT_REDIRECT_PREFIX)
            .to_owned()
    };
    // Kit calls bulk results back to the broker's public origin, the redirect URI's.
    let bulk = config
        .library
        .redirect_uri
        .join("/")
        .ok()
        .map(|callback_base| crate::bulk::BulkOptions {
            callback_base,
            webhook: bulk_webhook,
            retention: config.refresher.event_retention,
        });
    let options = BrokerOptions {
        bulk,
        api_keys: config.api_keys,
        dashboard: config.dashboard,
        cookies: CookiePolicy { secure: !loopback },
        kit_api: Some({
            let api = KitApi::new(config.library.base.clone())
                .map_err(|e| StartError::Failed(format!("Kit API client: {e}")))?;
            // One budget per connection for the whole process: the proxy and the library.
            match kit.client().rate_budget() {
                Some(budget) => api.with_rate_budget(budget.clone()),
                None => api,
            }
        }),
        start_again_url,
        ready: Some(ready),
        demo: config.demo,
        sign_in,
        install_links: config.install_links,
        sign_in_limits: config.sign_in_limits,
        trusted_proxies: config.trusted_proxies,
        route_limits: config.route_limits,
        dashboard_reload: config.dashboard_reload,
        // Every instance of a deployment has the same encryption key: their sessions agree.
        session_key: config
            .library
            .encryption_key
            .as_ref()
            .map(|key| SessionKey::derive(key.0.expose_secret())),
    };
    let router = crate::router(Engine::of(&kit), options);
    let (stop, mut stopped) = watch::channel(false);
    let grace = config.shutdown_grace;
    let listener = config.listener;
    let task = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await;
        if let Err(error) = served {
            tracing::error!(%error, "the server stopped with an error");
        }
        refresher.shutdown().await;
        if let Some(worker) = worker {
            worker.shutdown(grace).await;
        }
        tracing::info!("stopped");
    });
    tracing::info!(%addr, "kit-oauth-server listening");
    Ok(Running {
        addr,
        kit,
        stop,
        task,
    })
}
