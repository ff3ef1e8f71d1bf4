//! `POST /v4/subscribers/filter` (docs/kit-api-v4.md §0, §3): subscribers matching every
//! condition of `all` — engagement (opens, clicks), tags, and whatever else Kit's filter
//! language grows, through [`FilterCondition::Raw`]. Kit answers ids as strings here; the id
//! newtypes read both.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{KitApi, KitList, SubscriberId, SubscriberState, TagId, with_body};
use crate::{ApiError, KitRequest, TokenSource};

/// Bounds on an engagement count, optionally within dates (`YYYY-MM-DD`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngagementCount {
    /// More than this many.
    pub count_greater_than: Option<u64>,
    /// Fewer than this many.
    pub count_less_than: Option<u64>,
    /// Counted from this date.
    pub after: Option<String>,
    /// Counted until this date.
    pub before: Option<String>,
}

/// One condition of a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum FilterCondition {
    /// Opened emails.
    Opens(EngagementCount),
    /// Clicked links.
    Clicks(EngagementCount),
    /// Tagged with any of these tags.
    TaggedWithAny(Vec<TagId>),
    /// Any other condition, as Kit's JSON (`{"type":"custom_field",…}`).
    Raw(Value),
}

impl FilterCondition {
    fn to_json(&self) -> Value {
        let engagement = |kind: &str, c: &EngagementCount| {
            let mut v = json!({ "type": kind });
            let fields = [
                ("count_greater_than", c.count_greater_than.map(Value::from)),
                ("count_less_than", c.count_less_than.map(Value::from)),
                ("after", c.after.clone().map(Value::from)),
                ("before", c.before.clone().map(Value::from)),
            ];
            for (key, value) in fields {
                if let Some(value) = value {
                    v[key] = value;
                }
            }
            v
        };
        match self {
            Self::Opens(c) => engagement("opens", c),
            Self::Clicks(c) => engagement("clicks", c),
            Self::TaggedWithAny(ids) => {
                json!({"type": "tags", "any": [{"type": "ids", "matching": ids}]})
            }
            Self::Raw(v) => v.clone(),
        }
    }
}

#[derive(Serialize)]
struct Body {
    all: Vec<Value>,
}

/// A subscriber as the filter lists it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FilteredSubscriber {
    /// Id (a string in Kit's answer).
    pub id: SubscriberId,
    /// Email address.
    pub email_address: String,
    /// First name, if known.
    #[serde(default)]
    pub first_name: Option<String>,
    /// State.
    #[serde(default)]
    pub state: Option<SubscriberState>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// The subscriber's tags (strings in Kit's answer).
    #[serde(default)]
    pub tag_ids: Vec<TagId>,
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// `POST /v4/subscribers/filter`: the subscribers meeting every condition, as a list.
    ///
    /// # Errors
    /// The body cannot be encoded. Each page fails with 422 and Kit's message for a condition
    /// it refuses, otherwise as [`crate::KitClient::send`].
    pub fn filter_subscribers(
        &self,
        all: &[FilterCondition],
    ) -> Result<KitList<'a, S, FilteredSubscriber>, ApiError> {
        let body = Body {
            all: all.iter().map(FilterCondition::to_json).collect(),
        };
        let request = with_body(KitRequest::post("/v4/subscribers/filter"), &body)?;
        Ok(self.list(request, "subscribers"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_kits_json() {
        let opens = FilterCondition::Opens(EngagementCount {
            count_greater_than: Some(5),
            after: Some("2024-01-01".into()),
            ..EngagementCount::default()
        });
        assert_eq!(
            opens.to_json(),
            json!({"type": "opens", "count_greater_than": 5, "after": "2024-01-01"})
        );
        assert_eq!(
            FilterCondition::TaggedWithAny(vec![TagId(3)]).to_json(),
            json!({"type": "tags", "any": [{"type": "ids", "matching": [3]}]})
        );
    }

    #[test]
    fn string_ids_are_read() {
        let s: FilteredSubscriber = serde_json::from_value(json!({
            "id": "324", "email_address": "a@b.co", "tag_ids": ["5", "6"]
        }))
        .unwrap();
        assert_eq!(s.id, SubscriberId(324));
        assert_eq!(s.tag_ids, [TagId(5), TagId(6)]);
    }
}
