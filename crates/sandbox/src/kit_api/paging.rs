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

/// The page a query asks for, chosen from sort keys alone so that only that page's items
/// need rendering.
#[derive(Debug)]
pub(crate) struct Window {
    /// Indices into the keys given to [`window`], in the page's order.
    pub(crate) picked: Vec<usize>,
    pagination: Value,
    total: Option<usize>,
}

/// Sorts `keys` (descending unless `ascending`) and cuts the page the query asks for.
pub(crate) fn window(keys: &[Vec<i64>], ascending: bool, q: &Query) -> Result<Window, Fail> {
    let per_page = per_page(q)?;
    let include_total = q.flag("include_total_count")?;
    let after = q.get("after").map(decode).transpose()?;
    let before = q.get("before").map(decode).transpose()?;
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
    if !ascending {
        order.reverse();
    }
    // "Comes later in this order than the cursor".
    let later = |k: &Vec<i64>, c: &Vec<i64>| if ascending { k > c } else { k < c };
    let (start, end) = match (&after, &before) {
        (Some(c), _) => {
            let start = order.partition_point(|&i| !later(&keys[i], c));
            (start, order.len().min(start + per_page))
        }
        (None, Some(c)) => {
            let end = order.partition_point(|&i| later(c, &keys[i]));
            (end.saturating_sub(per_page), end)
        }
        (None, None) => (0, order.len().min(per_page)),
    };
    let total = order.len();
    let picked: Vec<usize> = order.get(start..end).unwrap_or_default().to_vec();
    let pagination = json!({
        "has_previous_page": start > 0,
        "has_next_page": end < total,
        "start_cursor": picked.first().map(|&i| encode(&keys[i])),
        "end_cursor": picked.last().map(|&i| encode(&keys[i])),
        "per_page": per_page,
    });
    Ok(Window {
        picked,
        pagination,
        total: include_total.then_some(total),
    })
}

impl Window {
    /// `{"<list_key>":[…],"pagination":{…}}` with the page's rendered items.
    pub(crate) fn reply(self, items: Vec<Value>, list_key: &str) -> Reply {
        let mut body = Map::new();
        body.insert(list_key.to_owned(), Value::Array(items));
        body.insert("pagination".to_owned(), self.pagination);
        if let Some(total) = self.total {
            body.insert("total_count".to_owned(), json!(total));
        }
        reply(StatusCode::OK, Value::Object(body))
    }
}

/// Sorts `items` (descending unless `ascending`), cuts the page the query asks for and answers
/// `{"<list_key>":[…],"pagination":{…}}`.
pub(crate) fn page(items: Vec<Item>, ascending: bool, q: &Query, list_key: &str) -> Reply {
    let (keys, mut values): (Vec<Vec<i64>>, Vec<Value>) =
        items.into_iter().map(|i| (i.key, i.value)).unzip();
    let w = window(&keys, ascending, q)?;
    let page = w
        .picked
        .iter()
        .map(|&i| std::mem::take(&mut values[i]))
        .collect();
    w.reply(page, list_key)
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
