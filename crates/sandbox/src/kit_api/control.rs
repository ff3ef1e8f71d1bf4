//! `GET`/`PUT /_sandbox/kit_api`: the API's own control knobs and counters — bulk queue
//! (pause, limit, size) and webhook/callback deliveries.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::{Api, bulk};

fn view(api: &Api) -> Response {
    let q = api.bulk();
    Json(json!({
        "bulk": {
            "paused": q.paused,
            "queue_limit_bytes": q.limit_bytes,
            "queued_jobs": q.len(),
            "queued_bytes": q.bytes(),
            "processed_jobs": q.processed,
            "last_callback_url": q.last_callback_url,
        },
        "creator_profiles": api.creator_profiles.load(Ordering::Relaxed),
        "deliveries": {
            "ok": api.deliveries_ok.load(Ordering::Relaxed),
            "failed": api.deliveries_failed.load(Ordering::Relaxed),
        }
    }))
    .into_response()
}

pub(crate) async fn status(State(api): State<Arc<Api>>) -> Response {
    view(&api)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    bulk_paused: Option<bool>,
    #[serde(default)]
    bulk_queue_limit_bytes: Option<usize>,
    #[serde(default)]
    creator_profiles: Option<bool>,
}

pub(crate) async fn configure(State(api): State<Arc<Api>>, raw: Bytes) -> Response {
    let Ok(s) = serde_json::from_slice::<Settings>(&raw) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "expected {\"bulk_paused\": bool, \"bulk_queue_limit_bytes\": N, \"creator_profiles\": bool}"}),
            ),
        )
            .into_response();
    };
    if let Some(on) = s.creator_profiles {
        api.creator_profiles.store(on, Ordering::Relaxed);
    }
    let resume = {
        let mut q = api.bulk();
        if let Some(limit) = s.bulk_queue_limit_bytes {
            q.limit_bytes = limit;
        }
        if let Some(p) = s.bulk_paused {
            q.paused = p;
        }
        !q.paused
    };
    if resume {
        tokio::spawn(bulk::run(api.clone()));
    }
    view(&api)
}
