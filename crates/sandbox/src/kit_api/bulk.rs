//! `/v4/bulk/*` (docs/kit-api-v4.md §9): up to 100 items are processed at once (200 with
//! results and per-item failures); more are queued (202 `{}`) and the result is POSTed to
//! `callback_url` when processed. A creator account's queue holds at most
//! `queue_limit_bytes` of request bodies (Kit: 300 MB) — beyond it, 413. The control route
//! (`PUT /_sandbox/kit_api`) can pause processing, so a test can fill the queue.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::Api;
use super::state::AccountData;
use super::subscribers::{UpsertBody, upsert_one};
use super::support::{Caller, Fail, Reply, body, reply};
use super::{fields, forms, tags};

/// Kit's synchronous limit.
const SYNC_MAX: usize = 100;
/// Kit's documented queue limit per app per creator account.
pub(crate) const DEFAULT_QUEUE_LIMIT: usize = 300 * 1024 * 1024;
const QUEUE_FULL: &str = "This request exceeds your queued bulk requests limit. Please wait while we process your existing requests and try again later.";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Subscribers,
    CreateTags,
    DeleteTags,
    Tag,
    Untag,
    AddToForms,
    CreateFields,
    SetValues,
}

impl Kind {
    /// (request array, result array or none, failure's item key, noun for the empty error).
    fn keys(
        self,
    ) -> (
        &'static str,
        Option<&'static str>,
        &'static str,
        &'static str,
    ) {
        match self {
            Self::Subscribers => (
                "subscribers",
                Some("subscribers"),
                "subscriber",
                "subscribers",
            ),
            Self::CreateTags => ("tags", Some("tags"), "tag", "tags"),
            Self::DeleteTags => ("tags", None, "tag", "tags"),
            Self::Tag => ("taggings", Some("subscribers"), "tagging", "taggings"),
            Self::Untag => ("taggings", None, "tagging", "taggings"),
            Self::AddToForms => (
                "additions",
                Some("subscribers"),
                "subscription",
                "additions",
            ),
            Self::CreateFields => (
                "custom_fields",
                Some("custom_fields"),
                "custom_field",
                "custom fields",
            ),
            Self::SetValues => (
                "custom_field_values",
                Some("custom_field_values"),
                "custom_field_value",
                "custom field values",
            ),
        }
    }
}

#[derive(Debug)]
struct Job {
    account: u64,
    kind: Kind,
    items: Vec<Value>,
    callback_url: Option<String>,
    bytes: usize,
}

/// Queued bulk requests of every account.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(crate) paused: bool,
    pub(crate) limit_bytes: usize,
    jobs: VecDeque<Job>,
    pub(crate) processed: u64,
    /// The `callback_url` of the last job queued, so a test can call it (or replay Kit's call)
    /// itself.
    pub(crate) last_callback_url: Option<String>,
}

impl Default for Queue {
    fn default() -> Self {
        Self {
            paused: false,
            limit_bytes: DEFAULT_QUEUE_LIMIT,
            jobs: VecDeque::new(),
            processed: 0,
            last_callback_url: None,
        }
    }
}

impl Queue {
    pub(crate) fn len(&self) -> usize {
        self.jobs.len()
    }
    pub(crate) fn bytes(&self) -> usize {
        self.jobs.iter().map(|j| j.bytes).sum()
    }
}

fn id_of(item: &Value, key: &str) -> Option<u64> {
    item.get(key).and_then(Value::as_u64)
}

/// Outcome of one item: a result to list, or error messages.
type Outcome = Result<Option<Value>, Vec<String>>;

fn one(
    d: &mut AccountData,
    now: i64,
    kind: Kind,
    item: &Value,
    hooks: &mut Vec<(Vec<String>, Value)>,
) -> Outcome {
    let err = |f: Fail| f.1;
    match kind {
        Kind::Subscribers => {
            let b: UpsertBody = serde_json::from_value(item.clone())
                .map_err(|_| vec!["Email address is invalid".to_owned()])?;
            let (id, created, _) = upsert_one(d, now, &b).map_err(err)?;
            let v = d.subscriber_json(&d.subscribers[&id]);
            if created {
                hooks.push((
                    d.hook_targets("subscriber_activate", None),
                    json!({"subscriber": v}),
                ));
            }
            Ok(Some(v))
        }
        Kind::CreateTags => {
            let (id, _) =
                tags::create_one(d, now, item.get("name").and_then(Value::as_str)).map_err(err)?;
            Ok(Some(d.tag_json(&d.tags[&id])))
        }
        Kind::DeleteTags => {
            let id = id_of(item, "id").ok_or_else(|| vec!["Not Found".to_owned()])?;
            tags::delete_one(d, id)
                .then_some(None)
                .ok_or_else(|| vec!["Not Found".to_owned()])
        }
        Kind::Tag | Kind::Untag => {
            let (Some(tag), Some(sub)) = (id_of(item, "tag_id"), id_of(item, "subscriber_id"))
            else {
                return Err(vec!["Not Found".to_owned()]);
            };
            if kind == Kind::Tag {
                let (_, v, h) = tags::tag_one(d, now, tag, sub).map_err(err)?;
                hooks.push((h, json!({"subscriber": v})));
                Ok(Some(v))
            } else {
                let (v, h) = tags::untag_one(d, tag, sub).map_err(err)?;
                hooks.push((h, json!({"subscriber": v})));
                Ok(None)
            }
        }
        Kind::AddToForms => {
            let (Some(form), Some(sub)) = (id_of(item, "form_id"), id_of(item, "subscriber_id"))
            else {
                return Err(vec!["Not Found".to_owned()]);
            };
            let referrer = item
                .get("referrer")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let (_, v, h) = forms::add_to_form_one(d, now, form, sub, referrer).map_err(err)?;
            hooks.push((h, json!({"subscriber": v})));
            Ok(Some(v))
        }
        Kind::CreateFields => {
            let (id, _, h) =
                fields::create_one(d, item.get("label").and_then(Value::as_str)).map_err(err)?;
            let v = AccountData::field_json(&d.fields[&id]);
            hooks.push((h, json!({"custom_field": v})));
            Ok(Some(v))
        }
        Kind::SetValues => {
            let (Some(sub), Some(field)) = (
                id_of(item, "subscriber_id"),
                id_of(item, "subscriber_custom_field_id"),
            ) else {
                return Err(vec!["Not Found".to_owned()]);
            };
            if !d.fields.contains_key(&field) {
                return Err(vec!["Custom field not found".to_owned()]);
            }
            let s = d
                .subscribers
                .get_mut(&sub)
                .ok_or_else(|| vec!["Subscriber not found".to_owned()])?;
            let value = match item.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(t.clone()),
                Some(other) => Some(other.to_string()),
            };
            match &value {
                Some(t) => s.fields.insert(field, t.clone()),
                None => s.fields.remove(&field),
            };
            Ok(Some(
                json!({"subscriber_id": sub, "subscriber_custom_field_id": field, "value": value}),
            ))
        }
    }
}

/// Processes every item; the body Kit answers (or POSTs to the callback) and webhook work.
fn process(
    d: &mut AccountData,
    now: i64,
    kind: Kind,
    items: &[Value],
) -> (Value, Vec<(Vec<String>, Value)>) {
    let (_, result_key, failure_key, _) = kind.keys();
    let mut results = Vec::new();
    let mut failures = Vec::new();
    let mut hooks = Vec::new();
    for item in items {
        match one(d, now, kind, item, &mut hooks) {
            Ok(Some(v)) => results.push(v),
            Ok(None) => {}
            Err(errors) => failures.push(json!({ failure_key: item, "errors": errors })),
        }
    }
    let mut out = Map::new();
    if let Some(k) = result_key {
        out.insert(k.to_owned(), Value::Array(results));
    }
    out.insert("failures".to_owned(), Value::Array(failures));
    (Value::Object(out), hooks)
}

async fn handle(api: Arc<Api>, account: u64, kind: Kind, raw: &Bytes) -> Reply {
    let (array_key, _, _, noun) = kind.keys();
    let mut m: Map<String, Value> = body(raw)?;
    let callback_url = m
        .get("callback_url")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let items = match m.remove(array_key) {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return Err(Fail::invalid(format!("No {noun} included for processing"))),
    };
    if items.len() <= SYNC_MAX {
        let (out, hooks) = api.with(account, |d, now| process(d, now, kind, &items));
        for (targets, body) in hooks {
            api.deliver(targets, &body);
        }
        return reply(StatusCode::OK, out);
    }
    {
        let mut q = api.bulk();
        let queued: usize = q
            .jobs
            .iter()
            .filter(|j| j.account == account)
            .map(|j| j.bytes)
            .sum();
        if queued.saturating_add(raw.len()) > q.limit_bytes {
            return Err(Fail::new(StatusCode::PAYLOAD_TOO_LARGE, QUEUE_FULL));
        }
        if callback_url.is_some() {
            q.last_callback_url.clone_from(&callback_url);
        }
        q.jobs.push_back(Job {
            account,
            kind,
            items,
            callback_url,
            bytes: raw.len(),
        });
    }
    tokio::spawn(run(api));
    reply(StatusCode::ACCEPTED, json!({}))
}

/// Processes queued jobs in order until the queue is empty or paused.
pub(crate) async fn run(api: Arc<Api>) {
    loop {
        let job = {
            let mut q = api.bulk();
            if q.paused {
                return;
            }
            let Some(job) = q.jobs.pop_front() else {
                return;
            };
            q.processed += 1;
            job
        };
        let (out, hooks) = api.with(job.account, |d, now| process(d, now, job.kind, &job.items));
        for (targets, body) in hooks {
            api.deliver(targets, &body);
        }
        if let Some(url) = job.callback_url {
            api.deliver(vec![url], &out);
        }
    }
}

macro_rules! endpoint {
    ($name:ident, $kind:expr) => {
        pub(crate) async fn $name(
            State(api): State<Arc<Api>>,
            caller: Caller,
            raw: Bytes,
        ) -> Reply {
            handle(api, caller.account, $kind, &raw).await
        }
    };
}

endpoint!(subscribers, Kind::Subscribers);
endpoint!(create_tags, Kind::CreateTags);
endpoint!(delete_tags, Kind::DeleteTags);
endpoint!(tag, Kind::Tag);
endpoint!(untag, Kind::Untag);
endpoint!(add_to_forms, Kind::AddToForms);
endpoint!(create_fields, Kind::CreateFields);
endpoint!(set_values, Kind::SetValues);
