//! `steady`: the broker's `POST /v1/connections/{id}/token` at 64 concurrent keep-alive
//! connections on loopback (fresh tokens: the cache path), against a bare axum handler in its
//! own process answering a constant JSON body of the same size, in the same run. The ratio is
//! what the broker costs over the HTTP stack itself.

use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::bare::constant_body;
use crate::cluster::{Cluster, ClusterSpec};
use crate::error::{BenchError, Result};
use crate::scenarios::{Options, finish};
use crate::stats::{Latencies, Report, rate, thousands};
use crate::supervisor::Proc;

/// What a closed-loop run measured.
#[derive(Debug, Default)]
pub struct Load {
    /// Answers with status 200.
    pub ok: u64,
    /// Other answers or transport errors.
    pub errors: u64,
    /// Latency of each answer.
    pub latencies: Latencies,
    /// Measured time.
    pub elapsed: Duration,
}

/// `urls.len()` workers, each POSTing its URL in a loop (warm-up first, then `measure`).
pub async fn closed_loop(
    http: &reqwest::Client,
    urls: &[String],
    key: &str,
    warm_up: Duration,
    measure: Duration,
) -> Load {
    let start = Instant::now() + warm_up;
    let end = start + measure;
    let workers = urls.iter().map(|url| async move {
        let mut load = Load::default();
        loop {
            let sent = Instant::now();
            if sent >= end {
                break;
            }
            let answer = http.post(url).bearer_auth(key).send().await;
            let ok = match answer {
                Ok(response) => {
                    let status = response.status();
                    response.bytes().await.is_ok() && status.is_success()
                }
                Err(_) => false,
            };
            if sent >= start {
                if ok {
                    load.ok += 1;
                    load.latencies.record(sent.elapsed());
                } else {
                    load.errors += 1;
                }
            }
        }
        load
    });
    let mut total = Load {
        elapsed: measure,
        ..Load::default()
    };
    for load in futures_util::future::join_all(workers).await {
        total.ok += load.ok;
        total.errors += load.errors;
        total.latencies.merge(load.latencies);
    }
    total
}

/// Runs the scenario.
///
/// # Errors
/// The cluster or the bare handler cannot be started.
pub async fn run(o: &Options) -> Result<Vec<Report>> {
    let spec = ClusterSpec::new(o.instances.unwrap_or(1), o.db, &o.pg_url);
    let mut cluster = Cluster::start(spec.clone(), &o.bins).await?;
    let result = drive(&mut cluster, &spec, o).await;
    finish(cluster, o.keep).await;
    result
}

async fn drive(cluster: &mut Cluster, spec: &ClusterSpec, o: &Options) -> Result<Vec<Report>> {
    let c = o.concurrency.unwrap_or(64);
    let measure = o.duration.unwrap_or(Duration::from_secs(10));
    let warm_up = Duration::from_secs(2);
    cluster.seed("steady", c, 16).await?;
    let ids = cluster.connection_ids().await?;
    let sample = cluster.brokers[0].token_body(&ids[0]).await?;
    let bytes = sample.len();
    let http = crate::client::http_client(Duration::from_secs(30))?;
    let urls: Vec<String> = (0..c)
        .map(|w| {
            let broker = &cluster.brokers[w % cluster.brokers.len()];
            format!(
                "{}/v1/connections/{}/token",
                broker.base,
                ids[w % ids.len()]
            )
        })
        .collect();
    cluster.sandbox.reset_stats().await?;
    let mut broker = closed_loop(&http, &urls, cluster.api_key(), warm_up, measure).await;
    let stats = cluster.sandbox.stats().await?;

    let exe = std::env::current_exe().map_err(BenchError::io("locating the bench executable"))?;
    let mut command = Command::new(exe);
    command.args(["bare-server", "--bytes", &bytes.to_string()]);
    let (mut bare_proc, bare_base) = Proc::spawn_until_line(
        "bare handler",
        command,
        &cluster.dir().join("bare.log"),
        "bare listening on",
        Duration::from_secs(10),
    )
    .await?;
    let bare_http = crate::client::http_client(Duration::from_secs(30))?;
    let bare_urls: Vec<String> = (0..c)
        .map(|w| format!("{bare_base}/v1/connections/{}/token", ids[w % ids.len()]))
        .collect();
    let mut bare = closed_loop(&bare_http, &bare_urls, cluster.api_key(), warm_up, measure).await;
    bare_proc.kill().await;

    let ratio = if bare.ok == 0 {
        0.0
    } else {
        broker.ok as f64 / bare.ok as f64
    };
    let mut r = Report::new(format!(
        "steady — {c} concurrent keep-alive connections, {} s measured, {}",
        measure.as_secs(),
        spec.describe()
    ));
    r.row(
        "response body",
        format!(
            "{bytes} bytes (bare handler: {} bytes of constant JSON)",
            constant_body(bytes).len()
        ),
    );
    r.row(
        "broker `POST /v1/connections/{id}/token`",
        format!(
            "**{}**, {}",
            rate(broker.ok, broker.elapsed),
            broker.latencies.summary()
        ),
    );
    r.row(
        "bare axum handler, same body size",
        format!(
            "**{}**, {}",
            rate(bare.ok, bare.elapsed),
            bare.latencies.summary()
        ),
    );
    r.row("broker / bare throughput", format!("**{ratio:.2}**"));
    r.row(
        "requests measured (broker / bare)",
        format!("{} / {}", thousands(broker.ok), thousands(bare.ok)),
    );
    r.check("broker errors", broker.errors, 0);
    r.check("bare handler errors", bare.errors, 0);
    r.check(
        "refreshes at Kit during the run (tokens were fresh)",
        stats.refreshes_ok,
        0,
    );
    r.note("The load generator (reqwest, one client, one task per connection) shares the machine's cores with the process it measures; both sides of the ratio pay that cost equally.");
    Ok(vec![r])
}
