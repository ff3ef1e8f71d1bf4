//! `/v4/subscribers…` (docs/kit-api-v4.md §3): list with filters, upsert by email, get,
//! update, unsubscribe, and a subscriber's tags.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Api;
use super::paging::{Item, page, window};
use super::state::{AccountData, Subscriber};
use super::support::{
    Caller, Fail, Query, Reply, body, created_or_ok, iso, no_content, parse_id, reply, valid_email,
    within,
};

const STATES: [&str; 5] = ["active", "inactive", "bounced", "complained", "cancelled"];
/// More custom field values than this in one call are processed asynchronously at Kit (202).
const SYNC_FIELDS: usize = 10;
const MAX_FIELDS: usize = 140;

#[derive(Deserialize)]
pub(crate) struct UpsertBody {
    #[serde(default)]
    pub(crate) email_address: Option<String>,
    #[serde(default)]
    pub(crate) first_name: Option<String>,
    #[serde(default)]
    pub(crate) state: Option<String>,
    #[serde(default)]
    pub(crate) fields: Option<Map<String, Value>>,
}

fn field_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Sets custom field values by key. Unknown keys are ignored and reported as warnings: Kit's
/// live behaviour per its SDK tests, where the spec's prose says "error" (accept both).
fn apply_fields(
    d: &AccountData,
    sub: &mut Subscriber,
    fields: Option<&Map<String, Value>>,
) -> Result<Vec<String>, Fail> {
    let Some(fields) = fields else {
        return Ok(Vec::new());
    };
    if fields.len() > MAX_FIELDS {
        return Err(Fail::invalid(format!(
            "A maximum of {MAX_FIELDS} custom fields can be updated at once"
        )));
    }
    let mut warnings = Vec::new();
    for (key, value) in fields {
        match d.fields.values().find(|f| f.key == *key) {
            Some(f) => match field_text(value) {
                Some(text) => {
                    sub.fields.insert(f.id, text);
                }
                None => {
                    sub.fields.remove(&f.id);
                }
            },
            None => warnings.push(format!(
                "Custom field '{key}' does not exist and was ignored"
            )),
        }
    }
    Ok(warnings)
}

/// Creates or updates a subscriber by email, as `POST /subscribers` and bulk do. Returns the
/// id, whether it was created, and the warnings.
pub(crate) fn upsert_one(
    d: &mut AccountData,
    now: i64,
    b: &UpsertBody,
) -> Result<(u64, bool, Vec<String>), Fail> {
    let email = b.email_address.as_deref().unwrap_or_default().trim();
    if !valid_email(email) {
        return Err(Fail::invalid("Email address is invalid"));
    }
    if let Some(state) = &b.state
        && !STATES.contains(&state.as_str())
    {
        return Err(Fail::invalid(format!(
            "State must be one of {}",
            STATES.join(", ")
        )));
    }
    let existing = d.subscriber_by_email(email);
    let mut sub = match existing.and_then(|id| d.subscribers.get(&id)) {
        Some(s) => s.clone(),
        None => Subscriber {
            id: 0,
            email: email.to_owned(),
            first_name: None,
            state: b.state.clone().unwrap_or_else(|| "active".to_owned()),
            created_at: now,
            updated_at: now,
            canceled_at: None,
            fields: BTreeMap::new(),
        },
    };
    if b.first_name.is_some() {
        sub.first_name.clone_from(&b.first_name);
    }
    let warnings = apply_fields(d, &mut sub, b.fields.as_ref())?;
    sub.updated_at = now;
    let created = existing.is_none();
    if created {
        sub.id = d.new_id()?;
        d.by_email.insert(email.to_ascii_lowercase(), sub.id);
    }
    let id = sub.id;
    d.subscribers.insert(id, sub);
    Ok((id, created, warnings))
}

pub(crate) async fn upsert(State(api): State<Arc<Api>>, caller: Caller, raw: Bytes) -> Reply {
    let b: UpsertBody = body(&raw)?;
    let many = b.fields.as_ref().is_some_and(|f| f.len() > SYNC_FIELDS);
    let (created, out, hooks) = api.with(caller.account, |d, now| {
        let (id, created, warnings) = upsert_one(d, now, &b)?;
        let sub = d.subscriber_json(&d.subscribers[&id]);
        let hooks = if created && d.subscribers[&id].state == "active" {
            d.hook_targets("subscriber_activate", None)
        } else {
            Vec::new()
        };
        let mut out = json!({ "subscriber": sub });
        if !warnings.is_empty() {
            out["warnings"] = json!(warnings);
        }
        Ok::<_, Fail>((created, out, hooks))
    })?;
    api.deliver(hooks, &json!({"subscriber": out["subscriber"]}));
    if many {
        return reply(StatusCode::ACCEPTED, out);
    }
    created_or_ok(created, out)
}

pub(crate) async fn get_one(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    api.with(caller.account, |d, _| {
        let s = d.subscribers.get(&id).ok_or_else(Fail::not_found)?;
        let mut v = d.subscriber_json(s);
        v["canceled_at"] = json!(s.canceled_at.map(iso));
        reply(StatusCode::OK, json!({ "subscriber": v }))
    })
}

#[derive(Deserialize)]
struct UpdateBody {
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    fields: Option<Map<String, Value>>,
}

pub(crate) async fn update(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let id = parse_id(&id)?;
    let b: UpdateBody = body(&raw)?;
    let many = b.fields.as_ref().is_some_and(|f| f.len() > SYNC_FIELDS);
    let out = api.with(caller.account, |d, now| {
        let mut sub = d
            .subscribers
            .get(&id)
            .cloned()
            .ok_or_else(Fail::not_found)?;
        if let Some(email) = &b.email_address {
            let email = email.trim();
            if !valid_email(email) {
                return Err(Fail::invalid("Email address is invalid"));
            }
            if d.subscriber_by_email(email)
                .is_some_and(|other| other != id)
            {
                return Err(Fail::invalid("Email address has already been taken"));
            }
            d.by_email.remove(&sub.email.to_ascii_lowercase());
            d.by_email.insert(email.to_ascii_lowercase(), id);
            email.clone_into(&mut sub.email);
        }
        if b.first_name.is_some() {
            sub.first_name.clone_from(&b.first_name);
        }
        let warnings = apply_fields(d, &mut sub, b.fields.as_ref())?;
        sub.updated_at = now;
        let mut out = json!({ "subscriber": d.subscriber_json(&sub) });
        if !warnings.is_empty() {
            out["warnings"] = json!(warnings);
        }
        d.subscribers.insert(id, sub);
        Ok(out)
    })?;
    reply(
        if many {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        },
        out,
    )
}

pub(crate) async fn unsubscribe(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    let (sub, hooks) = api.with(caller.account, |d, now| {
        let s = d.subscribers.get_mut(&id).ok_or_else(Fail::not_found)?;
        s.state = "cancelled".to_owned();
        s.canceled_at = Some(now);
        s.updated_at = now;
        let s = s.clone();
        Ok::<_, Fail>((
            d.subscriber_json(&s),
            d.hook_targets("subscriber_unsubscribe", None),
        ))
    })?;
    api.deliver(hooks, &json!({ "subscriber": sub }));
    no_content()
}

/// Validates the `status` filter shared by every subscriber list; `None` means all.
pub(crate) fn status_filter(q: &Query) -> Result<Option<String>, Fail> {
    match q.get("status").unwrap_or("active") {
        "all" => Ok(None),
        s if STATES.contains(&s) => Ok(Some(s.to_owned())),
        _ => Err(Fail::invalid(
            "Status must be one of active, inactive, bounced, complained, cancelled, all",
        )),
    }
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let status = status_filter(&q)?;
    let sort_field = q.get("sort_field").unwrap_or("id");
    if !["id", "updated_at", "cancelled_at"].contains(&sort_field) {
        return Err(Fail::invalid(
            "Sort field must be one of id, updated_at, cancelled_at",
        ));
    }
    if sort_field == "cancelled_at" && status.as_deref() != Some("cancelled") {
        return Err(Fail::invalid(
            "The status param must be `cancelled` if sort_field is `cancelled_at`",
        ));
    }
    let ascending = match q.get("sort_order").unwrap_or("desc") {
        "asc" => true,
        "desc" => false,
        _ => return Err(Fail::invalid("Sort order must be asc or desc")),
    };
    let (ca, cb) = (q.date("created_after")?, q.date("created_before")?);
    let (ua, ub) = (q.date("updated_after")?, q.date("updated_before")?);
    let email = q.get("email_address").map(str::to_ascii_lowercase);
    if email.as_deref().is_some_and(|e| !valid_email(e)) {
        return Err(Fail::invalid("Email address is invalid"));
    }
    let include = q.list("include");
    let slim = q.flag("slim")?;
    api.with(caller.account, |d, _| {
        let subs: Vec<&Subscriber> = d
            .subscribers
            .values()
            .filter(|s| status.as_ref().is_none_or(|st| s.state == *st))
            .filter(|s| {
                email
                    .as_ref()
                    .is_none_or(|e| s.email.eq_ignore_ascii_case(e))
            })
            .filter(|s| within(Some(s.created_at), ca, cb) && within(Some(s.updated_at), ua, ub))
            .collect();
        let keys: Vec<Vec<i64>> = subs
            .iter()
            .map(|s| {
                let id = i64::try_from(s.id).unwrap_or(i64::MAX);
                match sort_field {
                    "updated_at" => vec![s.updated_at, id],
                    "cancelled_at" => vec![s.canceled_at.unwrap_or(0), id],
                    _ => vec![id],
                }
            })
            .collect();
        // Only the page is rendered: listing 5,000 subscribers 100 at a time stays linear.
        let w = window(&keys, ascending, &q)?;
        let items = w
            .picked
            .iter()
            .map(|&i| render(d, subs[i], &include, slim))
            .collect();
        w.reply(items, "subscribers")
    })
}

/// A subscriber in a list, with the `include`d extras.
fn render(d: &AccountData, s: &Subscriber, include: &[&str], slim: bool) -> Value {
    let mut v = d.subscriber_json(s);
    if slim && let Some(o) = v.as_object_mut() {
        o.remove("fields");
    }
    for extra in include {
        match *extra {
            "tags" => {
                let tags: Vec<Value> = d
                    .taggings
                    .keys()
                    .filter(|(_, sid)| *sid == s.id)
                    .filter_map(|(tid, _)| d.tags.get(tid))
                    .map(|t| json!({"id": t.id, "name": t.name}))
                    .collect();
                v["tags"] = json!(tags);
            }
            "canceled_at" => v["canceled_at"] = json!(s.canceled_at.map(iso)),
            "attribution" => {
                v["attribution"] = json!({
                    "referrer": null, "utm_source": null, "utm_medium": null,
                    "utm_campaign": null, "utm_term": null, "utm_content": null,
                    "source_type": "api", "source_id": null,
                });
            }
            "location" => v["location"] = Value::Null,
            _ => {}
        }
    }
    v
}

pub(crate) async fn tags(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let id = parse_id(&id)?;
    let q = Query::parse(raw.as_deref());
    let items = api.with(caller.account, |d, _| {
        if !d.subscribers.contains_key(&id) {
            return Err(Fail::not_found());
        }
        Ok(d.taggings
            .iter()
            .filter(|((_, sid), _)| *sid == id)
            .filter_map(|((tid, _), at)| {
                let t = d.tags.get(tid)?;
                Some(Item::by_id(
                    t.id,
                    json!({"id": t.id, "name": t.name, "tagged_at": iso(*at)}),
                ))
            })
            .collect::<Vec<_>>())
    })?;
    page(items, false, &q, "tags")
}
