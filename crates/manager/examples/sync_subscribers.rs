//! An app that syncs every connection's subscribers through the typed Kit API v4, against a
//! local `kit-sandbox`:
//!
//! ```sh
//! cargo run -p kit-oauth --example sync_subscribers
//! ```
//!
//! It installs two Kit accounts, then for each connection: imports a batch of leads with one
//! bulk upsert, pages through the subscribers (a lazy stream following Kit's cursors), and tags
//! the ones it has not seen before with `synced`. A second run finds nothing new. All calls of
//! a connection share one rate budget (600 requests per 60 s, Kit's limit).

use std::error::Error;

use futures_util::TryStreamExt as _;
use kit_oauth::KitOAuth;
use kit_oauth::core::{ConnectionId, ListQuery, RedirectAllowlist};
use kit_oauth::http::KitEndpoints;
use kit_oauth::http::kit_api::{BulkOutcome, BulkSubscriber, Subscriber, SubscriberFilter};
use kit_oauth::store::{KeyRing, SeaOrmStore};

const CALLBACK: &str = "http://127.0.0.1:8080/kit/oauth/callback";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let sandbox = kit_sandbox::Sandbox::builder()
        .client_id("sync-app")
        .client_secret("sync-secret")
        .redirect_uri(CALLBACK)
        .auto_approve(true)
        .spawn()
        .await?;
    println!("sandbox Kit on {}", sandbox.base_url());
    let dir = tempfile::tempdir()?;
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("kit.db").display());
    let kit = KitOAuth::builder()
        .endpoints(
            KitEndpoints::builder()
                .base_url(sandbox.base_url())
                .client_id("sync-app")
                .client_secret("sync-secret")
                .redirect_uri(CALLBACK)
                .build()?,
        )
        .store(SeaOrmStore::connect(&database, KeyRing::generate()).await?)
        .redirect_allow(RedirectAllowlist::new([format!(
            "{}/apps/",
            sandbox.base_url()
        )])?)
        .build()
        .await?;
    for account in ["Acme Books", "Zed Coffee"] {
        let id = install(&kit, sandbox.base_url(), account).await?;
        println!("installed {account:?} as connection {id}");
    }

    for round in 1..=2 {
        println!("-- sync round {round}");
        let connections = kit
            .manager()
            .list(&ListQuery {
                limit: 100,
                ..ListQuery::default()
            })
            .await?;
        for connection in connections {
            sync(&kit, &connection.id, &connection.account.name).await?;
        }
    }
    println!(
        "sandbox served {} API calls, {} refused with 429",
        sandbox.stats().api_ok,
        sandbox.stats().rate_limited_429
    );
    sandbox.shutdown().await;
    Ok(())
}

/// One connection's sync: bulk-import the leads, then tag every subscriber not yet tagged.
async fn sync(kit: &KitOAuth, id: &ConnectionId, account: &str) -> Result<(), Box<dyn Error>> {
    // The facade's client keeps Kit's rate budget, shared by every task of the process.
    let api = kit.client().api(id.clone());
    let leads: Vec<BulkSubscriber> = (0..60)
        .map(|i| BulkSubscriber {
            email_address: format!(
                "lead{i}@{}.example",
                account.to_lowercase().replace(' ', "-")
            ),
            first_name: Some(format!("Lead {i}")),
            state: None,
        })
        .collect();
    match api.bulk_upsert_subscribers(&leads, None).await? {
        BulkOutcome::Done(r) => println!(
            "{account}: bulk upsert of {} leads: {} saved, {} failed",
            leads.len(),
            r.items.len(),
            r.failures.len()
        ),
        BulkOutcome::Queued => println!("{account}: bulk upsert queued by Kit"),
    }
    let synced = api.create_tag("synced").await?.into_inner();
    let filter = SubscriberFilter {
        include: vec!["tags".into()],
        ..SubscriberFilter::default()
    };
    let fresh: Vec<Subscriber> = api
        .list_subscribers(&filter)
        .per_page(25)
        .items()
        .try_filter(|s| {
            let seen = s.tags.iter().flatten().any(|t| t.id == synced.id);
            async move { !seen }
        })
        .try_collect()
        .await?;
    for s in &fresh {
        api.tag_subscriber(synced.id, s.id).await?;
    }
    println!(
        "{account}: {} new subscriber(s) tagged `synced`",
        fresh.len()
    );
    Ok(())
}

/// Kit's App Store → consent (auto-approved for `account`) → callback: a stored connection.
async fn install(
    kit: &KitOAuth,
    base_url: &str,
    account: &str,
) -> Result<ConnectionId, Box<dyn Error>> {
    let started = kit
        .install()
        .begin(&format!("{base_url}/apps/1?success=true"), None, None)
        .await?;
    let mut authorize = started.authorize_url.clone();
    authorize
        .query_pairs_mut()
        .append_pair("sandbox_account", account);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let consent = browser.get(authorize).send().await?;
    let location = consent
        .headers()
        .get("location")
        .ok_or("the consent page did not redirect")?
        .to_str()?;
    let query = url::Url::parse(location)?
        .query()
        .unwrap_or_default()
        .to_owned();
    let binding = started.browser_binding.expose_secret().to_owned();
    let installed = kit.install().complete(&query, Some(&binding)).await?;
    Ok(installed.connection_id)
}
