//! `kit-oauth`: the admin command line (connections, refresh, revoke, keys, migrate, doctor).
//!
//! Same configuration as the server (environment variables, each also a flag). Exit codes:
//! 0 ok, 1 the operation failed, 2 bad usage or configuration.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kit_oauth::core::{ConnectionId, ConnectionStore as _, ListQuery, StateName, Timestamp};
use kit_oauth::{ConfigError, ConnectionStatus, KitOAuth, key_ring_from};
use kit_oauth_server::config::KitArgs;
use kit_oauth_store::{SeaOrmStore, StoreOptions};
use serde_json::{Value, json};

/// Above this many connections, bulk operations show a progress bar.
const PROGRESS_ABOVE: usize = 5;

#[derive(Debug, Parser)]
#[command(
    name = "kit-oauth",
    version,
    about = "Administer kit-oauth connections"
)]
struct Cli {
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(flatten)]
    kit: KitArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Apply pending database migrations.
    Migrate,
    /// List or show connections.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCmd,
    },
    /// Print a fresh access token (refreshing first when due).
    Token {
        /// Connection id.
        id: String,
    },
    /// Refresh one connection, all of them, or the ones due.
    Refresh {
        /// Connection id.
        id: Option<String>,
        /// Every active connection.
        #[arg(long, conflicts_with_all = ["id", "due"])]
        all: bool,
        /// Only connections whose scheduled refresh has passed.
        #[arg(long, conflicts_with = "id")]
        due: bool,
    },
    /// Revoke a connection's grant at Kit.
    Revoke {
        /// Connection id.
        id: String,
    },
    /// Encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCmd,
    },
    /// Check configuration, database, migrations, key ring and the token endpoint.
    Doctor,
}

#[derive(Debug, Subcommand)]
enum ConnectionsCmd {
    /// List connections.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show one connection.
    Show {
        /// Connection id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Re-encrypt every row with the current (first) key; resumable.
    Rotate,
}

enum Failure {
    Usage(String),
    Failed(String),
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Self::Usage(error.to_string())
    }
}

fn failed(error: impl std::fmt::Display) -> Failure {
    Failure::Failed(error.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("kit-oauth: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("kit-oauth: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Failed(message)) => {
            eprintln!("kit-oauth: {message}");
            ExitCode::from(1)
        }
    }
}

async fn open(kit: &KitArgs) -> Result<KitOAuth, Failure> {
    let config = kit.library_config()?;
    KitOAuth::builder()
        .config(config)
        .build()
        .await
        .map_err(|e| match e {
            kit_oauth::BuildError::Config(c) => Failure::Usage(c.to_string()),
            other => failed(other),
        })
}

fn parse_id(raw: &str) -> Result<ConnectionId, Failure> {
    ConnectionId::parse(raw).map_err(|e| Failure::Usage(format!("{raw:?}: {e}")))
}

fn when(at: Option<Timestamp>) -> String {
    at.map_or_else(|| "—".to_owned(), kit_oauth_server::web::rfc3339)
}

fn to_json(s: &ConnectionStatus) -> Value {
    json!({
        "id": s.id.as_str(),
        "tenant": s.tenant.as_ref().map(kit_oauth::core::TenantName::as_str),
        "account_id": s.account.id.as_str(),
        "account_name": s.account.name,
        "state": s.state.as_str(),
        "expires_at": s.expires_at.map(kit_oauth_server::web::rfc3339),
        "last_refresh_at": s.last_refresh_at.map(kit_oauth_server::web::rfc3339),
        "last_error": s.last_error,
    })
}

fn print_table(rows: &[ConnectionStatus]) {
    println!(
        "{:<24} {:<16} {:<24} {:<13} {:<26} LAST ERROR",
        "ID", "TENANT", "ACCOUNT", "STATE", "EXPIRES"
    );
    for s in rows {
        println!(
            "{:<24} {:<16} {:<24} {:<13} {:<26} {}",
            s.id.as_str(),
            s.tenant.as_ref().map_or("—", |t| t.as_str()),
            s.account.name,
            s.state.as_str(),
            when(s.expires_at),
            s.last_error.as_deref().unwrap_or("")
        );
    }
}

async fn all_connections(
    kit: &KitOAuth,
    query: ListQuery,
) -> Result<Vec<ConnectionStatus>, Failure> {
    let mut query = ListQuery {
        limit: 500,
        ..query
    };
    let mut out = Vec::new();
    loop {
        let page = kit.manager().list(&query).await.map_err(failed)?;
        let full = page.len() == query.limit as usize;
        query.after = page.last().map(|s| s.id.clone());
        out.extend(page);
        if !full {
            return Ok(out);
        }
    }
}

fn bar(len: usize, what: &str) -> Option<ProgressBar> {
    (len > PROGRESS_ABOVE).then(|| {
        let bar = ProgressBar::new(len as u64);
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_owned());
        bar
    })
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Cmd::Migrate => {
            let config = cli.kit.library_config()?;
            let keys = key_ring_from(&config)?;
            let store =
                SeaOrmStore::connect_with(&config.database_url, keys, StoreOptions::default())
                    .await
                    .map_err(failed)?;
            store.readiness().await.map_err(failed)?;
            if cli.json {
                println!("{}", json!({"migrated": true}));
            } else {
                println!("migrations applied");
            }
            Ok(())
        }
        Cmd::Connections { command } => {
            let kit = open(&cli.kit).await?;
            match command {
                ConnectionsCmd::List { tenant } => {
                    let tenant = tenant
                        .map(|t| kit_oauth::core::TenantName::parse(&t))
                        .transpose()
                        .map_err(|e| Failure::Usage(format!("--tenant: {e}")))?;
                    let rows = all_connections(
                        &kit,
                        ListQuery {
                            tenant: tenant.map(Some),
                            ..ListQuery::default()
                        },
                    )
                    .await?;
                    if cli.json {
                        println!("{}", Value::Array(rows.iter().map(to_json).collect()));
                    } else {
                        print_table(&rows);
                    }
                }
                ConnectionsCmd::Show { id } => {
                    let status = kit
                        .manager()
                        .status(&parse_id(&id)?)
                        .await
                        .map_err(failed)?;
                    if cli.json {
                        println!("{}", to_json(&status));
                    } else {
                        print_table(std::slice::from_ref(&status));
                    }
                }
            }
            Ok(())
        }
        Cmd::Token { id } => {
            let kit = open(&cli.kit).await?;
            let token = kit
                .manager()
                .access_token(&parse_id(&id)?)
                .await
                .map_err(failed)?;
            if cli.json {
                println!("{}", json!({"access_token": token.expose_secret()}));
            } else {
                println!("{}", token.expose_secret());
            }
            Ok(())
        }
        Cmd::Refresh { id, all, due } => {
            let kit = open(&cli.kit).await?;
            let ids: Vec<ConnectionId> = match (id, all, due) {
                (Some(id), _, _) => vec![parse_id(&id)?],
                (None, true, _) => all_connections(
                    &kit,
                    ListQuery {
                        state: Some(StateName::Authorized),
                        ..ListQuery::default()
                    },
                )
                .await?
                .into_iter()
                .map(|s| s.id)
                .collect(),
                (None, false, true) => {
                    let now = kit.manager().clock().now();
                    kit.manager()
                        .store()
                        .list_due(now, 100_000)
                        .await
                        .map_err(failed)?
                }
                (None, false, false) => {
                    return Err(Failure::Usage(
                        "refresh needs a connection id, --all or --due".into(),
                    ));
                }
            };
            let progress = bar(ids.len(), "refreshing");
            let mut failures = Vec::new();
            for id in &ids {
                let result = if due {
                    kit.manager().refresh_if_scheduled(id).await
                } else {
                    kit.manager().force_refresh(id, None).await.map(drop)
                };
                if let Err(error) = result {
                    failures.push(json!({"id": id.as_str(), "error": error.to_string()}));
                }
                if let Some(bar) = &progress {
                    bar.inc(1);
                }
            }
            if let Some(bar) = progress {
                bar.finish_and_clear();
            }
            if cli.json {
                println!(
                    "{}",
                    json!({"refreshed": ids.len() - failures.len(), "failed": failures})
                );
            } else {
                println!("refreshed {} of {}", ids.len() - failures.len(), ids.len());
                for f in &failures {
                    println!("  {}: {}", f["id"], f["error"]);
                }
            }
            if failures.is_empty() {
                Ok(())
            } else {
                Err(Failure::Failed(format!(
                    "{} refreshes failed",
                    failures.len()
                )))
            }
        }
        Cmd::Revoke { id } => {
            let kit = open(&cli.kit).await?;
            kit.manager()
                .revoke(&parse_id(&id)?)
                .await
                .map_err(failed)?;
            if cli.json {
                println!("{}", json!({"revoked": id}));
            } else {
                println!("revoked {id}");
            }
            Ok(())
        }
        Cmd::Keys {
            command: KeysCmd::Rotate,
        } => {
            let kit = open(&cli.kit).await?;
            let store = kit.manager().store();
            let first = store.reencrypt_batch(200).await.map_err(failed)?;
            let total = first.reencrypted + first.remaining;
            let progress = bar(
                usize::try_from(total).unwrap_or(usize::MAX),
                "re-encrypting",
            );
            let mut done = first.reencrypted;
            let mut remaining = first.remaining;
            if let Some(bar) = &progress {
                bar.set_position(done);
            }
            while remaining > 0 {
                let step = store.reencrypt_batch(200).await.map_err(failed)?;
                done += step.reencrypted;
                if step.reencrypted == 0 && step.remaining >= remaining {
                    return Err(Failure::Failed(format!(
                        "{} rows could not be re-encrypted (changing concurrently?); run again",
                        step.remaining
                    )));
                }
                remaining = step.remaining;
                if let Some(bar) = &progress {
                    bar.set_position(done);
                }
            }
            if let Some(bar) = progress {
                bar.finish_and_clear();
            }
            if cli.json {
                println!(
                    "{}",
                    json!({"reencrypted": done, "current_key": store.keys().current_key_id()})
                );
            } else {
                println!(
                    "re-encrypted {done} rows; every row now uses key {}",
                    store.keys().current_key_id()
                );
            }
            Ok(())
        }
        Cmd::Doctor => doctor(&cli.kit, cli.json).await,
    }
}

async fn doctor(kit: &KitArgs, as_json: bool) -> Result<(), Failure> {
    let mut checks: Vec<(&str, Result<String, String>)> = Vec::new();
    let config = match kit.library_config() {
        Ok(config) => {
            checks.push(("configuration", Ok("every variable is valid".into())));
            Some(config)
        }
        Err(error) => {
            checks.push(("configuration", Err(error.to_string())));
            None
        }
    };
    if let Some(config) = &config {
        match key_ring_from(config) {
            Err(error) => checks.push(("key ring", Err(error.to_string()))),
            Ok(keys) => {
                checks.push((
                    "key ring",
                    Ok(format!("current key {}", keys.current_key_id())),
                ));
                let options = StoreOptions {
                    migrate: false,
                    ..StoreOptions::default()
                };
                match SeaOrmStore::connect_with(&config.database_url, keys, options).await {
                    Err(error) => {
                        checks.push(("database", Err(format!("cannot connect: {error}"))));
                    }
                    Ok(store) => {
                        checks.push(("database", Ok("reachable".into())));
                        checks.push((
                            "migrations",
                            store
                                .readiness()
                                .await
                                .map(|()| "applied".to_owned())
                                .map_err(|e| format!("{e} (run `kit-oauth migrate`)")),
                        ));
                    }
                }
            }
        }
        let reachable = match reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
        {
            Ok(client) => client
                .post(config.token_url.clone())
                .send()
                .await
                .map(|r| format!("answered HTTP {}", r.status().as_u16()))
                .map_err(|e| format!("unreachable: {}", e.without_url())),
            Err(error) => Err(format!("HTTP client: {error}")),
        };
        checks.push(("token endpoint", reachable));
    }
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    if as_json {
        let list: Vec<Value> = checks
            .iter()
            .map(|(name, r)| match r {
                Ok(m) => json!({"check": name, "ok": true, "detail": m}),
                Err(m) => json!({"check": name, "ok": false, "detail": m}),
            })
            .collect();
        println!("{}", json!({"ok": ok, "checks": list}));
    } else {
        for (name, result) in &checks {
            match result {
                Ok(m) => println!("ok    {name}: {m}"),
                Err(m) => println!("FAIL  {name}: {m}"),
            }
        }
    }
    match (ok, config.is_some()) {
        (true, _) => Ok(()),
        (false, false) => Err(Failure::Usage("the configuration is not usable".into())),
        (false, true) => Err(Failure::Failed("some checks failed".into())),
    }
}
