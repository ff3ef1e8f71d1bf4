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

/// Refreshes over one keep-alive connection until `remaining` runs out; returns latencies (µs).
async fn worker(
    addr: std::net::SocketAddr,
    mut refresh_token: String,
    remaining: Arc<AtomicU64>,
) -> (String, Vec<u32>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let host = addr.to_string();
    let mut latencies = Vec::new();
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
        latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        refresh_token = v["refresh_token"].as_str().unwrap().to_owned();
    }
    (refresh_token, latencies)
}

async fn run(
    sb: &SandboxHandle,
    tokens: Vec<String>,
    total: u64,
) -> (Vec<String>, Duration, Vec<u32>) {
    let remaining = Arc::new(AtomicU64::new(total));
    let started = Instant::now();
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|t| tokio::spawn(worker(sb.addr(), t, remaining.clone())))
        .collect();
    let mut next = Vec::new();
    let mut lat = Vec::new();
    for h in handles {
        let (t, l) = h.await.unwrap();
        next.push(t);
        lat.extend(l);
    }
    (next, started.elapsed(), lat)
}

fn pct(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
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
            .reuse_detection(true)
            .spawn()
            .await
            .unwrap();
        let mut tokens = Vec::new();
        for i in 0..conns {
            tokens.push(first_refresh_token(&sb, &format!("tenant-{i}")).await);
        }
        let (tokens, _, _) = run(&sb, tokens, 100_000).await;
        let (rss_before, _) = rss_kib();
        let sizes_before = sb.sizes();
        let (_, elapsed, mut lat) = run(&sb, tokens, total).await;
        let (rss_after, hwm) = rss_kib();
        let sizes_after = sb.sizes();
        lat.sort_unstable();
        let stats = sb.stats();
        #[allow(clippy::cast_precision_loss)]
        let rate = total as f64 / elapsed.as_secs_f64();
        println!("kit-sandbox refresh load: {total} refreshes over {conns} keep-alive connections, reuse detection on");
        println!("  elapsed {:.2} s, {rate:.0} refreshes/s", elapsed.as_secs_f64());
        println!(
            "  latency p50 {} µs, p99 {} µs, max {} µs",
            pct(&lat, 0.50),
            pct(&lat, 0.99),
            pct(&lat, 1.0)
        );
        println!(
            "  RSS after 100k warm-up {rss_before} KiB, after {total} more {rss_after} KiB (peak {hwm} KiB)"
        );
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
