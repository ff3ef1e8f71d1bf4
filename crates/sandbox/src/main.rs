//! `kit-sandbox`: run a local Kit (OAuth server + API v4 subset) for development and tests.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use kit_sandbox::{
    DEFAULT_ACCOUNT, DEFAULT_CLIENT_ID, DEFAULT_REDIRECT_URI, Rotation, SandboxConfig,
};

/// A faithful local Kit: OAuth 2.0 authorize/token/revoke (both /v4/oauth/* and /oauth/*),
/// GET /v4/account, an App Store install simulation, and a control API under /_sandbox/
/// (stats, faults, clock, grants). Every flag can also be set with its KIT_SANDBOX_* variable.
#[derive(Debug, Parser)]
#[command(name = "kit-sandbox", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on start-up).
    #[arg(long, env = "KIT_SANDBOX_BIND", default_value = "127.0.0.1:8787")]
    bind: SocketAddr,

    /// The registered app's client_id.
    #[arg(long, env = "KIT_SANDBOX_CLIENT_ID", default_value = DEFAULT_CLIENT_ID)]
    client_id: String,

    /// The app's client secret. Without one the app is a public client and must use PKCE (S256).
    #[arg(long, env = "KIT_SANDBOX_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,

    /// A registered redirect URI, matched exactly. Repeat the flag (or separate with commas in
    /// the variable) to register several.
    #[arg(
        long = "redirect-uri",
        env = "KIT_SANDBOX_REDIRECT_URI",
        value_delimiter = ',',
        default_value = DEFAULT_REDIRECT_URI
    )]
    redirect_uris: Vec<String>,

    /// expires_in (seconds) of access tokens from the code exchange.
    #[arg(long, env = "KIT_SANDBOX_ACCESS_TTL", default_value_t = 172_800)]
    access_ttl: u64,

    /// expires_in (seconds) of access tokens from a refresh.
    #[arg(long, env = "KIT_SANDBOX_REFRESH_ACCESS_TTL", default_value_t = 7_200)]
    refresh_access_ttl: u64,

    /// Lifetime (seconds) of an authorization code.
    #[arg(long, env = "KIT_SANDBOX_CODE_TTL", default_value_t = 600)]
    code_ttl: u64,

    /// Skip the consent page: authorize redirects straight back with a code for the default
    /// account.
    #[arg(long, env = "KIT_SANDBOX_AUTO_APPROVE")]
    auto_approve: bool,

    /// How refresh tokens rotate.
    ///
    /// revoke-on-use (default; Doorkeeper's default, so Kit's most likely behaviour): after a
    /// refresh the previous refresh and access tokens keep working until the new access token
    /// is first used; a refresh with the previous token before then issues another pair; a
    /// reuse never ends the grant. Use it for realism and demos.
    ///
    /// strict (Doorkeeper without the previous_refresh_token column): a refresh revokes the
    /// previous pair at once; reusing it is invalid_grant.
    ///
    /// reuse-detection: strict, and presenting a spent refresh token also revokes the whole
    /// grant. No Doorkeeper does this; test exactly-once refresh guarantees against it.
    #[arg(
        long,
        env = "KIT_SANDBOX_ROTATION",
        value_name = "MODE",
        default_value = "revoke-on-use",
        value_parser = parse_rotation,
        verbatim_doc_comment
    )]
    rotation: Rotation,

    /// A replayed authorization code also revokes the tokens issued from it (RFC 6749 §4.1.2).
    /// Off by default, as on Doorkeeper (Kit), which keeps them.
    #[arg(long, env = "KIT_SANDBOX_REVOKE_ON_CODE_REPLAY")]
    revoke_on_code_replay: bool,

    /// A new authorization of the same account and tenant revokes the grant's earlier tokens.
    /// Off by default, as on Doorkeeper (Kit), which keeps them.
    #[arg(long, env = "KIT_SANDBOX_REVOKE_ON_REAUTHORIZATION")]
    revoke_on_reauthorization: bool,

    /// The revoke endpoint also revokes tokens whose access token has expired. Off by default,
    /// as on Doorkeeper (Kit), which ignores such a revoke (the refresh token keeps working).
    #[arg(long, env = "KIT_SANDBOX_REVOKE_EXPIRED")]
    revoke_expired: bool,

    /// Accept the just-spent refresh token once more within this many seconds, returning the
    /// same new token pair (0 = no grace). Works with every --rotation mode.
    #[arg(
        long,
        env = "KIT_SANDBOX_REUSE_GRACE",
        value_name = "SECONDS",
        default_value_t = 0
    )]
    reuse_grace: u64,

    /// API requests allowed per access token per rolling --rate-window; then 429.
    #[arg(
        long,
        env = "KIT_SANDBOX_RATE_LIMIT",
        value_name = "N",
        default_value_t = 600
    )]
    rate_limit: u32,

    /// The rolling window of --rate-limit, in seconds (Kit's: 60).
    #[arg(
        long,
        env = "KIT_SANDBOX_RATE_WINDOW",
        value_name = "SECONDS",
        default_value_t = 60
    )]
    rate_window: u64,

    /// Records one Kit account may hold in the API's memory; one more is refused with 422.
    #[arg(
        long = "max-records",
        env = "KIT_SANDBOX_MAX_RECORDS",
        value_name = "N",
        default_value_t = kit_sandbox::DEFAULT_MAX_RECORDS
    )]
    max_records_per_account: usize,

    /// Answer "token_type":"bearer" instead of "Bearer".
    #[arg(long, env = "KIT_SANDBOX_LOWERCASE_TOKEN_TYPE")]
    lowercase_token_type: bool,

    /// Leave "scope" out of token responses.
    #[arg(long, env = "KIT_SANDBOX_OMIT_SCOPE")]
    omit_scope: bool,

    /// The app's Authorization URL: GET /apps/{id}/install redirects there with
    /// redirect=<sandbox>/apps/{id}?success=true.
    #[arg(long, env = "KIT_SANDBOX_APP_AUTHORIZATION_URL", value_name = "URL")]
    app_authorization_url: Option<String>,

    /// The app's name, shown on the consent page.
    #[arg(long, env = "KIT_SANDBOX_APP_NAME", default_value = "Sandbox App")]
    app_name: String,

    /// Account name used by --auto-approve and prefilled on the consent page.
    #[arg(long, env = "KIT_SANDBOX_DEFAULT_ACCOUNT", default_value = DEFAULT_ACCOUNT)]
    default_account: String,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "KIT_SANDBOX_MAX_BODY_BYTES", default_value_t = 16 * 1024)]
    max_body_bytes: usize,
}

impl Args {
    fn into_config(self) -> SandboxConfig {
        SandboxConfig {
            bind: self.bind,
            client_id: self.client_id,
            client_secret: self.client_secret,
            redirect_uris: self.redirect_uris,
            access_ttl: self.access_ttl,
            refresh_access_ttl: self.refresh_access_ttl,
            code_ttl: self.code_ttl,
            auto_approve: self.auto_approve,
            rotation: self.rotation,
            revoke_on_code_replay: self.revoke_on_code_replay,
            revoke_on_reauthorization: self.revoke_on_reauthorization,
            revoke_expired: self.revoke_expired,
            reuse_grace: self.reuse_grace,
            rate_limit: self.rate_limit,
            rate_window: self.rate_window,
            max_records_per_account: self.max_records_per_account,
            lowercase_token_type: self.lowercase_token_type,
            omit_scope: self.omit_scope,
            app_authorization_url: self.app_authorization_url,
            app_name: self.app_name,
            default_account: self.default_account,
            max_body_bytes: self.max_body_bytes,
        }
    }
}

fn parse_rotation(s: &str) -> Result<Rotation, String> {
    s.parse()
        .map_err(|e: kit_sandbox::UnknownRotation| e.to_string())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kit-sandbox: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(args.into_config()))
}

async fn run(config: SandboxConfig) -> ExitCode {
    let handle = match kit_sandbox::SandboxBuilder::from_config(config)
        .spawn()
        .await
    {
        Ok(h) => h,
        Err(e) => {
            eprintln!("kit-sandbox: {e}");
            return ExitCode::from(2);
        }
    };
    // Registered before the address is printed: a supervisor that sends SIGTERM as soon as it
    // has read the line must not find the default (killing) disposition still in place.
    let stop = shutdown_signal();
    println!("kit-sandbox listening on {}", handle.base_url());
    stop.await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
