//! Load harness: how many `refresh_token` grants per second the sandbox's token endpoint
//! sustains (reuse detection on), and whether its memory stays flat over many refreshes.
//!
//! ```text
//! cargo run --release -p kit-sandbox --example refresh_load -- [TOTAL] [CONNECTIONS]
//! ```
//!
//! Starts an in-process sandbox, opens CONNECTIONS keep-alive HTTP/1.1 connections over
//! loopback (one grant each), warms up with 100,000 refreshes, then runs TOTAL (default
//! 1,000,000) more, each a JSON `POST /v4/oauth/token` whose new refresh token feeds the next.
//! Prints throughput, latency percentiles and the process's RSS from /proc/self/status before
//! and after the measured run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use kit_sandbox::{Sandbox, SandboxHandle};
use serde_json::Value;

const CLIENT: &str = "load-client";
const SECRET: &str = "load-secret";
const REDIRECT: &str = "http://127.0.0.1:9/cb";

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn first_refresh_token(sb: &SandboxHandle, tenant: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = url::Url::parse(&sb.url("/v4/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("tenant_name", tenant);
    let resp = http.get(url.as_str()).send().await.unwrap();
    let loc = url::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = loc
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let t: Value = http
        .post(sb.url("/v4/oauth/token"))
        .json(
            &serde_json::json!({"client_id": CLIENT, "client_secret": SECRET,
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    t["refresh_token"].as_str().unwrap().to_owned()
}

/// Latency histogram in 10 µs buckets up to 100 ms (last bucket: slower), allocated once so
/// the harness's own memory does not grow during the run.
struct Histogram(Vec<AtomicU64>);

impl Histogram {
    const BUCKETS: usize = 10_000;

    fn new() -> Self {
        Self((0..Self::BUCKETS).map(|_| AtomicU64::new(0)).collect())
    }

    fn record(&self, d: Duration) {
        let b = usize::try_from(d.as_micros() / 10)
            .unwrap_or(usize::MAX)
            .min(Self::BUCKETS - 1);
        self.0[b].fetch_add(1, Ordering::Relaxed);
    }

    fn reset(&self) {
        for b in &self.0 {
            b.store(0, Ordering::Relaxed);
        }
    }

    /// The upper bound (µs) of the bucket holding quantile `q`.
    fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.0.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let target = ((total as f64) * q).ceil() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target.max(1) {
                return (i as u64 + 1) * 10;
            }
        }
        0
    }
}

/// Refreshes over one keep-alive connection until `remaining` runs out.
async fn worker(
    addr: std::net::SocketAddr,
    mut refresh_token: String,
    remaining: Arc<AtomicU64>,
    hist: Arc<Histogram>,
) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let host = addr.to_string();
    while remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        let body = format!(
            "{{\"client_id\":\"{CLIENT}\",\"client_secret\":\"{SECRET}\",\"grant_type\":\"refresh_token\",\"refresh_token\":\"{refresh_token}\"}}"
        );
        let req = hyper::Request::post("/v4/oauth/token")
            .header("host", &host)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let started = Instant::now();
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        hist.record(started.elapsed());
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        refresh_token = v["refresh_token"].as_str().unwrap().to_owned();
    }
    refresh_token
}

async fn run(
    sb: &SandboxHandle,
    tokens: Vec<String>,
    total: u64,
    hist: &Arc<Histogram>,
) -> (Vec<String>, Duration) {
    let remaining = Arc::new(AtomicU64::new(total));
    let started = Instant::now();
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|t| tokio::spawn(worker(sb.addr(), t, remaining.clone(), hist.clone())))
        .collect();
    let mut next = Vec::new();
    for h in handles {
        next.push(h.await.unwrap());
    }
    (next, started.elapsed())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let conns: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sb = Sandbox::builder()
            .client_id(CLIENT)
            .client_secret(SECRET)
            .redirect_uri(REDIRECT)
            .auto_approve(true)
            .rotation(kit_sandbox::Rotation::ReuseDetection)
            .spawn()
            .await
            .unwrap();
        let mut tokens = Vec::new();
        for i in 0..conns {
            tokens.push(first_refresh_token(&sb, &format!("tenant-{i}")).await);
        }
        let hist = Arc::new(Histogram::new());
        let (mut tokens, _) = run(&sb, tokens, 100_000, &hist).await;
        hist.reset();
        let (rss_before, _) = rss_kib();
        let sizes_before = sb.sizes();
        println!("kit-sandbox refresh load: {total} refreshes over {conns} keep-alive connections, reuse detection on");
        println!("  RSS after 100k warm-up refreshes: {rss_before} KiB");
        let mut elapsed = Duration::ZERO;
        let chunk = total / 5;
        for i in 1..=5 {
            let n = if i == 5 { total - chunk * 4 } else { chunk };
            let (next, took) = run(&sb, tokens, n, &hist).await;
            tokens = next;
            elapsed += took;
            let (rss, _) = rss_kib();
            println!("  RSS after {} measured refreshes: {rss} KiB", chunk * (i - 1) + n);
        }
        let (rss_after, hwm) = rss_kib();
        let sizes_after = sb.sizes();
        let stats = sb.stats();
        #[allow(clippy::cast_precision_loss)]
        let rate = total as f64 / elapsed.as_secs_f64();
        println!("  elapsed {:.2} s, {rate:.0} refreshes/s", elapsed.as_secs_f64());
        println!(
            "  latency p50 <= {} µs, p99 <= {} µs",
            hist.quantile(0.50),
            hist.quantile(0.99)
        );
        println!("  RSS {rss_before} KiB -> {rss_after} KiB (peak {hwm} KiB)");
        println!("  tables before {sizes_before:?}");
        println!("  tables after  {sizes_after:?}");
        println!(
            "  refreshes_ok {}, invalid_grant {}, grants_revoked {}",
            stats.refreshes_ok, stats.invalid_grant_total, stats.grants_revoked
        );
        assert_eq!(stats.invalid_grant_total, 0);
        assert_eq!(stats.grants_revoked, 0);
        sb.shutdown().await;
    });
}
