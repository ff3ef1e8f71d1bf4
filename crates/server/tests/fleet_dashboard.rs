//! The dashboard over a seeded fleet (10,000 connections by default; `KIT_OAUTH_FLEET_SIZE`
//! for more): keyset pages, search, state filters, the overview's counts, a connection's
//! timeline and the reconnect link, on SQLite and on PostgreSQL (when reachable; required
//! under CI). Prints how long the list pages took; timings are never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;
// Not in `support/mod.rs`: the CLI's tests include that module, without this one's crates.
#[path = "support/fleet.rs"]
mod fleet;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use kit_oauth_server::DashboardAccess;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use reqwest::StatusCode;
use sea_orm::{ConnectionTrait as _, Database};
use support::Extra;

fn size() -> usize {
    std::env::var("KIT_OAUTH_FLEET_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn cards(page: &str) -> Vec<String> {
    page.split("data-connection=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

fn next_link(page: &str) -> Option<String> {
    let rest = page.split("id=\"next-page\" href=\"").nth(1)?;
    Some(rest.split('"').next()?.replace("&amp;", "&"))
}

async fn get(client: &reqwest::Client, url: &str) -> (StatusCode, String, Duration) {
    let started = Instant::now();
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    (status, body, started.elapsed())
}

async fn fleet_on(database_url: &str, backend: &str) {
    let n = size();
    let seeding = Instant::now();
    let seeded = fleet::seed(database_url, n, 10, 3_000).await;
    let seed_time = seeding.elapsed();
    let timeline_of = seeded.ended[3].clone();
    fleet::history(database_url, &timeline_of).await;

    let (listener, base) = support::listener().await;
    let sandbox = support::sandbox(&base).await;
    let running = support::start(
        listener,
        &base,
        &sandbox,
        database_url,
        Extra {
            dashboard: Some(DashboardAccess::Open),
            ..Extra::default()
        },
    )
    .await;
    let browser = support::browser();

    // Three pages through the keyset cursor: 50 each, ascending, none twice.
    let (status, first, first_time) = get(&browser, &format!("{base}/")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let mut seen = cards(&first);
    assert_eq!(seen.len(), 50);
    let mut next = next_link(&first).unwrap();
    let mut deep_time = Duration::ZERO;
    for _ in 0..2 {
        let (_, page, took) = get(&browser, &format!("{base}{next}")).await;
        deep_time = deep_time.max(took);
        let ids = cards(&page);
        assert_eq!(ids.len(), 50);
        assert!(ids.first() > seen.last(), "pages continue in id order");
        seen.extend(ids);
        next = next_link(&page).unwrap();
    }
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 150);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen);

    // The last page of the whole fleet, reached by a cursor near the end.
    let mut ids: Vec<String> = Vec::new();
    let db = Database::connect(database_url).await.unwrap();
    for row in db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM connections ORDER BY id DESC LIMIT 30",
        ))
        .await
        .unwrap()
    {
        ids.push(row.try_get("", "id").unwrap());
    }
    let (_, last, last_time) = get(&browser, &format!("{base}/?after={}", ids[29])).await;
    assert_eq!(cards(&last).len(), 29);
    assert!(next_link(&last).is_none(), "the last page has no next page");

    // Search by account name (part of it, any case), by Kit account id, by tenant.
    let wanted = fleet::name(1_234);
    let (_, found, search_time) = get(
        &browser,
        &format!("{base}/?q={}", wanted.to_lowercase().replace(' ', "+")),
    )
    .await;
    assert_eq!(cards(&found).len(), 1, "{wanted}");
    assert!(found.contains(&wanted));
    let (_, by_account, _) = get(&browser, &format!("{base}/?q=101234")).await;
    assert_eq!(cards(&by_account).len(), 1);
    let (_, by_tenant, _) = get(&browser, &format!("{base}/?q=tenant-7")).await;
    assert_eq!(cards(&by_tenant).len(), (n / 200).min(50));

    // Filters: every card of a filtered page is in that state.
    let (_, revoked, filter_time) = get(&browser, &format!("{base}/?state=revoked")).await;
    assert_eq!(cards(&revoked).len(), 50.min(seeded.counts[3]));
    assert_eq!(
        revoked.matches(">Revoked</span>").count(),
        cards(&revoked).len()
    );
    let (_, failing, _) = get(&browser, &format!("{base}/?state=failing")).await;
    assert_eq!(cards(&failing).len(), 50.min(seeded.counts[1]));
    let (_, reauth, _) = get(&browser, &format!("{base}/?state=reauth")).await;
    assert_eq!(
        reauth.matches("class=\"button primary reconnect\"").count(),
        50
    );
    for bad in ["/?state=sleepy", "/?after=not%20an%20id"] {
        let (status, _, _) = get(&browser, &format!("{base}{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // The reconnect link starts an install for the same tenant (its signature is accepted).
    let reconnect = reauth
        .split("class=\"button primary reconnect\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert!(reconnect.starts_with("/kit/oauth?redirect="), "{reconnect}");
    assert!(reconnect.contains("&tenant=t1."), "{reconnect}");
    let started = support::browser()
        .get(format!("{base}{reconnect}"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::FOUND);

    // The overview counts exactly what was seeded; the chart has 24 pairs of bars.
    let (_, overview, overview_time) = get(&browser, &format!("{base}/overview")).await;
    for (name, expected) in ["active", "failing", "reauth", "revoked"]
        .into_iter()
        .zip(seeded.counts)
    {
        assert!(
            overview.contains(&format!("data-count=\"{name}\">{expected}<")),
            "{name} = {expected}"
        );
    }
    assert_eq!(overview.matches("<rect").count(), 48);

    // The timeline: newest first, the failure with its cause.
    let (_, timeline, _) = get(
        &browser,
        &format!("{base}/connections/{}", timeline_of.as_str()),
    )
    .await;
    let kinds: Vec<&str> = timeline
        .split("data-kind=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    // Newest first: the dead grant, before it the failure, and the install last of all.
    let at = |kind: &str| kinds.iter().position(|k| *k == kind).unwrap();
    assert!(at("reauth_required") < at("refresh_failed"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"authorized"), "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "authorized").count(), 1);
    assert!(timeline.contains("Refresh failed: Kit answered 503 Service Unavailable"));

    eprintln!(
        "fleet dashboard on {backend}, {n} connections (seeded in {:.1} s): first page {} ms, \
         pages 2-3 at most {} ms, last page {} ms, search {} ms, filter {} ms, overview {} ms",
        seed_time.as_secs_f64(),
        first_time.as_millis(),
        deep_time.as_millis(),
        last_time.as_millis(),
        search_time.as_millis(),
        filter_time.as_millis(),
        overview_time.as_millis(),
    );
    running.shutdown().await;
}

async fn the_dashboard_pages_searches_and_counts_a_fleet_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    fleet_on(&support::sqlite_url(dir.path()), "SQLite").await;
}

async fn the_dashboard_pages_searches_and_counts_a_fleet_on_postgres() -> Completion {
    let admin = std::env::var("KIT_OAUTH_TEST_POSTGRES_URL")
        .or_else(|_| std::env::var("KIT_OAUTH_TEST_DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let Ok(Ok(db)) =
        tokio::time::timeout(Duration::from_secs(10), Database::connect(admin.as_str())).await
    else {
        assert!(
            !support::is_ci(),
            "PostgreSQL is required under CI but {admin} is unreachable"
        );
        return Completion::ignored_with(format!(
            "PostgreSQL at {admin} is unreachable: start it (bash .ci/ensure-postgres) or set \
             KIT_OAUTH_TEST_POSTGRES_URL"
        ));
    };
    let name = format!("kit_oauth_fleet_{}", std::process::id());
    let _ = db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    db.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    fleet_on(url.as_str(), "PostgreSQL").await;
    let _ = db
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    Completion::Completed
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Its own harness, so an unreachable PostgreSQL shows as ignored with the reason.
fn main() {
    let args = Arguments::from_args();
    let trials = vec![
        Trial::test(
            "the_dashboard_pages_searches_and_counts_a_fleet_on_sqlite",
            || {
                runtime().block_on(the_dashboard_pages_searches_and_counts_a_fleet_on_sqlite());
                Ok(())
            },
        ),
        Trial::ignorable_test(
            "the_dashboard_pages_searches_and_counts_a_fleet_on_postgres",
            || -> Result<Completion, Failed> {
                Ok(runtime()
                    .block_on(the_dashboard_pages_searches_and_counts_a_fleet_on_postgres()))
            },
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
