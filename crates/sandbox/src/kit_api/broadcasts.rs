//! `/v4/broadcasts…` (docs/kit-api-v4.md §7): CRUD and stats. A broadcast's status follows
//! its `send_at` on the sandbox clock: none → `draft`, future → `scheduled`, the first minute
//! after → `sending`, later → `completed`; once sending it can no longer be changed.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Api;
use super::paging::{Item, page};
use super::state::{AccountData, Broadcast};
use super::support::{
    Caller, Fail, Query, Reply, body, iso, no_content, parse_id, parse_time, reply, within,
};

const WRITABLE: [&str; 10] = [
    "subject",
    "preview_text",
    "description",
    "content",
    "public",
    "thumbnail_alt",
    "thumbnail_url",
    "email_address",
    "subscriber_filter",
    "published_at",
];
const SENDING_MS: i64 = 60_000;

fn status(b: &Broadcast, now: i64) -> &'static str {
    match b.send_at {
        None => "draft",
        Some(t) if t > now => "scheduled",
        Some(t) if now - t < SENDING_MS => "sending",
        Some(_) => "completed",
    }
}

fn json_of(b: &Broadcast, now: i64, slim: bool) -> Value {
    let mut v = Value::Object(b.fields.clone());
    for k in WRITABLE {
        if v.get(k).is_none() {
            v[k] = Value::Null;
        }
    }
    v["id"] = json!(b.id);
    v["publication_id"] = json!(b.id);
    v["created_at"] = json!(iso(b.created_at));
    v["send_at"] = json!(b.send_at.map(iso));
    v["published_at"] = json!(b.published_at.map(iso));
    v["public_url"] = json!(format!("https://kit-sandbox.invalid/posts/{}", b.id));
    v["email_template"] = match &b.email_template {
        Some((id, name)) => json!({"id": id, "name": name}),
        None => Value::Null,
    };
    if v["subscriber_filter"].is_null() {
        v["subscriber_filter"] = json!([{"all": []}]);
    }
    v["status"] = json!(status(b, now));
    if slim && let Some(o) = v.as_object_mut() {
        o.remove("content");
    }
    v
}

/// `subscriber_filter` has exactly one group (`all`|`any`|`none`) of `{type, ids}`.
fn valid_filter(v: &Value) -> bool {
    let Some([group]) = v.as_array().map(Vec::as_slice) else {
        return false;
    };
    let Some(obj) = group.as_object().filter(|o| o.len() == 1) else {
        return false;
    };
    let Some((name, conds)) = obj.iter().next() else {
        return false;
    };
    ["all", "any", "none"].contains(&name.as_str())
        && conds.as_array().is_some_and(|cs| {
            cs.iter().all(|c| {
                matches!(c["type"].as_str(), Some("segment" | "tag"))
                    && c["ids"]
                        .as_array()
                        .is_some_and(|ids| ids.iter().all(Value::is_u64))
            })
        })
}

fn time_field(m: &Map<String, Value>, key: &str) -> Result<Option<Option<i64>>, Fail> {
    match m.get(key) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => parse_time(s)
            .map(|t| Some(Some(t)))
            .ok_or_else(|| Fail::invalid(format!("{key} is not a valid ISO 8601 time"))),
        Some(_) => Err(Fail::invalid(format!("{key} is not a valid ISO 8601 time"))),
    }
}

/// Applies a create/update body to `b`.
fn apply(d: &AccountData, b: &mut Broadcast, m: &Map<String, Value>) -> Result<(), Fail> {
    if let Some(f) = m.get("subscriber_filter")
        && !f.is_null()
        && !valid_filter(f)
    {
        return Err(Fail::invalid(
            "subscriber_filter must have exactly one group (all, any or none) of {type, ids}",
        ));
    }
    match m.get("email_template_id") {
        None => {}
        Some(Value::Null) => b.email_template = None,
        Some(v) => {
            let t = v
                .as_u64()
                .and_then(|id| d.templates.get(&id).map(|t| (id, t.0.clone())))
                .ok_or_else(|| Fail::invalid("Email template not found"))?;
            b.email_template = Some(t);
        }
    }
    if let Some(t) = time_field(m, "send_at")? {
        b.send_at = t;
    }
    if let Some(t) = time_field(m, "published_at")? {
        b.published_at = t;
    }
    for k in WRITABLE {
        if let Some(v) = m.get(k)
            && k != "published_at"
        {
            b.fields.insert(k.to_owned(), v.clone());
        }
    }
    Ok(())
}

pub(crate) async fn create(State(api): State<Arc<Api>>, caller: Caller, raw: Bytes) -> Reply {
    let m: Map<String, Value> = body(&raw)?;
    api.with(caller.account, |d, now| {
        let mut b = Broadcast {
            id: 0,
            created_at: now,
            send_at: None,
            published_at: None,
            fields: Map::new(),
            email_template: None,
            recipients: 0,
        };
        apply(d, &mut b, &m)?;
        b.id = d.new_id()?;
        b.recipients = u64::try_from(
            d.subscribers
                .values()
                .filter(|s| s.state == "active")
                .count(),
        )
        .unwrap_or(u64::MAX);
        let v = json_of(&b, now, false);
        d.broadcasts.insert(b.id, b);
        reply(StatusCode::CREATED, json!({ "broadcast": v }))
    })
}

pub(crate) async fn get_one(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    api.with(caller.account, |d, now| {
        let b = d.broadcasts.get(&id).ok_or_else(Fail::not_found)?;
        reply(
            StatusCode::OK,
            json!({ "broadcast": json_of(b, now, false) }),
        )
    })
}

fn editable(d: &AccountData, id: u64, now: i64) -> Result<Broadcast, Fail> {
    let b = d.broadcasts.get(&id).ok_or_else(Fail::not_found)?;
    if matches!(status(b, now), "sending" | "completed") {
        return Err(Fail::invalid("Broadcast is already sending."));
    }
    Ok(b.clone())
}

pub(crate) async fn update(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let id = parse_id(&id)?;
    let m: Map<String, Value> = body(&raw)?;
    api.with(caller.account, |d, now| {
        let mut b = editable(d, id, now)?;
        apply(d, &mut b, &m)?;
        let v = json_of(&b, now, false);
        d.broadcasts.insert(id, b);
        reply(StatusCode::OK, json!({ "broadcast": v }))
    })
}

pub(crate) async fn delete(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    api.with(caller.account, |d, now| {
        editable(d, id, now)?;
        d.broadcasts.remove(&id);
        no_content()
    })
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let (sa, sb) = (q.date("sent_after")?, q.date("sent_before")?);
    let wanted = q.get("status");
    if wanted
        .is_some_and(|s| !["draft", "scheduled", "sending", "completed", "aborted"].contains(&s))
    {
        return Err(Fail::invalid(
            "Status must be one of draft, scheduled, sending, completed, aborted",
        ));
    }
    let slim = q.flag("slim")?;
    let items = api.with(caller.account, |d, now| {
        d.broadcasts
            .values()
            .filter(|b| wanted.is_none_or(|w| status(b, now) == w))
            .filter(|b| {
                let sent = b.send_at.filter(|t| *t <= now);
                (sa.is_none() && sb.is_none()) || within(sent, sa, sb)
            })
            .map(|b| Item::by_id(b.id, json_of(b, now, slim)))
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "broadcasts")
}

/// Emails sent by the broadcasts completed with a send time in `[start, end]`: the account's
/// `email_stats` count them, as `stats_of` counts one broadcast's recipients.
pub(crate) fn sent_between(d: &AccountData, start: i64, end: i64, now: i64) -> u64 {
    d.broadcasts
        .values()
        .filter(|b| status(b, now) == "completed")
        .filter(|b| b.send_at.is_some_and(|t| t >= start && t <= end))
        .map(|b| b.recipients)
        .sum()
}

fn stats_of(b: &Broadcast, now: i64) -> Value {
    let st = status(b, now);
    let done = st == "completed";
    json!({
        "id": b.id,
        "stats": {
            "recipients": if done { b.recipients } else { 0 },
            "open_rate": 0.0, "emails_opened": 0, "click_rate": 0.0,
            "unsubscribes": 0, "total_clicks": 0, "show_total_clicks": false,
            "status": st, "progress": if done { 100.0 } else { 0.0 },
            "open_tracking_disabled": false, "click_tracking_disabled": false,
        }
    })
}

pub(crate) async fn stats(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    api.with(caller.account, |d, now| {
        let b = d.broadcasts.get(&id).ok_or_else(Fail::not_found)?;
        reply(StatusCode::OK, json!({ "broadcast": stats_of(b, now) }))
    })
}

pub(crate) async fn all_stats(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let items = api.with(caller.account, |d, now| {
        d.broadcasts
            .values()
            .map(|b| Item::by_id(b.id, stats_of(b, now)))
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "broadcasts")
}
