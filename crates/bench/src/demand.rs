//! Demand from apps: token requests through the broker API, as an app in any language makes
//! them. A request that gets no answer (the process is down) moves to the next instance; a 503
//! is retried after a pause; every 5xx is counted with the moment it happened.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use crate::client::{Broker, TokenOutcome};
use crate::stats::Latencies;

/// What a batch of requests saw.
#[derive(Debug, Default)]
pub struct DemandResult {
    /// End-to-end latency of each request that got a token (retries included).
    pub latencies: Latencies,
    /// Requests that got a token.
    pub ok: u64,
    /// Requests that never got one (deadline passed, or the grant is dead).
    pub failed: u64,
    /// 409 `reauth_required` answers (a dead grant).
    pub reauth: u64,
    /// Attempts with no HTTP answer (instance down), each retried elsewhere.
    pub no_answer: u64,
    /// 5xx answers by status.
    pub status_5xx: BTreeMap<u16, u64>,
    /// When each 5xx happened (since the batch started) and its body, for fault-window checks.
    pub times_5xx: Vec<(Duration, String)>,
    /// A few failure messages.
    pub examples: Vec<String>,
    /// A few 5xx bodies (each retried), for the reason the broker gave.
    pub examples_5xx: Vec<String>,
}

impl DemandResult {
    fn merge(&mut self, other: DemandResult) {
        self.latencies.merge(other.latencies);
        self.ok += other.ok;
        self.failed += other.failed;
        self.reauth += other.reauth;
        self.no_answer += other.no_answer;
        for (k, v) in other.status_5xx {
            *self.status_5xx.entry(k).or_default() += v;
        }
        self.times_5xx.extend(other.times_5xx);
        for e in other.examples {
            if self.examples.len() < 5 {
                self.examples.push(e);
            }
        }
        for e in other.examples_5xx {
            if self.examples_5xx.len() < 3 {
                self.examples_5xx.push(e);
            }
        }
    }

    /// Total 5xx answers.
    #[must_use]
    pub fn total_5xx(&self) -> u64 {
        self.status_5xx.values().sum()
    }

    /// "503×12, 500×1" or "none".
    #[must_use]
    pub fn describe_5xx(&self) -> String {
        if self.status_5xx.is_empty() {
            return "none".into();
        }
        self.status_5xx
            .iter()
            .map(|(s, n)| format!("{s}×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Asks `brokers[first]` for `id`'s token until it gets one or `patience` runs out.
pub async fn ask(
    brokers: &[Broker],
    first: usize,
    id: &str,
    patience: Duration,
    epoch: Instant,
) -> DemandResult {
    let mut r = DemandResult::default();
    let started = Instant::now();
    let mut index = first % brokers.len();
    loop {
        match brokers[index].token(id).await {
            TokenOutcome::Token(_) => {
                r.ok = 1;
                r.latencies.record(started.elapsed());
                return r;
            }
            TokenOutcome::Status(409, body) => {
                r.reauth = 1;
                r.failed = 1;
                r.examples.push(format!("{id}: 409 {body}"));
                return r;
            }
            TokenOutcome::Status(status, body) => {
                if status >= 500 {
                    *r.status_5xx.entry(status).or_default() += 1;
                    r.times_5xx.push((epoch.elapsed(), body.clone()));
                    if r.examples_5xx.is_empty() {
                        r.examples_5xx.push(format!("{status} {body}"));
                    }
                }
                if started.elapsed() > patience || (status < 500 && status != 429) {
                    r.failed = 1;
                    r.examples.push(format!("{id}: {status} {body}"));
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            TokenOutcome::NoAnswer(error) => {
                r.no_answer += 1;
                if started.elapsed() > patience {
                    r.failed = 1;
                    r.examples.push(format!("{id}: no answer: {error}"));
                    return r;
                }
                index = (index + 1) % brokers.len();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// For each id, one request to every instance at the same moment (the cross-process race),
/// `concurrency` connections at a time.
pub async fn every_connection_everywhere(
    brokers: &[Broker],
    ids: &[String],
    concurrency: usize,
    patience: Duration,
) -> DemandResult {
    let epoch = Instant::now();
    let total = Arc::new(Mutex::new(DemandResult::default()));
    futures_util::stream::iter(ids.iter().enumerate())
        .for_each_concurrent(concurrency.max(1), |(i, id)| {
            let total = Arc::clone(&total);
            async move {
                let asks = (0..brokers.len()).map(|k| ask(brokers, i + k, id, patience, epoch));
                let results = futures_util::future::join_all(asks).await;
                let mut merged = DemandResult::default();
                for r in results {
                    merged.merge(r);
                }
                if let Ok(mut t) = total.lock() {
                    t.merge(merged);
                }
            }
        })
        .await;
    Arc::try_unwrap(total)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default()
}

/// `k` simultaneous requests for one connection, spread round-robin over the instances.
pub async fn storm(brokers: &[Broker], id: &str, k: usize, patience: Duration) -> DemandResult {
    let epoch = Instant::now();
    let asks = (0..k).map(|i| ask(brokers, i, id, patience, epoch));
    let mut total = DemandResult::default();
    for r in futures_util::future::join_all(asks).await {
        total.merge(r);
    }
    total
}

/// `workers` loops asking for random connections until `until`, pausing `pause` between
/// requests.
pub async fn steady_random(
    brokers: &[Broker],
    ids: &[String],
    workers: usize,
    until: Instant,
    pause: Duration,
) -> DemandResult {
    let epoch = Instant::now();
    let loops = (0..workers).map(|w| async move {
        let mut r = DemandResult::default();
        let mut n = w;
        while Instant::now() < until {
            let pick = rand::random::<usize>() % ids.len().max(1);
            if let Some(id) = ids.get(pick) {
                r.merge(ask(brokers, n, id, Duration::from_secs(60), epoch).await);
            }
            n += 1;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        r
    });
    let mut total = DemandResult::default();
    for r in futures_util::future::join_all(loops).await {
        total.merge(r);
    }
    total
}

/// Polls the sandbox until `refreshes_ok` reaches `target`; returns how long that took from
/// `since` (None if `timeout` passed first).
pub async fn time_until_refreshed(
    sandbox: &crate::client::Sandbox,
    target: u64,
    since: Instant,
    timeout: Duration,
) -> Option<Duration> {
    loop {
        if let Ok(stats) = sandbox.stats().await
            && stats.refreshes_ok >= target
        {
            return Some(since.elapsed());
        }
        if since.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
