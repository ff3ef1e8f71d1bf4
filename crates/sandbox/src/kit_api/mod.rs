//! Kit API v4 with state: subscribers, tags, custom fields, forms, sequences, broadcasts,
//! legacy webhooks, bulk, purchases, segments and email templates, per Kit account in memory,
//! with the status codes, bodies and error strings of `docs/kit-api-v4.md`.
//!
//! The module touches the rest of the sandbox in two places only: [`support::authorize`]
//! (access token → account, through the OAuth model) and [`router`], which the sandbox's router
//! merges, so its front middleware (counting, faults) applies here as everywhere under `/v4/`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use serde_json::Value;

mod account;
mod broadcasts;
mod bulk;
mod catalog;
mod control;
mod deliver;
mod fields;
mod filter;
mod forms;
mod paging;
mod state;
mod subscribers;
mod support;
mod tags;
mod webhooks;

use crate::server::Shared;
use state::{AccountData, Accounts};

/// State of the API v4 routes.
#[derive(Debug)]
pub(crate) struct Api {
    shared: Arc<Shared>,
    accounts: Mutex<Accounts>,
    bulk: Mutex<bulk::Queue>,
    deliveries_ok: AtomicU64,
    deliveries_failed: AtomicU64,
    /// Whether accounts have a creator profile (`PUT /_sandbox/kit_api`
    /// `{"creator_profiles":false}` makes `GET /v4/account/creator_profile` answer 404).
    creator_profiles: AtomicBool,
}

impl Api {
    fn now_ms(&self) -> i64 {
        self.shared.now_ms()
    }

    /// Runs `f` on the account's data under the lock: one short, synchronous operation.
    fn with<R>(&self, account: u64, f: impl FnOnce(&mut AccountData, i64) -> R) -> R {
        let now = self.now_ms();
        let mut all = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        let cap = self.shared.config.max_records_per_account;
        f(all.get(account, now, cap), now)
    }

    fn bulk(&self) -> MutexGuard<'_, bulk::Queue> {
        self.bulk.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Posts `body` to every target in the background (legacy webhooks, bulk callbacks).
    fn deliver(self: &Arc<Self>, targets: Vec<String>, body: &Value) {
        for url in targets {
            let api = self.clone();
            let body = body.to_string();
            tokio::spawn(async move {
                let counter = if deliver::post_json(&url, body).await {
                    &api.deliveries_ok
                } else {
                    &api.deliveries_failed
                };
                counter.fetch_add(1, Ordering::Relaxed);
            });
        }
    }
}

/// The API v4 routes (besides `/v4/account`) and their control route `/_sandbox/kit_api`.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(shared: Arc<Shared>) -> Router<S> {
    let api = Arc::new(Api {
        shared,
        accounts: Mutex::default(),
        bulk: Mutex::default(),
        deliveries_ok: AtomicU64::new(0),
        deliveries_failed: AtomicU64::new(0),
        creator_profiles: AtomicBool::new(true),
    });
    Router::new()
        .route(
            "/v4/account/colors",
            get(account::colors).put(account::set_colors),
        )
        .route("/v4/account/creator_profile", get(account::creator_profile))
        .route("/v4/account/email_stats", get(account::email_stats))
        .route("/v4/account/growth_stats", get(account::growth_stats))
        .route("/v4/subscribers/filter", post(filter::filter))
        .route(
            "/v4/subscribers",
            get(subscribers::list).post(subscribers::upsert),
        )
        .route(
            "/v4/subscribers/{id}",
            get(subscribers::get_one).put(subscribers::update),
        )
        .route(
            "/v4/subscribers/{id}/unsubscribe",
            post(subscribers::unsubscribe),
        )
        .route("/v4/subscribers/{id}/tags", get(subscribers::tags))
        .route("/v4/tags", get(tags::list).post(tags::create))
        .route("/v4/tags/{id}", put(tags::update).delete(tags::delete))
        .route(
            "/v4/tags/{id}/subscribers",
            get(tags::subscribers)
                .post(tags::tag_by_email)
                .delete(tags::untag_by_email),
        )
        .route(
            "/v4/tags/{id}/subscribers/{subscriber_id}",
            post(tags::tag).delete(tags::untag),
        )
        .route("/v4/custom_fields", get(fields::list).post(fields::create))
        .route(
            "/v4/custom_fields/{id}",
            put(fields::update).delete(fields::delete),
        )
        .route("/v4/forms", get(forms::list_forms))
        .route(
            "/v4/forms/{id}/subscribers",
            get(forms::form_subscribers).post(forms::add_to_form_by_email),
        )
        .route(
            "/v4/forms/{id}/subscribers/{subscriber_id}",
            post(forms::add_to_form),
        )
        .route("/v4/sequences", get(forms::list_sequences))
        .route(
            "/v4/sequences/{id}/subscribers",
            get(forms::sequence_subscribers).post(forms::add_to_sequence_by_email),
        )
        .route(
            "/v4/sequences/{id}/subscribers/{subscriber_id}",
            post(forms::add_to_sequence),
        )
        .route(
            "/v4/broadcasts",
            get(broadcasts::list).post(broadcasts::create),
        )
        .route("/v4/broadcasts/stats", get(broadcasts::all_stats))
        .route(
            "/v4/broadcasts/{id}",
            get(broadcasts::get_one)
                .put(broadcasts::update)
                .delete(broadcasts::delete),
        )
        .route("/v4/broadcasts/{id}/stats", get(broadcasts::stats))
        .route("/v4/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/v4/webhooks/{id}", axum::routing::delete(webhooks::delete))
        .route("/v4/bulk/subscribers", post(bulk::subscribers))
        .route(
            "/v4/bulk/tags",
            post(bulk::create_tags).delete(bulk::delete_tags),
        )
        .route(
            "/v4/bulk/tags/subscribers",
            post(bulk::tag).delete(bulk::untag),
        )
        .route("/v4/bulk/forms/subscribers", post(bulk::add_to_forms))
        .route("/v4/bulk/custom_fields", post(bulk::create_fields))
        .route("/v4/bulk/custom_fields/subscribers", post(bulk::set_values))
        .route(
            "/v4/purchases",
            get(catalog::purchases).post(catalog::create_purchase),
        )
        .route("/v4/purchases/{id}", get(catalog::purchase))
        .route("/v4/segments", get(catalog::segments))
        .route("/v4/email_templates", get(catalog::email_templates))
        .route(
            "/_sandbox/kit_api",
            get(control::status).put(control::configure),
        )
        // Bulk bodies of thousands of items exceed axum's 2 MiB default; Kit's own per-request
        // cap is undocumented (only the 300 MB queue is).
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(api)
}

/// Largest API request body.
const BODY_LIMIT: usize = 32 * 1024 * 1024;
