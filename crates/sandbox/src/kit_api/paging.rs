//! Kit's cursor pagination (docs/kit-api-v4.md §1): `after`/`before` take opaque base64
//! cursors, `per_page` defaults to 500 (at most 1000), `include_total_count=true` adds
//! `total_count`. A cursor encodes the sort key of an item (`[id]` → `WzEzXQ==` as at Kit), so
//! a page boundary stays put when items before it are deleted.

use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::support::{Fail, Query, Reply, reply};

const DEFAULT_PER_PAGE: usize = 500;
const MAX_PER_PAGE: usize = 1000;

/// One list item and the key it is sorted by (ascending; reversed for descending order).
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) key: Vec<i64>,
    pub(crate) value: Value,
}

impl Item {
    pub(crate) fn by_id(id: u64, value: Value) -> Self {
        Self {
            key: vec![i64::try_from(id).unwrap_or(i64::MAX)],
            value,
        }
    }
}

fn encode(key: &[i64]) -> String {
    STANDARD.encode(serde_json::to_vec(key).unwrap_or_default())
}

fn decode(cursor: &str) -> Result<Vec<i64>, Fail> {
    STANDARD
        .decode(cursor.trim())
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<i64>>(&b).ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Fail::new(StatusCode::BAD_REQUEST, "Invalid cursor"))
}

fn per_page(q: &Query) -> Result<usize, Fail> {
    match q.get("per_page") {
        None => Ok(DEFAULT_PER_PAGE),
        Some(v) => match v.parse::<usize>() {
            // Kit's behaviour above 1000 is undocumented; capping is the lenient reading.
            Ok(n) if n >= 1 => Ok(n.min(MAX_PER_PAGE)),
            _ => Err(Fail::invalid("per_page must be a positive integer")),
        },
    }
}

/// Sorts `items` (descending unless `ascending`), cuts the page the query asks for and answers
/// `{"<list_key>":[…],"pagination":{…}}`.
pub(crate) fn page(mut items: Vec<Item>, ascending: bool, q: &Query, list_key: &str) -> Reply {
    let per_page = per_page(q)?;
    let include_total = q.flag("include_total_count")?;
    let after = q.get("after").map(decode).transpose()?;
    let before = q.get("before").map(decode).transpose()?;
    items.sort_by(|a, b| a.key.cmp(&b.key));
    if !ascending {
        items.reverse();
    }
    // "Comes later in this order than the cursor".
    let later = |k: &Vec<i64>, c: &Vec<i64>| if ascending { k > c } else { k < c };
    let (start, end) = match (&after, &before) {
        (Some(c), _) => {
            let start = items.partition_point(|i| !later(&i.key, c));
            (start, items.len().min(start + per_page))
        }
        (None, Some(c)) => {
            let end = items.partition_point(|i| later(c, &i.key));
            (end.saturating_sub(per_page), end)
        }
        (None, None) => (0, items.len().min(per_page)),
    };
    let total = items.len();
    let slice = items.get(start..end).unwrap_or_default();
    let pagination = json!({
        "has_previous_page": start > 0,
        "has_next_page": end < total,
        "start_cursor": slice.first().map(|i| encode(&i.key)),
        "end_cursor": slice.last().map(|i| encode(&i.key)),
        "per_page": per_page,
    });
    let mut body = Map::new();
    body.insert(
        list_key.to_owned(),
        Value::Array(slice.iter().map(|i| i.value.clone()).collect()),
    );
    body.insert("pagination".to_owned(), pagination);
    if include_total {
        body.insert("total_count".to_owned(), json!(total));
    }
    reply(StatusCode::OK, Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_look_like_kits() {
        assert_eq!(encode(&[13]), "WzEzXQ==");
        assert_eq!(decode("WzEzXQ==").unwrap(), vec![13]);
        assert!(decode("not base64!").is_err());
        assert!(decode(&STANDARD.encode("[]")).is_err());
    }
}
