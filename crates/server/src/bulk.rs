//! Kit bulk requests through the broker (issue 16). Above 100 items Kit answers `202 {}` and
//! later POSTs the result, unsigned, to the request's `callback_url`; so:
//!
//! - `POST /v1/connections/{id}/bulk/{kind}` sends the app's body to Kit's `/v4/bulk/{kind}`
//!   with `callback_url` set to `<broker>/kit/bulk/<token>`, a fresh 256-bit token (only its
//!   SHA-256 is stored), and answers `202 {"id","status":"pending"}` — or, when Kit answers at
//!   once (100 items or fewer), `200` with the result, completed on the spot.
//! - `POST /kit/bulk/{token}` is where Kit calls back: any instance may receive it (the request
//!   is in the shared database), exactly one callback completes it, a replay is a 200 that
//!   changes nothing, an unknown token a 404.
//! - Completing emits one `bulk_completed` webhook, and `GET /v1/bulk/{id}` reads the result
//!   (tenant-scoped keys see only their tenant's).
//!
//! Results may hold subscriber emails: bounded by the store, purged with the audit trail's
//! retention (at most once an hour per process, when a bulk request starts).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kit_oauth::core::{Sha256Hash, Timestamp, Url};
use kit_oauth::http::KitRequest;
use kit_oauth::store::{BULK_RESULT_MAX_BYTES, BulkCompletion, BulkRecord, NewBulkRequest};
use rand::RngCore as _;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::AppState;
use crate::extract::{ApiPath, Caller, Visible};
use crate::web::{ApiError, rfc3339};
use crate::webhook::WebhookSink;

/// Kit's bulk endpoints that take a `callback_url` (POST).
pub const KINDS: [&str; 6] = [
    "subscribers",
    "tags",
    "tags/subscribers",
    "forms/subscribers",
    "custom_fields",
    "custom_fields/subscribers",
];

/// Where Kit's bulk callbacks arrive: `<origin>/kit/bulk/<token>`.
pub const CALLBACK_PREFIX: &str = "/kit/bulk/";

/// How often a process purges old bulk results.
const PURGE_EVERY_MS: i64 = 60 * 60 * 1000;
static LAST_PURGE: AtomicI64 = AtomicI64::new(i64::MIN);

/// Where Kit calls back and who hears of it.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    /// The broker's public origin (the redirect URI's): callbacks go to
    /// `<origin>/kit/bulk/<token>`.
    pub callback_base: Url,
    /// The webhook sink `bulk_completed` goes to (`None`: only `GET /v1/bulk/{id}` tells).
    pub webhook: Option<WebhookSink>,
    /// How long results are kept: the audit trail's retention.
    pub retention: Duration,
}

/// A bulk request as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkView {
    /// Its id.
    pub id: String,
    /// The connection it was sent for.
    pub connection: String,
    /// Kit's endpoint under `/v4/bulk/`.
    pub kind: String,
    /// `pending` or `completed`.
    pub status: String,
    /// When it was sent (RFC 3339).
    pub created_at: String,
    /// When Kit's result arrived.
    pub completed_at: Option<String>,
    /// Kit's result, once it arrived.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
}

fn view(record: &BulkRecord) -> BulkView {
    BulkView {
        id: record.id.clone(),
        connection: record.connection.as_str().to_owned(),
        kind: record.kind.clone(),
        status: if record.completed_at.is_some() {
            "completed"
        } else {
            "pending"
        }
        .to_owned(),
        created_at: rfc3339(record.created_at),
        completed_at: record.completed_at.map(rfc3339),
        result: record
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str(r).ok()),
    }
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(ms)
}

fn store_error(error: &kit_oauth::core::StoreError) -> ApiError {
    tracing::warn!(%error, "bulk request store failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the database is temporarily unavailable",
    )
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

async fn purge_if_due(state: &AppState, options: &BulkOptions, at: Timestamp) {
    let last = LAST_PURGE.load(Ordering::Relaxed);
    let due = last == i64::MIN || at.unix_millis().saturating_sub(last) >= PURGE_EVERY_MS;
    if !due
        || LAST_PURGE
            .compare_exchange(last, at.unix_millis(), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let keep = i64::try_from(options.retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = Timestamp::from_unix_millis(at.unix_millis().saturating_sub(keep));
    if let Err(error) = state.engine.manager.store().purge_bulk(cutoff).await {
        tracing::warn!(%error, "could not purge old bulk results");
    }
}

/// Completes the request and emits `bulk_completed` when this call won.
async fn complete(
    state: &AppState,
    options: &BulkOptions,
    hash: &Sha256Hash,
    result: &str,
) -> Result<BulkCompletion, ApiError> {
    let outcome = state
        .engine
        .manager
        .store()
        .complete_bulk(hash, result, now())
        .await
        .map_err(|e| store_error(&e))?;
    if let BulkCompletion::Completed(record) = &outcome {
        tracing::info!(bulk = %record.id, connection = %record.connection, "bulk request completed");
        if let Some(webhook) = &options.webhook {
            webhook.bulk_completed(record);
        }
    }
    Ok(outcome)
}

fn disabled() -> ApiError {
    ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "bulk_disabled",
        "this server has no Kit API base or public URL configured",
    )
}

/// Starts a Kit bulk request for a connection.
#[utoipa::path(
    post, path = "/v1/connections/{id}/bulk/{kind}", tag = "bulk",
    params(
        crate::api::IdParam,
        ("kind" = String, Path, description = "Kit's bulk endpoint under `/v4/bulk/`: `subscribers`, `tags`, `tags/subscribers`, `forms/subscribers`, `custom_fields` or `custom_fields/subscribers`"),
    ),
    request_body(content = Object, description = "Kit's bulk body; `callback_url` is set by the broker", content_type = "application/json"),
    responses(
        (status = 200, description = "Kit answered at once (100 items or fewer): completed", body = BulkView),
        (status = 202, description = "Kit queued it: pending until Kit calls back", body = BulkView),
        (status = 400, description = "The body is not a JSON object", body = ApiError),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such connection (or not visible to this key), or no such bulk kind", body = ApiError),
        (status = 409, description = "The grant is dead: the creator must reinstall", body = ApiError),
        (status = 501, description = "No Kit API base or public URL configured", body = ApiError),
        (status = 502, description = "Kit could not be reached", body = ApiError),
        (status = 503, description = "Kit or the database is temporarily unavailable, or the request timed out", body = serde_json::Value),
        (status = "default", description = "Kit's own refusal (413, 422, …), passed through", body = serde_json::Value),
    ),
    security(("api_key" = []))
)]
pub async fn start(
    State(state): State<AppState>,
    visible: Visible,
    ApiPath(path): ApiPath<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (_, kind) = path;
    let Visible { id, status } = visible;
    let (Some(kit), Some(options)) = (state.options.kit_api.clone(), state.options.bulk.clone())
    else {
        return Err(disabled());
    };
    let kind = kind.trim_matches('/').to_owned();
    if !KINDS.contains(&kind.as_str()) {
        // Like any path the broker does not serve: a 404 naming what exists.
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no such Kit bulk endpoint; kind is one of {}",
                KINDS.join(", ")
            ),
        ));
    }
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&body) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "the body must be a JSON object (Kit's bulk body)",
        ));
    };
    let token = random_hex(32);
    let callback = options
        .callback_base
        .join(&format!("{CALLBACK_PREFIX}{token}"))
        .map_err(|_| disabled())?;
    fields.insert("callback_url".into(), Value::String(callback.to_string()));
    let at = now();
    purge_if_due(&state, &options, at).await;
    let hash = Sha256Hash::of(token.as_bytes());
    let record = NewBulkRequest {
        id: format!("bulk_{}", random_hex(16)),
        callback_hash: hash,
        connection: id.clone(),
        tenant: status.tenant.clone(),
        kind: kind.clone(),
        created_at: at,
    };
    let store = state.engine.manager.store();
    store
        .insert_bulk(&record)
        .await
        .map_err(|e| store_error(&e))?;
    let request = KitRequest::post(format!("/v4/bulk/{kind}"))
        .json(&Value::Object(fields))
        .map_err(|_| disabled())?;
    let answer = crate::proxy::send(&state, &kit, &id, &request).await?;
    let (code, completed) = match answer.status {
        StatusCode::ACCEPTED => (StatusCode::ACCEPTED, None),
        StatusCode::OK | StatusCode::CREATED => {
            let text = String::from_utf8_lossy(&answer.body).into_owned();
            match complete(&state, &options, &hash, &text).await? {
                BulkCompletion::Completed(done) => (StatusCode::OK, Some(done)),
                _ => (StatusCode::OK, None),
            }
        }
        other => {
            // Kit refused it: nothing will call back; its answer goes to the app.
            let mut response = (other, answer.body).into_response();
            if let Some(ct) = answer.headers.get(axum::http::header::CONTENT_TYPE) {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, ct.clone());
            }
            return Ok(response);
        }
    };
    let shown = match completed {
        Some(done) => done,
        None => store
            .bulk_request(&record.id)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(ApiError::not_found)?,
    };
    Ok((code, Json(view(&shown))).into_response())
}

/// Where Kit POSTs a bulk result. Unsigned at Kit: the token in the path is the proof.
pub async fn callback(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(options) = state.options.bulk.clone() else {
        return Err(ApiError::not_found());
    };
    let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(ApiError::not_found());
    }
    if body.len() > BULK_RESULT_MAX_BYTES || serde_json::from_slice::<Value>(&body).is_err() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "the result must be JSON of at most 4 MiB",
        ));
    }
    let text = String::from_utf8_lossy(&body);
    let hash = Sha256Hash::of(token.as_bytes());
    match complete(&state, &options, &hash, &text).await? {
        BulkCompletion::Completed(_) | BulkCompletion::AlreadyCompleted => {
            Ok((StatusCode::OK, Json(serde_json::json!({}))).into_response())
        }
        BulkCompletion::Unknown => Err(ApiError::not_found()),
    }
}

/// A bulk request and, once Kit called back, its result.
#[utoipa::path(
    get, path = "/v1/bulk/{id}", tag = "bulk",
    params(("id" = String, Path, description = "The id `POST /v1/connections/{id}/bulk/{kind}` answered")),
    responses(
        (status = 200, description = "The request, pending or completed", body = BulkView),
        (status = 401, description = "Missing or invalid API key", body = ApiError),
        (status = 404, description = "No such bulk request (or not visible to this key)", body = ApiError),
        (status = 503, description = "The database is temporarily unavailable", body = ApiError),
    ),
    security(("api_key" = []))
)]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<BulkView>, ApiError> {
    let Caller(scope) = caller;
    let record = state
        .engine
        .manager
        .store()
        .bulk_request(&id)
        .await
        .map_err(|e| store_error(&e))?
        .filter(|r| scope.allows(r.tenant.as_ref()))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(view(&record)))
}
