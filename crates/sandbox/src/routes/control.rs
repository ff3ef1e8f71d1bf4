//! The control API under `/_sandbox/`: stats, faults, clock, grants, config, sizes.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::faults::Fault;
use crate::server::Shared;

use super::AppState;
use super::support::read_body;

fn control_error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

pub(super) async fn stats(State(s): AppState) -> Response {
    Json(crate::current_stats(&s)).into_response()
}

pub(super) async fn stats_reset(State(s): AppState) -> Response {
    crate::reset_stats(&s);
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn faults_list(State(s): AppState) -> Response {
    Json(json!({"faults": s.faults().list()})).into_response()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Fault),
    Many(Vec<Fault>),
}

pub(super) async fn faults_add(State(s): AppState, body: Body) -> Response {
    let Ok(bytes) = read_body(body, 64 * 1024).await else {
        return control_error(StatusCode::BAD_REQUEST, "body too large or unreadable");
    };
    let faults = match serde_json::from_slice::<OneOrMany>(&bytes) {
        Ok(OneOrMany::One(f)) => vec![f],
        Ok(OneOrMany::Many(v)) => v,
        Err(_) => {
            return control_error(
                StatusCode::BAD_REQUEST,
                "expected a fault object or an array of them, e.g. {\"endpoint\":\"token\",\"kind\":\"status\",\"status\":503,\"count\":1}",
            );
        }
    };
    if let Some(msg) = faults.iter().find_map(|f| f.validate().err()) {
        return control_error(StatusCode::BAD_REQUEST, &msg);
    }
    let list = crate::add_faults(&s, faults);
    (StatusCode::CREATED, Json(json!({"faults": list}))).into_response()
}

pub(super) async fn faults_clear(State(s): AppState) -> Response {
    crate::clear_faults(&s);
    StatusCode::NO_CONTENT.into_response()
}

fn clock_json(s: &Shared) -> Response {
    let now = s.now_ms();
    Json(json!({
        "now": now.div_euclid(1000),
        "now_ms": now,
        "offset_secs": s.clock_offset_secs(),
    }))
    .into_response()
}

pub(super) async fn clock_get(State(s): AppState) -> Response {
    clock_json(&s)
}

#[derive(Deserialize)]
struct Advance {
    advance_secs: u64,
}

pub(super) async fn clock_advance(State(s): AppState, body: Body) -> Response {
    let Ok(bytes) = read_body(body, 4096).await else {
        return control_error(StatusCode::BAD_REQUEST, "body too large or unreadable");
    };
    match serde_json::from_slice::<Advance>(&bytes) {
        Ok(a) if a.advance_secs <= 100 * 365 * 86_400 => {
            s.advance_clock(a.advance_secs);
            clock_json(&s)
        }
        _ => control_error(
            StatusCode::BAD_REQUEST,
            "expected {\"advance_secs\": N} with 0 <= N <= 3153600000",
        ),
    }
}

pub(super) async fn grants(State(s): AppState) -> Response {
    let list = s.model().grants_info();
    Json(json!({"grants": list})).into_response()
}

pub(super) async fn grant_revoke(State(s): AppState, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return control_error(StatusCode::NOT_FOUND, "no alive grant with that id");
    };
    let now = s.now_ms();
    if s.model().revoke_grant(id, now) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        control_error(StatusCode::NOT_FOUND, "no alive grant with that id")
    }
}

pub(super) async fn config(State(s): AppState) -> Response {
    Json(s.config.public_view()).into_response()
}

pub(super) async fn sizes(State(s): AppState) -> Response {
    Json(s.model().sizes()).into_response()
}
