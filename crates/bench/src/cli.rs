//! The command line: which scenarios, with which N, M, K, database and duration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::cluster::SandboxRotation;
use crate::db::DbKind;
use crate::error::{BenchError, Result};
use crate::scenarios::{self, Options};
use crate::stats::Report;
use crate::supervisor::Bins;

/// A scenario name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// K concurrent token requests on one expired connection.
    Storm,
    /// M connections expiring together across N instances.
    Fleet,
    /// Broker token endpoint throughput vs a bare axum handler.
    Steady,
    /// Full installs per second through the callback.
    Install,
    /// In-process `access_token` calls per second per core.
    Hot,
    /// `fleet` with one server SIGKILLed mid-refresh and restarted.
    Crash,
    /// PostgreSQL stopped and started mid-run.
    PgRestart,
    /// Random faults for `--duration`; memory, 5xx and lost connections checked.
    Soak,
    /// One broker on M (default 1,000,000) connections seeded straight into the database.
    Million,
    /// Every scenario above, with defaults.
    All,
    /// (internal) the bare axum handler `steady` compares against.
    #[value(hide = true)]
    BareServer,
}

/// `--rotation`: the sandbox's refresh-token rotation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RotationArg {
    /// Doorkeeper's default: the previous refresh token works until the new access token is used.
    RevokeOnUse,
    /// A refresh revokes the previous pair at once.
    Strict,
    /// Strict, and a reused refresh token revokes the grant.
    ReuseDetection,
}

impl From<RotationArg> for SandboxRotation {
    fn from(r: RotationArg) -> Self {
        match r {
            RotationArg::RevokeOnUse => Self::RevokeOnUse,
            RotationArg::Strict => Self::Strict,
            RotationArg::ReuseDetection => Self::ReuseDetection,
        }
    }
}

/// The Kit OAuth load harness: real sandbox and broker processes, named scenarios.
#[derive(Debug, Parser)]
#[command(name = "kit-oauth-bench", version, about)]
pub struct Args {
    /// Scenarios to run, in order.
    #[arg(required = true, value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Server processes (N). Default: storm 2, fleet/crash 3, pg-restart/soak 2, steady/install 1.
    #[arg(long)]
    pub instances: Option<usize>,
    /// Connections (M). Default: fleet 10000, crash 2000, install 1000, pg-restart 1000, soak 200.
    #[arg(long)]
    pub connections: Option<usize>,
    /// Concurrency (K). Default: storm 500, fleet 64, steady 64, install 32.
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Database of the servers (pg-restart always runs on its own PostgreSQL cluster).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub db: DbKind,
    /// PostgreSQL server for `--db postgres` (a fresh database is created and dropped).
    #[arg(
        long,
        env = "KIT_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    pub pg_url: String,
    /// Directory of initdb and pg_ctl (pg-restart) [default: the newest
    /// /usr/lib/postgresql/*/bin, 15 on the project's machines].
    #[arg(long)]
    pub pg_bin: Option<PathBuf>,
    /// Length of timed scenarios (steady, hot: measuring time; soak: whole run), e.g. 60s, 10m.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Sandbox `--access-ttl` of seeded tokens, seconds (default: long enough to seed M).
    #[arg(long)]
    pub access_ttl: Option<u64>,
    /// Sandbox `--reuse-grace`, seconds (default 0; 300 for soak).
    #[arg(long)]
    pub reuse_grace: Option<u64>,
    /// (crash) Kit's refresh-token rotation, passed to the sandbox.
    #[arg(long, value_enum, default_value = "revoke-on-use")]
    pub rotation: RotationArg,
    /// (crash) The recovery promise checked after the kill, e.g. 5s (the goal) or, on a loaded
    /// CI machine, a looser bound that still catches a return to lease-TTL waits (≈ 62 s).
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub recovery_goal: Duration,
    /// Directory of kit-sandbox and kit-oauth-server (default: beside this executable).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Keep each run's directory (logs, SQLite file) and print where.
    #[arg(long)]
    pub keep: bool,
    /// (bare-server) size of the constant JSON body.
    #[arg(long, hide = true, default_value_t = 100)]
    pub bytes: usize,
}

/// The newest `/usr/lib/postgresql/<version>/bin` that holds `initdb`.
fn newest_pg_bin() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map_or_else(
        || PathBuf::from("/usr/lib/postgresql/15/bin"),
        |(_, bin)| bin,
    )
}

/// `90s`, `10m`, `1h` or plain seconds.
fn parse_duration(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = raw
        .find(|c: char| !c.is_ascii_digit())
        .map_or((raw, "s"), |i| raw.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{raw:?} is not a duration like 60s, 10m or 1h"))?;
    match unit {
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        "ms" => Ok(Duration::from_millis(n)),
        _ => Err(format!("{raw:?}: the unit must be ms, s, m or h")),
    }
}

/// Runs the command line; the exit code is 1 when a promised count was violated or a scenario
/// could not run.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kit-oauth-bench: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if args.scenarios.contains(&Scenario::BareServer) {
        return match runtime.block_on(crate::bare::serve(args.bytes)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("kit-oauth-bench bare-server: {e}");
                ExitCode::from(1)
            }
        };
    }
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let command: Vec<String> = std::env::args().collect();
    println!("command: `{}`", command.join(" "));
    println!(
        "machine: {} cores available\n",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    );
    let bins = match Bins::locate(args.bin_dir.as_deref()) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("kit-oauth-bench: {e}");
            return ExitCode::from(1);
        }
    };
    let options = Options {
        bins,
        db: args.db,
        pg_url: args.pg_url.clone(),
        pg_bin: args.pg_bin.clone().unwrap_or_else(newest_pg_bin),
        instances: args.instances,
        connections: args.connections,
        concurrency: args.concurrency,
        duration: args.duration,
        access_ttl: args.access_ttl,
        reuse_grace: args.reuse_grace,
        keep: args.keep,
    };
    let mut list = Vec::new();
    for s in &args.scenarios {
        if *s == Scenario::All {
            list.extend([
                Scenario::Storm,
                Scenario::Fleet,
                Scenario::Steady,
                Scenario::Install,
                Scenario::Hot,
                Scenario::Crash,
                Scenario::PgRestart,
                Scenario::Soak,
            ]);
        } else {
            list.push(*s);
        }
    }
    let mut failed = false;
    for scenario in list {
        let started = Instant::now();
        match run_one(scenario, &options, args.rotation, args.recovery_goal).await {
            Ok(reports) => {
                for report in reports {
                    println!("{}", report.markdown());
                    for v in report.violations() {
                        eprintln!(
                            "VIOLATED in {}: {} = {}, expected {}",
                            report.title, v.name, v.actual, v.expected
                        );
                        failed = true;
                    }
                }
            }
            Err(e) => {
                eprintln!("kit-oauth-bench: {scenario:?} failed: {e}");
                failed = true;
            }
        }
        println!(
            "({scenario:?} took {:.1} s)\n",
            started.elapsed().as_secs_f64()
        );
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_one(
    scenario: Scenario,
    o: &Options,
    rotation: RotationArg,
    recovery_goal: Duration,
) -> Result<Vec<Report>> {
    match scenario {
        Scenario::Storm => scenarios::storm::run(o).await,
        Scenario::Fleet => scenarios::fleet::run(o).await,
        Scenario::Crash => {
            let instances = o.instances.unwrap_or(3);
            scenarios::crash::run(
                o,
                scenarios::crash::Crash {
                    victim: instances.saturating_sub(1),
                    // Half-way, more connections are still due than every instance's
                    // refreshes and app requests can have in flight (16 + 64 each), so the
                    // victim starts refreshes after the answers begin to be held.
                    at_permille: 500,
                    down: Duration::from_millis(500),
                    rotation: rotation.into(),
                    recovery_goal,
                },
            )
            .await
        }
        Scenario::Steady => scenarios::steady::run(o).await,
        Scenario::Install => scenarios::install::run(o).await,
        Scenario::Hot => scenarios::hot::run(o).await,
        Scenario::PgRestart => scenarios::pg_restart::run(o).await,
        Scenario::Soak => scenarios::soak::run(o).await,
        Scenario::Million => scenarios::million::run(o).await,
        Scenario::All | Scenario::BareServer => Err(BenchError::setup("not a scenario")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5d").is_err());
    }
}
