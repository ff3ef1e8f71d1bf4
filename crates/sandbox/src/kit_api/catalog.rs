//! Purchases, segments and email templates (docs/kit-api-v4.md §10). Segments and templates
//! are seeded per account (the API cannot create them).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Api;
use super::paging::{Item, page};
use super::subscribers::{UpsertBody, upsert_one};
use super::support::{Caller, Fail, Query, Reply, body, iso, parse_id, parse_time, reply};

pub(crate) async fn purchases(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let items = api.with(caller.account, |d, _| {
        d.purchases
            .iter()
            .map(|(id, p)| Item::by_id(*id, p.clone()))
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "purchases")
}

pub(crate) async fn purchase(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Reply {
    let id = parse_id(&id)?;
    api.with(caller.account, |d, _| {
        let p = d.purchases.get(&id).ok_or_else(Fail::not_found)?;
        reply(StatusCode::OK, json!({ "purchase": p }))
    })
}

fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn number(m: &Map<String, Value>, key: &str) -> Result<f64, Fail> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(0.0),
        Some(v) => v
            .as_f64()
            .ok_or_else(|| Fail::invalid(format!("{key} must be a number"))),
    }
}

/// `POST /purchases`: the spec wraps the fields in `purchase`, Kit's PHP SDK sends them
/// unwrapped; both are accepted. The buyer is upserted as a subscriber, as Kit does.
pub(crate) async fn create_purchase(
    State(api): State<Arc<Api>>,
    caller: Caller,
    raw: Bytes,
) -> Reply {
    let outer: Map<String, Value> = body(&raw)?;
    let m = match outer.get("purchase") {
        Some(Value::Object(inner)) => inner.clone(),
        _ => outer,
    };
    let Some(transaction_id) = text(&m, "transaction_id") else {
        return Err(Fail::invalid("Transaction id can't be blank"));
    };
    let email = text(&m, "email_address").unwrap_or_default();
    let currency = text(&m, "currency").unwrap_or_else(|| "USD".to_owned());
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(Fail::invalid("Currency must be a 3-letter ISO code"));
    }
    let products = match m.get("products") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(p)) => p.clone(),
        Some(_) => return Err(Fail::invalid("products must be an array")),
    };
    let amounts =
        ["subtotal", "tax", "shipping", "discount", "total"].map(|k| number(&m, k).map(|v| (k, v)));
    let (out, hooks) = api.with(caller.account, |d, now| {
        let time = match m.get("transaction_time").and_then(Value::as_str) {
            Some(t) => parse_time(t)
                .ok_or_else(|| Fail::invalid("Transaction time is not a valid ISO 8601 time"))?,
            None => now,
        };
        let upsert = UpsertBody {
            email_address: Some(email.clone()),
            first_name: text(&m, "first_name"),
            state: None,
            fields: None,
        };
        let (subscriber_id, _, _) = upsert_one(d, now, &upsert)?;
        let id = d.new_id()?;
        let mut p = json!({
            "id": id, "transaction_id": transaction_id,
            "status": text(&m, "status").unwrap_or_else(|| "paid".to_owned()),
            "email_address": email, "subscriber_id": subscriber_id,
            "currency": currency.to_ascii_uppercase(),
            "transaction_time": iso(time), "products": products,
        });
        for amount in &amounts {
            let (k, v) = amount.as_ref().map_err(|e| Fail(e.0, e.1.clone()))?;
            p[*k] = json!(v);
        }
        d.purchases.insert(id, p.clone());
        Ok::<_, Fail>((p, d.hook_targets("purchase_create", None)))
    })?;
    let body = json!({ "purchase": out });
    api.deliver(hooks, &body);
    reply(StatusCode::CREATED, body)
}

pub(crate) async fn segments(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let items = api.with(caller.account, |d, _| {
        d.segments
            .iter()
            .map(|(id, (name, at))| {
                Item::by_id(*id, json!({"id": id, "name": name, "created_at": iso(*at)}))
            })
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "segments")
}

pub(crate) async fn email_templates(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let items = api.with(caller.account, |d, _| {
        d.templates
            .iter()
            .map(|(id, (name, default, category))| {
                Item::by_id(
                    *id,
                    json!({"id": id, "name": name, "is_default": default, "category": category}),
                )
            })
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "email_templates")
}
