//! `/v4/forms…` and `/v4/sequences…` (docs/kit-api-v4.md §6): list, add a subscriber by id or
//! by email (201, or 200 when already there), and list a form's or sequence's subscribers.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::paging::{Item, page};
use super::state::AccountData;
use super::subscribers::status_filter;
use super::support::{Caller, Fail, Query, Reply, body, created_or_ok, iso, parse_id, within};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Form,
    Sequence,
}

#[derive(Deserialize, Default)]
struct AddBody {
    #[serde(default)]
    email_address: Option<String>,
    #[serde(default)]
    referrer: Option<String>,
}

pub(crate) async fn list_forms(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let status = match q.get("status").unwrap_or("active") {
        "all" => None,
        s @ ("active" | "archived" | "trashed") => Some(s),
        _ => {
            return Err(Fail::invalid(
                "Status must be one of active, archived, trashed, all",
            ));
        }
    };
    let kind = match q.get("type") {
        None => None,
        Some(t @ ("embed" | "hosted")) => Some(t),
        Some(_) => return Err(Fail::invalid("Type must be embed or hosted")),
    };
    let items = api.with(caller.account, |d, _| {
        d.forms
            .values()
            .filter(|f| status.is_none_or(|s| f.status == s) && kind.is_none_or(|k| f.kind == k))
            .map(|f| {
                let uid = format!("{:010x}", f.id.wrapping_mul(0x9e37_79b9) ^ d.account_id);
                Item::by_id(
                    f.id,
                    json!({
                        "id": f.id, "name": f.name, "created_at": iso(f.created_at),
                        "type": f.kind,
                        "format": if f.kind == "embed" { json!("inline") } else { Value::Null },
                        "embed_js": format!("https://kit-sandbox.invalid/{uid}/index.js"),
                        "embed_url": format!("https://kit-sandbox.invalid/{uid}"),
                        "archived": f.status == "archived", "uid": uid,
                    }),
                )
            })
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "forms")
}

pub(crate) async fn list_sequences(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let items = api.with(caller.account, |d, _| {
        d.sequences
            .values()
            .map(|s| {
                let count = d.sequence_subs.keys().filter(|(id, _)| *id == s.id).count();
                Item::by_id(
                    s.id,
                    json!({
                        "id": s.id, "name": s.name, "hold": false, "repeat": false,
                        "active": s.active, "created_at": iso(s.created_at),
                        "send_days": ["monday","tuesday","wednesday","thursday","friday"],
                        "send_hour": 10, "time_zone": "America/New_York",
                        "subscriber_count": count,
                    }),
                )
            })
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "sequences")
}

/// Adds a subscriber to a form (with an optional referrer) or sequence, as the routes and bulk
/// do: whether it is new, the subscriber with `added_at`, and the webhook targets.
pub(crate) fn add_to_form_one(
    d: &mut AccountData,
    now: i64,
    form_id: u64,
    sub_id: u64,
    referrer: Option<String>,
) -> Result<(bool, Value, Vec<String>), Fail> {
    add(d, now, Kind::Form, form_id, sub_id, referrer)
}

fn add(
    d: &mut AccountData,
    now: i64,
    kind: Kind,
    list_id: u64,
    sub_id: u64,
    referrer: Option<String>,
) -> Result<(bool, Value, Vec<String>), Fail> {
    let exists = match kind {
        Kind::Form => d.forms.contains_key(&list_id),
        Kind::Sequence => d.sequences.contains_key(&list_id),
    };
    if !exists {
        return Err(Fail::not_found());
    }
    let sub = d.subscribers.get(&sub_id).ok_or_else(Fail::not_found)?;
    let mut v = d.subscriber_json(sub);
    let (created, hooks) = match kind {
        Kind::Form => {
            let created = !d.form_subs.contains_key(&(list_id, sub_id));
            if created {
                d.room()?;
            }
            let (at, referrer) = d
                .form_subs
                .entry((list_id, sub_id))
                .or_insert((now, referrer))
                .clone();
            v["added_at"] = json!(iso(at));
            v["referrer"] = json!(referrer);
            (created, d.hook_targets("form_subscribe", Some(list_id)))
        }
        Kind::Sequence => {
            let created = !d.sequence_subs.contains_key(&(list_id, sub_id));
            if created {
                d.room()?;
            }
            let at = *d.sequence_subs.entry((list_id, sub_id)).or_insert(now);
            v["added_at"] = json!(iso(at));
            (created, d.hook_targets("course_subscribe", Some(list_id)))
        }
    };
    Ok((created, v, if created { hooks } else { Vec::new() }))
}

async fn add_reply(
    api: &Arc<Api>,
    account: u64,
    kind: Kind,
    list_id: u64,
    target: Result<u64, String>,
    referrer: Option<String>,
) -> Reply {
    let (created, v, hooks) = api.with(account, |d, now| {
        let sub_id = match target {
            Ok(id) => id,
            Err(email) => {
                if kind == Kind::Sequence && d.sequences.get(&list_id).is_some_and(|s| !s.active) {
                    return Err(Fail::invalid("Sequence is inactive"));
                }
                d.subscriber_by_email(&email).ok_or_else(Fail::not_found)?
            }
        };
        add(d, now, kind, list_id, sub_id, referrer)
    })?;
    api.deliver(hooks, &json!({ "subscriber": v }));
    created_or_ok(created, json!({ "subscriber": v }))
}

pub(crate) async fn add_to_form(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((id, sub)): Path<(String, String)>,
    raw: Bytes,
) -> Reply {
    let (id, sub) = (parse_id(&id)?, parse_id(&sub)?);
    let b: AddBody = body(&raw)?;
    add_reply(&api, caller.account, Kind::Form, id, Ok(sub), b.referrer).await
}

pub(crate) async fn add_to_form_by_email(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let id = parse_id(&id)?;
    let b: AddBody = body(&raw)?;
    let email = b.email_address.unwrap_or_default();
    add_reply(&api, caller.account, Kind::Form, id, Err(email), b.referrer).await
}

pub(crate) async fn add_to_sequence(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((id, sub)): Path<(String, String)>,
) -> Reply {
    let (id, sub) = (parse_id(&id)?, parse_id(&sub)?);
    add_reply(&api, caller.account, Kind::Sequence, id, Ok(sub), None).await
}

pub(crate) async fn add_to_sequence_by_email(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let id = parse_id(&id)?;
    let b: AddBody = body(&raw)?;
    let email = b.email_address.unwrap_or_default();
    add_reply(&api, caller.account, Kind::Sequence, id, Err(email), None).await
}

fn members(api: &Api, account: u64, kind: Kind, list_id: u64, q: &Query) -> Reply {
    let status = status_filter(q)?;
    let (ca, cb) = (q.date("created_after")?, q.date("created_before")?);
    let (aa, ab) = (q.date("added_after")?, q.date("added_before")?);
    let items = api.with(account, |d, _| {
        let rows: Vec<(u64, i64, Option<Option<String>>)> = match kind {
            Kind::Form if d.forms.contains_key(&list_id) => d
                .form_subs
                .range((list_id, 0)..=(list_id, u64::MAX))
                .map(|((_, s), (at, r))| (*s, *at, Some(r.clone())))
                .collect(),
            Kind::Sequence if d.sequences.contains_key(&list_id) => d
                .sequence_subs
                .range((list_id, 0)..=(list_id, u64::MAX))
                .map(|((_, s), at)| (*s, *at, None))
                .collect(),
            _ => return Err(Fail::not_found()),
        };
        Ok(rows
            .into_iter()
            .filter_map(|(sid, at, referrer)| Some((d.subscribers.get(&sid)?, at, referrer)))
            .filter(|(s, _, _)| status.as_ref().is_none_or(|st| s.state == *st))
            .filter(|(s, at, _)| within(Some(s.created_at), ca, cb) && within(Some(*at), aa, ab))
            .map(|(s, at, referrer)| {
                let mut v = d.subscriber_json(s);
                v["added_at"] = json!(iso(at));
                if let Some(r) = referrer {
                    v["referrer"] = json!(r);
                }
                Item::by_id(s.id, v)
            })
            .collect::<Vec<_>>())
    })?;
    page(items, false, q, "subscribers")
}

pub(crate) async fn form_subscribers(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let id = parse_id(&id)?;
    members(
        &api,
        caller.account,
        Kind::Form,
        id,
        &Query::parse(raw.as_deref()),
    )
}

pub(crate) async fn sequence_subscribers(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let id = parse_id(&id)?;
    members(
        &api,
        caller.account,
        Kind::Sequence,
        id,
        &Query::parse(raw.as_deref()),
    )
}
