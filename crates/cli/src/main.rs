//! `kit-oauth`: the admin command line (connections, import/export, refresh, revoke and remove,
//! keys, migrate, doctor).
//!
//! Same configuration as the server (environment variables, each also a flag). It reaches the
//! database and Kit through the `kit-oauth` facade only (`kit_oauth::store` for the store's
//! own operations), as `docs/ARCHITECTURE.md` draws it. Exit codes: see [`EXIT_CODES`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use kit_oauth::core::ConnectionId;
use kit_oauth::store::{SeaOrmStore, StoreOptions};
use kit_oauth::{ConfigError, KitOAuth, key_ring_from};
use kit_oauth_server::config::KitArgs;
use serde_json::json;

mod connections;
mod doctor;
mod export;
mod import;
mod jobs;
mod records;

/// Above this many items, bulk operations show a progress bar.
const PROGRESS_ABOVE: usize = 5;

/// The exit codes, as `--help` prints them.
const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  the operation failed (Kit, the database, a connection that cannot be served)
  2  bad usage or configuration (nothing was attempted)
  3  a bulk job (import, refresh --all/--due) finished, but some items were refused or left
     for a rerun (listed in its summary)";

#[derive(Debug, Parser)]
#[command(
    name = "kit-oauth",
    version,
    about = "Administer kit-oauth connections",
    after_help = EXIT_CODES
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
        /// Connection id (ids may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Refresh one connection, all of them, or the ones due.
    Refresh {
        /// Connection id (ids may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        id: Option<String>,
        /// Every active connection.
        #[arg(long, conflicts_with_all = ["id", "due"])]
        all: bool,
        /// Only connections whose scheduled refresh has passed.
        #[arg(long, conflicts_with = "id")]
        due: bool,
    },
    /// Revoke a connection's grant at Kit (the connection stays, needing a reinstall).
    Revoke {
        /// Connection id (ids may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Revoke a connection's grant at Kit, then delete the connection.
    Remove {
        /// Connection id (ids may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        id: String,
        /// Delete it even when Kit refuses the revocation or cannot be reached; the audit
        /// trail records that Kit was not told.
        #[arg(long)]
        force: bool,
    },
    /// Import grants an app obtained with its own OAuth: JSON lines or CSV with the fields
    /// refresh_token, access_token, expires_at, tenant. Resumable: finished lines are recorded
    /// in FILE.progress and skipped by a rerun.
    Import {
        /// The file to read.
        file: PathBuf,
        /// Check each record (spent list, account lookup) without storing or refreshing.
        #[arg(long)]
        dry_run: bool,
        /// Records in flight at once.
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Records started per second at most (0: no pacing).
        #[arg(long, default_value_t = 20)]
        per_second: u32,
    },
    /// Write every live grant's tokens, decrypted, as JSON lines `import` reads (for moving
    /// away). Stop the broker first: it would rotate the exported refresh tokens.
    Export {
        /// The file to create (mode 0600; never overwritten).
        #[arg(long)]
        to: PathBuf,
        /// Required: the file holds every creator's live credentials in the clear.
        #[arg(long)]
        i_understand_this_writes_secrets: bool,
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
    /// List connections as a table (or JSON with --json).
    List {
        /// Only this state: authorized or unauthorized.
        #[arg(long)]
        state: Option<String>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show one connection and its events.
    Show {
        /// Connection id (ids may begin with `-`).
        #[arg(allow_hyphen_values = true)]
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
    /// A bulk job ran to its end with some items not done; its summary says which.
    Partial,
}

impl From<ConfigError> for Failure {
    fn from(error: ConfigError) -> Self {
        Self::Usage(error.to_string())
    }
}

fn failed(error: impl std::fmt::Display) -> Failure {
    Failure::Failed(error.to_string())
}

/// Runs a blocking file operation off the async worker threads' hot path.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
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
        Err(Failure::Partial) => ExitCode::from(3),
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

fn partial(all_done: bool) -> Result<(), Failure> {
    if all_done {
        Ok(())
    } else {
        Err(Failure::Partial)
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let as_json = cli.json;
    match cli.command {
        Cmd::Migrate => {
            let config = cli.kit.library_config()?;
            let keys = key_ring_from(&config)?;
            let store =
                SeaOrmStore::connect_with(&config.database_url, keys, StoreOptions::default())
                    .await
                    .map_err(failed)?;
            store.readiness().await.map_err(failed)?;
            if as_json {
                println!("{}", json!({"migrated": true}));
            } else {
                println!("migrations applied");
            }
            Ok(())
        }
        Cmd::Connections { command } => {
            let kit = open(&cli.kit).await?;
            match command {
                ConnectionsCmd::List { state, tenant } => {
                    connections::list(&kit, state.as_deref(), tenant.as_deref(), as_json).await
                }
                ConnectionsCmd::Show { id } => {
                    connections::show(&kit, &parse_id(&id)?, as_json).await
                }
            }
        }
        Cmd::Token { id } => {
            let kit = open(&cli.kit).await?;
            let token = kit
                .manager()
                .access_token(&parse_id(&id)?)
                .await
                .map_err(failed)?;
            if as_json {
                println!("{}", json!({"access_token": token.expose_secret()}));
            } else {
                println!("{}", token.expose_secret());
            }
            Ok(())
        }
        Cmd::Refresh { id, all, due } => {
            let id = id.as_deref().map(parse_id).transpose()?;
            let kit = open(&cli.kit).await?;
            let bulk = id.is_none();
            let all_done = jobs::refresh(&kit, id, all, due, as_json).await?;
            match (all_done, bulk) {
                (true, _) => Ok(()),
                (false, true) => Err(Failure::Partial),
                (false, false) => Err(Failure::Failed("the refresh failed".into())),
            }
        }
        Cmd::Revoke { id } => {
            let kit = open(&cli.kit).await?;
            kit.manager()
                .revoke(&parse_id(&id)?)
                .await
                .map_err(failed)?;
            if as_json {
                println!("{}", json!({"revoked": id}));
            } else {
                println!("revoked {id}");
            }
            Ok(())
        }
        Cmd::Remove { id, force } => {
            let id = parse_id(&id)?;
            let kit = open(&cli.kit).await?;
            jobs::remove(&kit, &id, force, as_json).await
        }
        Cmd::Import {
            file,
            dry_run,
            concurrency,
            per_second,
        } => {
            let kit = open(&cli.kit).await?;
            let args = import::ImportArgs {
                file,
                dry_run,
                concurrency,
                per_second,
            };
            partial(import::run(&kit, args, as_json).await?)
        }
        Cmd::Export {
            to,
            i_understand_this_writes_secrets,
        } => {
            if !i_understand_this_writes_secrets {
                return export::run_refused(&to);
            }
            let kit = open(&cli.kit).await?;
            export::run(&kit, to, as_json).await
        }
        Cmd::Keys {
            command: KeysCmd::Rotate,
        } => {
            let kit = open(&cli.kit).await?;
            jobs::rotate_keys(&kit, as_json).await
        }
        Cmd::Doctor => doctor::run(&cli.kit, as_json).await,
    }
}
