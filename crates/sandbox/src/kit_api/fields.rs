//! `/v4/custom_fields…` (docs/kit-api-v4.md §5): list, create (201, or 200 when the label
//! exists), relabel (the `key` follows, the `name` stays), delete.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use super::Api;
use super::paging::{Item, page};
use super::state::{AccountData, Field};
use super::support::{
    Caller, Fail, Query, Reply, body, created_or_ok, no_content, parse_id, reply,
};

#[derive(Deserialize)]
pub(crate) struct LabelBody {
    #[serde(default)]
    pub(crate) label: Option<String>,
}

/// `Last name` → `last_name`.
fn key_of(label: &str) -> String {
    let mut key = String::new();
    for c in label.chars() {
        if c.is_alphanumeric() {
            key.extend(c.to_lowercase());
        } else if !key.is_empty() && !key.ends_with('_') {
            key.push('_');
        }
    }
    key.trim_end_matches('_').to_owned()
}

fn clean_label(label: Option<&str>) -> Result<&str, Fail> {
    let label = label.unwrap_or_default().trim();
    if label.is_empty() || key_of(label).is_empty() {
        return Err(Fail::invalid("Label can't be blank"));
    }
    Ok(label)
}

pub(crate) async fn list(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let items = api.with(caller.account, |d, _| {
        d.fields
            .values()
            .map(|f| Item::by_id(f.id, AccountData::field_json(f)))
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "custom_fields")
}

/// Finds (by label) or creates a custom field; whether it was created, and webhook targets.
pub(crate) fn create_one(
    d: &mut AccountData,
    label: Option<&str>,
) -> Result<(u64, bool, Vec<String>), Fail> {
    let label = clean_label(label)?;
    if let Some(f) = d.fields.values().find(|f| f.label == label) {
        return Ok((f.id, false, Vec::new()));
    }
    let key = key_of(label);
    if d.fields.values().any(|f| f.key == key) {
        return Err(Fail::invalid("Label has already been taken"));
    }
    let id = d.new_id()?;
    d.fields.insert(
        id,
        Field {
            id,
            label: label.to_owned(),
            name: format!("ck_field_{id}_{key}"),
            key,
        },
    );
    Ok((id, true, d.hook_targets("field_created", None)))
}

pub(crate) async fn create(State(api): State<Arc<Api>>, caller: Caller, raw: Bytes) -> Reply {
    let b: LabelBody = body(&raw)?;
    let (created, field, hooks) = api.with(caller.account, |d, _| {
        let (id, created, hooks) = create_one(d, b.label.as_deref())?;
        Ok::<_, Fail>((created, AccountData::field_json(&d.fields[&id]), hooks))
    })?;
    let out = json!({ "custom_field": field });
    api.deliver(hooks, &out);
    created_or_ok(created, out)
}

pub(crate) async fn update(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
    raw: Bytes,
) -> Reply {
    let id = parse_id(&id)?;
    let b: LabelBody = body(&raw)?;
    api.with(caller.account, |d, _| {
        if !d.fields.contains_key(&id) {
            return Err(Fail::not_found());
        }
        let label = clean_label(b.label.as_deref())?;
        let key = key_of(label);
        if d.fields.values().any(|f| f.id != id && f.key == key) {
            return Err(Fail::invalid("Label has already been taken"));
        }
        let f = d.fields.get_mut(&id).ok_or_else(Fail::not_found)?;
        label.clone_into(&mut f.label);
        f.key = key;
        reply(
            StatusCode::OK,
            json!({ "custom_field": AccountData::field_json(f) }),
        )
    })
}

pub(crate) async fn delete(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    let (field, hooks) = api.with(caller.account, |d, _| {
        let f = d.fields.remove(&id).ok_or_else(Fail::not_found)?;
        for s in d.subscribers.values_mut() {
            s.fields.remove(&id);
        }
        Ok::<_, Fail>((
            AccountData::field_json(&f),
            d.hook_targets("field_deleted", None),
        ))
    })?;
    api.deliver(hooks, &json!({ "custom_field": field }));
    no_content()
}
