//! The per-connection rate budget (600 requests per rolling 60 s, Kit's limit) under 32
//! concurrent tasks: counted on `governor`'s fake clock (every rolling window, exactly), and
//! over loopback HTTP against the sandbox's own limiter (no 429 reaches the app).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use governor::clock::FakeRelativeClock;
use kit_oauth_core::TokenEndpoint;
use kit_oauth_http::kit_api::{KIT_LIMIT, KIT_WINDOW, RateBudget};
use kit_oauth_http::{ApiError, KitClient, RetryPolicy, TokenBody};
use kit_sandbox::SandboxBuilder;
use tokio::sync::Barrier;

const TASKS: usize = 32;
const TICK: Duration = Duration::from_millis(10);
const TICKS: u32 = 15_000; // 150 s of fake time

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_tasks_never_exceed_600_in_any_rolling_minute() {
    let clock = FakeRelativeClock::default();
    let budget = RateBudget::with_clock(KIT_LIMIT, KIT_WINDOW, clock.clone());
    let conn = connection_id();
    let barrier = Arc::new(Barrier::new(TASKS + 1));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (budget, conn, barrier) = (budget.clone(), conn.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut admitted = Vec::new();
            for tick in 0..TICKS {
                barrier.wait().await;
                // Every task tries as often as it likes within the tick.
                while budget.try_acquire(&conn).is_ok() {
                    admitted.push(tick);
                }
                barrier.wait().await;
            }
            admitted
        }));
    }
    for _ in 0..TICKS {
        barrier.wait().await; // tasks try
        barrier.wait().await; // tasks done
        clock.advance(TICK);
    }
    let mut all: Vec<u32> = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let window = u32::try_from(KIT_WINDOW.as_millis() / TICK.as_millis()).unwrap();
    let mut worst = 0;
    for (i, &t) in all.iter().enumerate() {
        let start = all.partition_point(|&x| x + window <= t);
        worst = worst.max(i + 1 - start);
    }
    assert!(worst <= 600, "{worst} requests in one rolling minute");
    // GCRA's boundary cell falls just outside a half-open window: the budget uses all but one.
    assert_eq!(worst, 599, "the budget uses (nearly) the whole limit");
    // 100 at once, then one per 120 ms over the 149.99 s from the first tick to the last.
    assert_eq!(all.len(), 100 + 1249);
    // Another connection has its own budget.
    let other = connection_id();
    let burst = (0..1000)
        .take_while(|_| budget.try_acquire(&other).is_ok())
        .count();
    assert_eq!(burst, 100);
}

async fn client_for(
    builder: SandboxBuilder,
) -> (kit_sandbox::SandboxHandle, KitClient<Arc<SimpleSource>>) {
    let sb = builder.spawn().await.unwrap();
    let oauth = oauth(&sb, Some(SECRET), TokenBody::Json);
    let auth = authorize(&oauth, None, None).await;
    let tokens = oauth
        .exchange_code(&auth.code, &auth.verifier)
        .await
        .unwrap();
    let source = SimpleSource::new(oauth, tokens.access_token, tokens.refresh_token.unwrap());
    let endpoints = endpoints_for(&sb, Some(SECRET)).build().unwrap();
    let client = KitClient::new(&endpoints, source)
        .unwrap()
        .with_retry_policy(RetryPolicy::none());
    sb.reset_stats();
    (sb, client)
}

/// 32 tasks × 4 calls of one connection; how many were refused with 429.
async fn hammer(client: KitClient<Arc<SimpleSource>>) -> usize {
    let client = Arc::new(client);
    let conn = connection_id();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (client, conn) = (client.clone(), conn.clone());
        tasks.push(tokio::spawn(async move {
            let api = client.api(conn);
            let mut refused = 0;
            for _ in 0..4 {
                match api.list_segments().first_page().await {
                    Ok(_) => {}
                    Err(ApiError::RateLimited { .. }) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await.unwrap();
    }
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_budget_kit_refuses_with_one_the_app_stays_under_the_limit() {
    // Without a budget, a limit of 100 refuses exactly the 28 calls above it.
    let (sb, client) = client_for(confidential().rate_limit(100)).await;
    let refused = hammer(client).await;
    assert_eq!(refused, 28);
    assert_eq!(sb.stats().rate_limited_429, 28);
    assert_eq!(sb.stats().api_ok, 100);

    // With Kit's budget shared by the 32 tasks (Kit's limit on the sandbox, too): the 28
    // calls past the burst wait for the budget instead, and Kit never says 429.
    let (sb, client) = client_for(confidential()).await;
    let refused = hammer(client.with_rate_budget(RateBudget::kit())).await;
    assert_eq!(refused, 0);
    assert_eq!(sb.stats().rate_limited_429, 0);
    assert_eq!(sb.stats().api_ok, 128);
}

#[test]
fn idle_connections_are_swept_and_busy_ones_keep_their_state() {
    let clock = FakeRelativeClock::default();
    let budget = RateBudget::with_clock(KIT_LIMIT, KIT_WINDOW, clock.clone()).sweep_above(100);
    // One connection spends its whole burst: its state is not a fresh one's.
    let busy = connection_id();
    let burst = (0..1000)
        .take_while(|_| budget.try_acquire(&busy).is_ok())
        .count();
    assert_eq!(burst, 100);
    // A thousand connections call once; none is idle yet, so none is forgotten.
    for _ in 0..1000 {
        budget.try_acquire(&connection_id()).unwrap();
    }
    assert_eq!(budget.tracked(), 1001);
    // A second later those thousand have their budget back (idle); `busy` does not.
    clock.advance(Duration::from_secs(1));
    for _ in 0..700 {
        budget.try_acquire(&connection_id()).unwrap();
    }
    // The sweep (due at 1624 tracked after the rare sweeps before it) dropped exactly the
    // thousand idle ones: `busy` and the 700 new remain.
    assert_eq!(budget.tracked(), 701);
    // `busy` kept its spent budget: one second refilled 8 cells (one per 120 ms), not the
    // fresh burst of 100 a forgotten connection would get.
    let refilled = (0..1000)
        .take_while(|_| budget.try_acquire(&busy).is_ok())
        .count();
    assert_eq!(refilled, 8);
    // Once everything is idle, the next sweep leaves only the caller.
    clock.advance(KIT_WINDOW);
    for _ in 0..1250 {
        budget.try_acquire(&connection_id()).unwrap();
    }
    // Only the 1250 new ones: the 701 of before were dropped (1951 otherwise).
    assert_eq!(budget.tracked(), 1250);
}
