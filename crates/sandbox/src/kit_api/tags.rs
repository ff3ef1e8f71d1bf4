//! `/v4/tags…` (docs/kit-api-v4.md §4): CRUD, tag and untag by id or by email, and a tag's
//! subscribers.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::paging::{Item, page};
use super::state::{AccountData, Tag};
use super::subscribers::status_filter;
use super::support::{
    Caller, Fail, Query, Reply, body, created_or_ok, iso, no_content, parse_id, reply, within,
};

#[derive(Deserialize)]
pub(crate) struct NameBody {
    #[serde(default)]
    pub(crate) name: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct EmailBody {
    #[serde(default)]
    pub(crate) email_address: Option<String>,
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let counts = q.list("include").contains(&"subscriber_count");
    let items = api.with(caller.account, |d, _| {
        d.tags
            .values()
            .map(|t| {
                let mut v = d.tag_json(t);
                if counts {
                    v["subscriber_count"] =
                        json!(d.taggings.keys().filter(|(tid, _)| *tid == t.id).count());
                }
                Item::by_id(t.id, v)
            })
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "tags")
}

/// Finds or creates a tag by name (trimmed, case-insensitive), as `POST /tags` and bulk do.
pub(crate) fn create_one(
    d: &mut AccountData,
    now: i64,
    name: Option<&str>,
) -> Result<(u64, bool), Fail> {
    let name = name.unwrap_or_default().trim();
    if name.is_empty() {
        return Err(Fail::invalid("Name can't be blank"));
    }
    if let Some(t) = d.tags.values().find(|t| t.name.eq_ignore_ascii_case(name)) {
        return Ok((t.id, false));
    }
    let id = d.new_id()?;
    d.tags.insert(
        id,
        Tag {
            id,
            name: name.to_owned(),
            created_at: now,
        },
    );
    Ok((id, true))
}

pub(crate) async fn create(State(api): State<Arc<Api>>, caller: Caller, raw: Bytes) -> Reply {
    let b: NameBody = body(&raw)?;
    let (created, tag) = api.with(caller.account, |d, now| {
        let (id, created) = create_one(d, now, b.name.as_deref())?;
        Ok::<_, Fail>((created, d.tag_json(&d.tags[&id])))
    })?;
    created_or_ok(created, json!({ "tag": tag }))
}

pub(crate) async fn update(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let id = parse_id(&id)?;
    let b: NameBody = body(&raw)?;
    api.with(caller.account, |d, _| {
        if !d.tags.contains_key(&id) {
            return Err(Fail::not_found());
        }
        let name = b.name.as_deref().unwrap_or_default().trim();
        if name.is_empty() {
            return Err(Fail::invalid("Name can't be blank"));
        }
        if d.tags
            .values()
            .any(|t| t.id != id && t.name.eq_ignore_ascii_case(name))
        {
            return Err(Fail::invalid("Name has already been taken"));
        }
        let t = d.tags.get_mut(&id).ok_or_else(Fail::not_found)?;
        name.clone_into(&mut t.name);
        let t = t.clone();
        reply(StatusCode::OK, json!({ "tag": d.tag_json(&t) }))
    })
}

/// Removes a tag and its taggings; whether it existed.
pub(crate) fn delete_one(d: &mut AccountData, id: u64) -> bool {
    if d.tags.remove(&id).is_none() {
        return false;
    }
    d.taggings.retain(|(tid, _), _| *tid != id);
    true
}

pub(crate) async fn delete(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    if api.with(caller.account, |d, _| delete_one(d, id)) {
        no_content()
    } else {
        Err(Fail::not_found())
    }
}

/// Tags a subscriber: whether the tagging is new, the subscriber with `tagged_at`, and the
/// webhook targets to notify.
pub(crate) fn tag_one(
    d: &mut AccountData,
    now: i64,
    tag_id: u64,
    sub_id: u64,
) -> Result<(bool, Value, Vec<String>), Fail> {
    if !d.tags.contains_key(&tag_id) {
        return Err(Fail::not_found());
    }
    let sub = d.subscribers.get(&sub_id).ok_or_else(Fail::not_found)?;
    let mut v = d.subscriber_json(sub);
    let created = !d.taggings.contains_key(&(tag_id, sub_id));
    if created {
        d.room()?;
    }
    let at = *d.taggings.entry((tag_id, sub_id)).or_insert(now);
    v["tagged_at"] = json!(iso(at));
    let hooks = if created {
        d.hook_targets("tag_add", Some(tag_id))
    } else {
        Vec::new()
    };
    Ok((created, v, hooks))
}

async fn tag_reply(api: &Arc<Api>, account: u64, tag_id: u64, sub: Result<u64, Fail>) -> Reply {
    let sub_id = sub?;
    let (created, v, hooks) = api.with(account, |d, now| tag_one(d, now, tag_id, sub_id))?;
    let mut delivered = v.clone();
    if let Some(o) = delivered.as_object_mut() {
        o.remove("tagged_at");
    }
    api.deliver(hooks, &json!({ "subscriber": delivered }));
    created_or_ok(created, json!({ "subscriber": v }))
}

fn by_email(api: &Api, account: u64, raw: &Bytes) -> Result<u64, Fail> {
    let b: EmailBody = body(raw)?;
    let email = b.email_address.unwrap_or_default();
    api.with(account, |d, _| d.subscriber_by_email(&email))
        .ok_or_else(Fail::not_found)
}

pub(crate) async fn tag(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((tag_id, sub_id)): Path<(String, String)>,
) -> Reply {
    let tag_id = parse_id(&tag_id)?;
    tag_reply(&api, caller.account, tag_id, parse_id(&sub_id)).await
}

pub(crate) async fn tag_by_email(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(tag_id): Path<String>,
    raw: Bytes,
) -> Reply {
    let tag_id = parse_id(&tag_id)?;
    let sub = by_email(&api, caller.account, &raw);
    tag_reply(&api, caller.account, tag_id, sub).await
}

/// Removes a tagging; the webhook targets to notify, or 404 for an unknown tag or subscriber.
pub(crate) fn untag_one(
    d: &mut AccountData,
    tag_id: u64,
    sub_id: u64,
) -> Result<(Value, Vec<String>), Fail> {
    if !d.tags.contains_key(&tag_id) {
        return Err(Fail::not_found());
    }
    let sub = d.subscribers.get(&sub_id).ok_or_else(Fail::not_found)?;
    let v = d.subscriber_json(sub);
    let hooks = if d.taggings.remove(&(tag_id, sub_id)).is_some() {
        d.hook_targets("tag_remove", Some(tag_id))
    } else {
        Vec::new()
    };
    Ok((v, hooks))
}

async fn untag_reply(api: &Arc<Api>, account: u64, tag_id: u64, sub: Result<u64, Fail>) -> Reply {
    let sub_id = sub?;
    let (v, hooks) = api.with(account, |d, _| untag_one(d, tag_id, sub_id))?;
    api.deliver(hooks, &json!({ "subscriber": v }));
    no_content()
}

pub(crate) async fn untag(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path((tag_id, sub_id)): Path<(String, String)>,
) -> Reply {
    let tag_id = parse_id(&tag_id)?;
    untag_reply(&api, caller.account, tag_id, parse_id(&sub_id)).await
}

pub(crate) async fn untag_by_email(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(tag_id): Path<String>,
    raw: Bytes,
) -> Reply {
    let tag_id = parse_id(&tag_id)?;
    let sub = by_email(&api, caller.account, &raw);
    untag_reply(&api, caller.account, tag_id, sub).await
}

pub(crate) async fn subscribers(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(tag_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Reply {
    let tag_id = parse_id(&tag_id)?;
    let q = Query::parse(raw.as_deref());
    let status = status_filter(&q)?;
    let (ca, cb) = (q.date("created_after")?, q.date("created_before")?);
    let (ta, tb) = (q.date("tagged_after")?, q.date("tagged_before")?);
    let items = api.with(caller.account, |d, _| {
        if !d.tags.contains_key(&tag_id) {
            return Err(Fail::not_found());
        }
        Ok(d.taggings
            .range((tag_id, 0)..=(tag_id, u64::MAX))
            .filter_map(|((_, sid), at)| Some((d.subscribers.get(sid)?, *at)))
            .filter(|(s, _)| status.as_ref().is_none_or(|st| s.state == *st))
            .filter(|(s, at)| within(Some(s.created_at), ca, cb) && within(Some(*at), ta, tb))
            .map(|(s, at)| {
                let mut v = d.subscriber_json(s);
                v["tagged_at"] = json!(iso(at));
                Item::by_id(s.id, v)
            })
            .collect::<Vec<_>>())
    })?;
    page(items, false, &q, "subscribers")
}
