//! `POST /v4/subscribers/filter` (docs/kit-api-v4.md §0, §3): subscribers matching every
//! condition of `all`, paged like every list, with `id` and `tag_ids` as strings (Kit's one
//! exception to integer ids).
//!
//! The sandbox evaluates the conditions it has data for: `tags` (`any` of `{"type":"ids",
//! "matching":[…]}`) and the engagement counts `opens`/`clicks` (`count_greater_than`,
//! `count_less_than`), which are 0 for every sandbox subscriber since it records no opens or
//! clicks. Another condition type is refused with 422 rather than silently matching everyone.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Api;
use super::paging::{Item, page};
use super::state::AccountData;
use super::support::{Caller, Fail, Query, Reply, body, iso};

#[derive(Deserialize)]
struct FilterBody {
    #[serde(default)]
    all: Option<Vec<Condition>>,
}

#[derive(Deserialize)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    count_greater_than: Option<i64>,
    #[serde(default)]
    count_less_than: Option<i64>,
    #[serde(default)]
    any: Vec<Value>,
}

/// One parsed condition, checked against a subscriber.
enum Test {
    /// Tagged with any of these.
    Tags(BTreeSet<u64>),
    /// The subscriber's count (always 0 here) is within these bounds.
    Count(Option<i64>, Option<i64>),
}

fn parse(c: &Condition) -> Result<Test, Fail> {
    match c.kind.as_str() {
        "tags" => {
            let mut ids = BTreeSet::new();
            for group in &c.any {
                if group.get("type").and_then(Value::as_str) != Some("ids") {
                    return Err(Fail::invalid("Tags filter needs {\"type\":\"ids\"}"));
                }
                let matching = group.get("matching").and_then(Value::as_array);
                for id in matching.into_iter().flatten() {
                    let id = id
                        .as_u64()
                        .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
                        .ok_or_else(|| Fail::invalid("Tag ids must be integers"))?;
                    ids.insert(id);
                }
            }
            Ok(Test::Tags(ids))
        }
        "opens" | "clicks" => Ok(Test::Count(c.count_greater_than, c.count_less_than)),
        other => Err(Fail::invalid(format!(
            "Filter type {other} is not supported"
        ))),
    }
}

fn matches(d: &AccountData, id: u64, test: &Test) -> bool {
    match test {
        Test::Tags(ids) => ids.iter().any(|t| d.taggings.contains_key(&(*t, id))),
        Test::Count(gt, lt) => gt.is_none_or(|g| 0 > g) && lt.is_none_or(|l| 0 < l),
    }
}

pub(crate) async fn filter(
    State(api): State<Arc<Api>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
    bytes: Bytes,
) -> Reply {
    let q = Query::parse(raw.as_deref());
    let b: FilterBody = body(&bytes)?;
    let all = b
        .all
        .ok_or_else(|| Fail::invalid("All can't be blank"))?
        .iter()
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    let items = api.with(caller.account, |d, _| {
        d.subscribers
            .values()
            .filter(|s| all.iter().all(|t| matches(d, s.id, t)))
            .map(|s| {
                let tag_ids: Vec<String> = d
                    .taggings
                    .keys()
                    .filter(|(_, sub)| *sub == s.id)
                    .map(|(tag, _)| tag.to_string())
                    .collect();
                Item::by_id(
                    s.id,
                    json!({
                        "id": s.id.to_string(),
                        "email_address": s.email,
                        "first_name": s.first_name,
                        "state": s.state,
                        "created_at": iso(s.created_at),
                        "tag_ids": tag_ids,
                    }),
                )
            })
            .collect::<Vec<_>>()
    });
    page(items, false, &q, "subscribers")
}
