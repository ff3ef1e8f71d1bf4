//! Installs against a local `kit-sandbox`, lets the token expire, and gets a refreshed one.
//!
//! ```sh
//! cargo run -p kit-oauth --example install_and_refresh
//! ```
//!
//! Everything is real: the sandbox serves Kit's OAuth endpoints on loopback, the connection is
//! stored encrypted in a SQLite file, and the refresh goes through the same single-flight and
//! lease as in production. Tokens are printed as SHA-256 fingerprints, never in clear.

use std::error::Error;
use std::sync::Arc;

use kit_oauth::KitOAuth;
use kit_oauth::core::{ManualClock, RedirectAllowlist, Timestamp};
use kit_oauth::http::KitEndpoints;
use kit_oauth::store::{KeyRing, SeaOrmStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let callback = "http://127.0.0.1:8080/kit/oauth/callback";
    let sandbox = kit_sandbox::Sandbox::builder()
        .client_id("example-app")
        .client_secret("example-secret")
        .redirect_uri(callback)
        .auto_approve(true)
        .rotation(kit_sandbox::Rotation::ReuseDetection)
        .spawn()
        .await?;
    println!("sandbox Kit on {}", sandbox.base_url());

    let dir = tempfile::tempdir()?;
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("kit.db").display());
    let store = SeaOrmStore::connect(&database, KeyRing::generate()).await?;
    // The example moves time forward instead of waiting two days for the token to expire.
    let clock = ManualClock::new(Timestamp::from_unix_seconds(sandbox.now()));
    let kit = KitOAuth::builder()
        .endpoints(
            KitEndpoints::builder()
                .base_url(sandbox.base_url())
                .client_id("example-app")
                .client_secret("example-secret")
                .redirect_uri(callback)
                .build()?,
        )
        .store(store)
        .clock(Arc::new(clock.clone()))
        .redirect_allow(RedirectAllowlist::new([format!(
            "{}/apps/",
            sandbox.base_url()
        )])?)
        .build()
        .await?;

    // 1. Kit's App Store sends the creator to the app with `redirect`.
    let kit_redirect = format!("{}/apps/1?success=true", sandbox.base_url());
    let started = kit.install().begin(&kit_redirect, None, None).await?;
    // 2. The browser goes to Kit's consent page (auto-approved here) and comes back.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let consent = browser.get(started.authorize_url.clone()).send().await?;
    let location = consent
        .headers()
        .get("location")
        .ok_or("the consent page did not redirect")?
        .to_str()?;
    let query = url::Url::parse(location)?
        .query()
        .unwrap_or_default()
        .to_owned();
    // 3. The callback completes the install.
    let binding = started.browser_binding.expose_secret().to_owned();
    let installed = kit.install().complete(&query, Some(&binding)).await?;
    println!(
        "installed connection {} for Kit account {:?}; send the browser back to {}",
        installed.connection_id, installed.account.name, installed.kit_redirect
    );

    let first = kit.manager().access_token(&installed.connection_id).await?;
    println!("access token   sha256 {}", first.fingerprint());

    // 4. Two days pass: the token expires, and the next call refreshes it exactly once.
    sandbox.advance_clock(172_800 + 60);
    clock.set(Timestamp::from_unix_seconds(sandbox.now()));
    let refreshed = kit.manager().access_token(&installed.connection_id).await?;
    println!("refreshed token sha256 {}", refreshed.fingerprint());
    println!(
        "sandbox counted {} refresh(es); the account still answers: {:?}",
        sandbox.stats().refreshes_ok,
        kit.client().account(&installed.connection_id).await?.name
    );
    sandbox.shutdown().await;
    Ok(())
}
