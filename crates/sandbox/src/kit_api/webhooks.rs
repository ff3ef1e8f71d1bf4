//! Legacy `/v4/webhooks` (docs/kit-api-v4.md §8): list, create, delete. Deliveries go out from
//! the resource handlers (subscriber created, unsubscribed, tagged, …) via `Api::deliver`.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Api;
use super::paging::{Item, page};
use super::state::Webhook;
use super::support::{Caller, Fail, Query, Reply, body, no_content, parse_id, reply};

/// Kit's event names (without prefix) and the parameter each needs.
const EVENTS: [(&str, Option<&str>); 15] = [
    ("subscriber_activate", None),
    ("subscriber_unsubscribe", None),
    ("subscriber_bounce", None),
    ("subscriber_complain", None),
    ("form_subscribe", Some("form_id")),
    ("course_subscribe", Some("sequence_id")),
    ("course_complete", Some("sequence_id")),
    ("link_click", Some("initiator_value")),
    ("product_purchase", Some("product_id")),
    ("tag_add", Some("tag_id")),
    ("tag_remove", Some("tag_id")),
    ("purchase_create", None),
    ("field_created", None),
    ("field_deleted", None),
    ("field_value_updated", Some("custom_field_id")),
];

#[derive(Deserialize)]
struct CreateBody {
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    event: Option<Map<String, Value>>,
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let items = api.with(caller.account, |d, _| {
        d.webhooks
            .values()
            .map(|w| Item::by_id(w.id, d.webhook_json(w)))
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "webhooks")
}

pub(crate) async fn create(State(api): State<Arc<Api>>, caller: Caller, raw: Bytes) -> Reply {
    let b: CreateBody = body(&raw)?;
    let (Some(target), Some(event)) = (b.target_url.filter(|t| !t.trim().is_empty()), b.event)
    else {
        return Err(Fail::invalid(
            "`event` and `target` parameters must be provided",
        ));
    };
    if !(target.starts_with("http://") || target.starts_with("https://")) {
        return Err(Fail::invalid("Target url must be an http or https URL"));
    }
    let full = event
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // `subscriber.tag_add` as documented; the bare name is accepted too.
    let name = full.rsplit('.').next().unwrap_or_default();
    let Some((name, param)) = EVENTS.iter().find(|(n, _)| *n == name) else {
        return Err(Fail::invalid(format!("Event name '{full}' is not valid")));
    };
    let param = match param {
        None => None,
        Some(key) => {
            // The spec names the sequence parameter `sequence_id`, Kit's PHP SDK sends
            // `course_id`: accept both, echo the spec's.
            let value = event
                .get(*key)
                .or_else(|| {
                    (*key == "sequence_id")
                        .then(|| event.get("course_id"))
                        .flatten()
                })
                .filter(|v| !v.is_null())
                .ok_or_else(|| Fail::invalid(format!("`{key}` is required for {name}")))?;
            Some(((*key).to_owned(), value.clone()))
        }
    };
    api.with(caller.account, |d, _| {
        let id = d.new_id()?;
        let w = Webhook {
            id,
            name: (*name).to_owned(),
            param,
            target_url: target,
        };
        let v = d.webhook_json(&w);
        d.webhooks.insert(id, w);
        reply(StatusCode::CREATED, json!({ "webhook": v }))
    })
}

pub(crate) async fn delete(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    if api.with(caller.account, |d, _| d.webhooks.remove(&id).is_some()) {
        no_content()
    } else {
        Err(Fail::not_found())
    }
}
