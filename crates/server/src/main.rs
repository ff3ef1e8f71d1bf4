//! `kit-oauth-server`: the Kit OAuth token broker.
//!
//! With no configuration (a plain `cargo run`) or `--demo` it starts the demo: a local Kit
//! sandbox, a SQLite file under `./.kit-oauth/`, and prints the one URL to open.
//! Otherwise every variable of the Configuration table is read (each also a flag), and a
//! missing or malformed one stops start-up with one line naming it and exit code 2.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use kit_oauth_server::app::{self, RunConfig, StartError};
use kit_oauth_server::config::{KitArgs, ServerArgs};
use kit_oauth_server::telemetry::{self, LogFormat};
use kit_oauth_server::webhook::WebhookConfig;
use kit_oauth_server::{DashboardAccess, InstallLinks, RouteLimits, SignIn, SignInLimits};

/// The Kit OAuth token broker: install endpoints, broker API, dashboard.
#[derive(Debug, Parser)]
#[command(name = "kit-oauth-server", version, about)]
struct Cli {
    /// Run the demo: an embedded Kit sandbox and a local SQLite file (also what happens with no
    /// configuration at all).
    #[arg(long)]
    demo: bool,
    /// Where the demo keeps its database and key.
    #[arg(long, env = "KIT_OAUTH_DEMO_DIR", default_value = ".kit-oauth")]
    demo_dir: PathBuf,
    #[command(flatten)]
    kit: KitArgs,
    #[command(flatten)]
    server: ServerArgs,
}

fn main() -> ExitCode {
    // clap prints usage errors itself and exits with code 2.
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kit-oauth-server: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(StartError::Config(error)) => {
            eprintln!("kit-oauth-server: {error}");
            ExitCode::from(2)
        }
        Err(StartError::Failed(message)) => {
            eprintln!("kit-oauth-server: {message}");
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> Result<(), StartError> {
    let log_format = cli.server.log_format()?;
    // Without the demo built in, an empty configuration is reported like any missing variable.
    let is_demo = cli.demo
        || (cfg!(feature = "demo") && cli.kit.is_unconfigured() && cli.server.api_keys.is_none());
    if is_demo {
        return run_demo(cli, log_format).await;
    }
    let library = cli.kit.library_config()?;
    let settings = cli.server.settings()?;
    telemetry::init(log_format, "info");
    let listener = tokio::net::TcpListener::bind(settings.bind)
        .await
        .map_err(|e| {
            StartError::Failed(format!(
                "KIT_OAUTH_BIND: cannot listen on {}: {e}",
                settings.bind
            ))
        })?;
    let running = app::start(RunConfig {
        library,
        listener,
        api_keys: settings.api_keys,
        dashboard: DashboardAccess::Key(Arc::new(settings.admin_keys)),
        webhook: settings
            .webhook
            .map(|(url, secret)| WebhookConfig::new(url, secret)),
        demo: None,
        refresher: settings.refresher,
        shutdown_grace: Duration::from_secs(10),
        clock: None,
        sign_in: settings.user_signing_secret.map(SignIn::new),
        install_links: settings.install_link_secret.map(InstallLinks::new),
        sign_in_limits: SignInLimits::default(),
        trusted_proxies: settings.trusted_proxies,
        route_limits: RouteLimits::default(),
        kit_rate_budget: settings.kit_rate_budget,
        dashboard_reload: cli.server.dashboard_reload()?,
    })
    .await?;
    running.until_signal().await;
    Ok(())
}

/// Built without the `demo` feature: there is no fake Kit inside to run.
#[cfg(not(feature = "demo"))]
async fn run_demo(cli: Cli, _log_format: LogFormat) -> Result<(), StartError> {
    let _ = cli;
    Err(StartError::Config(kit_oauth::ConfigError::new(
        "--demo",
        "this kit-oauth-server was built without the demo (cargo feature `demo`); configure a Kit app instead (KIT_CLIENT_ID, KIT_REDIRECT_URI, KIT_OAUTH_API_KEYS, …)",
    )))
}

#[cfg(feature = "demo")]
async fn run_demo(cli: Cli, log_format: LogFormat) -> Result<(), StartError> {
    use kit_oauth::RefresherConfig;
    use kit_oauth_server::{ApiKeys, demo};

    let bind = cli.server.bind()?;
    // The demo scans more often than a deployment, unless told otherwise.
    let refresher = cli.server.refresher(RefresherConfig {
        interval: Duration::from_secs(2),
        ..RefresherConfig::default()
    })?;
    let bind_is_default = cli
        .server
        .bind
        .as_deref()
        .is_none_or(|b| b.trim().is_empty());
    // Quiet by default: the one line to read is the URL. RUST_LOG shows more.
    telemetry::init(log_format, "warn");
    let prepared = demo::prepare(&cli.demo_dir, bind, bind_is_default).await?;
    let running = app::start(RunConfig {
        library: prepared.library,
        listener: prepared.listener,
        api_keys: ApiKeys::none().with_key(&prepared.info.api_key),
        dashboard: DashboardAccess::Open,
        webhook: None,
        demo: Some(prepared.info),
        refresher,
        shutdown_grace: Duration::from_secs(2),
        clock: None,
        sign_in: None,
        install_links: None,
        sign_in_limits: SignInLimits::default(),
        trusted_proxies: cli.server.trusted_proxies()?,
        route_limits: RouteLimits::default(),
        kit_rate_budget: None,
        dashboard_reload: cli.server.dashboard_reload()?,
    })
    .await?;
    println!(
        "kit-oauth demo is running: open {} in your browser (Ctrl-C to stop)",
        prepared.url
    );
    running.until_signal().await;
    prepared.sandbox.shutdown().await;
    Ok(())
}
