//! `hot`: `TokenManager::access_token` in process, on a fresh token (the cache path), with one
//! task and with one task per core. The library is used directly, against the sandbox process
//! and a SQLite file, exactly as an app embedding `kit-oauth` would.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kit_oauth::{KitOAuth, KitOAuthConfig};

use crate::cluster::{CLIENT_ID, CLIENT_SECRET, Cluster, ClusterSpec, IN_PROCESS_REDIRECT};
use crate::db::DbKind;
use crate::error::{BenchError, Result};
use crate::scenarios::{Options, finish};
use crate::stats::{Report, rate, thousands};

/// Runs the scenario.
///
/// # Errors
/// The sandbox or the library cannot be set up.
pub async fn run(o: &Options) -> Result<Vec<Report>> {
    let spec = ClusterSpec::new(1, DbKind::Sqlite, &o.pg_url);
    let mut cluster = Cluster::start(spec, &o.bins).await?;
    // Only the sandbox is needed: the library runs in this process.
    cluster.stop_all().await;
    let result = drive(&cluster, o).await;
    finish(cluster, o.keep).await;
    result
}

async fn drive(cluster: &Cluster, o: &Options) -> Result<Vec<Report>> {
    let measure = o.duration.unwrap_or(Duration::from_secs(10));
    let sandbox = cluster.sandbox.base.clone();
    let db = cluster.dir().join("hot.db");
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut key);
    let vars: HashMap<&str, String> = HashMap::from([
        ("KIT_CLIENT_ID", CLIENT_ID.to_owned()),
        ("KIT_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("KIT_REDIRECT_URI", IN_PROCESS_REDIRECT.to_owned()),
        ("KIT_OAUTH_BASE", sandbox.clone()),
        ("KIT_REDIRECT_ALLOW", format!("{sandbox}/apps/")),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        ),
        (
            "KIT_OAUTH_ENCRYPTION_KEY",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key),
        ),
    ]);
    let config = KitOAuthConfig::from_lookup(|name| vars.get(name).cloned())
        .map_err(|e| BenchError::setup(format!("library configuration: {e}")))?;
    let kit = KitOAuth::builder()
        .config(config)
        .build()
        .await
        .map_err(|e| BenchError::setup(format!("building KitOAuth: {e}")))?;
    let started = kit
        .install()
        .begin(&format!("{sandbox}/apps/1?success=true"), None, None)
        .await
        .map_err(|e| BenchError::setup(format!("install begin: {e}")))?;
    let mut authorize = started.authorize_url.clone();
    authorize
        .query_pairs_mut()
        .append_pair("sandbox_account", "hot-path");
    let answer = cluster
        .http
        .get(authorize.as_str())
        .send()
        .await
        .map_err(BenchError::http("sandbox authorize"))?;
    let location = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| BenchError::setup("authorize did not redirect"))?;
    let query = url::Url::parse(location)
        .map_err(|e| BenchError::setup(format!("callback URL: {e}")))?
        .query()
        .unwrap_or_default()
        .to_owned();
    let installed = kit
        .install()
        .complete(&query, Some(started.browser_binding.expose_secret()))
        .await
        .map_err(|e| BenchError::setup(format!("install complete: {e}")))?;
    let id = Arc::new(installed.connection_id);
    kit.manager()
        .access_token(&id)
        .await
        .map_err(|e| BenchError::setup(format!("first token: {e}")))?;
    cluster.sandbox.reset_stats().await?;

    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut r = Report::new(format!(
        "hot — in-process `access_token` on a fresh token, {} s per setting, {cores} cores",
        measure.as_secs()
    ));
    let mut failures = 0;
    for tasks in [1, cores] {
        let end = Instant::now() + measure;
        let loops: Vec<_> = (0..tasks)
            .map(|_| {
                let kit = kit.clone();
                let id = Arc::clone(&id);
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0u64, 0u64);
                    while Instant::now() < end {
                        for _ in 0..256 {
                            match kit.manager().access_token(&id).await {
                                Ok(_) => ok += 1,
                                Err(_) => failed += 1,
                            }
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let (mut ok, mut failed) = (0, 0);
        for l in loops {
            let (o, f) = l
                .await
                .map_err(|e| BenchError::setup(format!("hot loop: {e}")))?;
            ok += o;
            failed += f;
        }
        failures += failed;
        let per_core = ok / tasks as u64;
        r.row(
            format!("{tasks} task{}", if tasks == 1 { "" } else { "s" }),
            format!(
                "**{}** total, {} per task/core ({} calls)",
                rate(ok, measure),
                rate(per_core, measure),
                thousands(ok)
            ),
        );
    }
    let stats = cluster.sandbox.stats().await?;
    r.check("failed calls", failures, 0);
    r.check(
        "refreshes at Kit during the run (the token was fresh)",
        stats.refreshes_ok,
        0,
    );
    r.note("The bench's tokio runtime has one worker thread per core; nothing else runs in the process while it measures.");
    Ok(vec![r])
}
