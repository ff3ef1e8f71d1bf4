//! The broker's proxy keeps Kit's per-connection budget: 32 concurrent tasks calling through
//! it for one connection make more calls than the limit allows in a window, and the sandbox,
//! which counts per token over its rolling window and answers Kit's 429 `Retry later` past the
//! limit, refuses none. Counted, not timed: the sandbox's 429 counter and its count of calls.
//!
//! The limit is scaled down so the test takes seconds, not minutes: 60 per rolling 6 s at the
//! sandbox (`--rate-limit`, `--rate-window`) and the same quota for the broker's budget
//! (`RunConfig::kit_rate_budget`); the GCRA split and one cell per 120 ms are those of Kit's
//! 600 per 60 s, which stays the default of both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use kit_oauth::http::kit_api::RateBudget;
use support::{API_KEY, Extra};

const LIMIT: u32 = 60;
const WINDOW_SECS: u64 = 6;
const TASKS: usize = 32;
const CALLS_PER_TASK: usize = 3;

fn account_calls(sandbox: &kit_sandbox::SandboxHandle) -> u64 {
    sandbox
        .stats()
        .requests
        .get("account")
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_tasks_through_the_proxy_never_meet_kits_429() {
    let dir = tempfile::tempdir().unwrap();
    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox_builder(&base)
        .rate_limit(LIMIT)
        .rate_window(WINDOW_SECS)
        .spawn()
        .await
        .unwrap();
    let running = support::start(
        listener,
        &base,
        &sandbox,
        &support::sqlite_url(dir.path()),
        Extra {
            kit_rate_budget: Some(RateBudget::new(LIMIT, Duration::from_secs(WINDOW_SECS))),
            ..Extra::default()
        },
    )
    .await;
    let id = support::install(&base, &sandbox, "Budget").await;
    // The install's own identity call lies outside the window the proxied calls fill.
    sandbox.advance_clock(WINDOW_SECS);
    let before = account_calls(&sandbox);

    let url = format!("{base}/v1/connections/{id}/kit/account");
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (http, url) = (http.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..CALLS_PER_TASK {
                let response = http.get(&url).bearer_auth(API_KEY).send().await.unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.extend(task.await.unwrap());
    }

    let calls = TASKS * CALLS_PER_TASK;
    assert!(
        calls > 3 * LIMIT as usize / 2,
        "more than the limit allows at once"
    );
    assert_eq!(statuses, vec![200; calls]);
    // Every call reached Kit exactly once, and Kit refused none.
    assert_eq!(account_calls(&sandbox) - before, calls as u64);
    assert_eq!(sandbox.stats().rate_limited_429, 0);
    running.shutdown().await;
}
