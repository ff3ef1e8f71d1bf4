//! `/v4/bulk/*` (docs/kit-api-v4.md §9). Up to 100 items Kit answers at once (200, results
//! and per-item failures); above that it answers 202 `{}` and POSTs the same body to
//! `callback_url` later: [`BulkOutcome::Queued`]. A full queue is 413
//! ([`super::KitErrorExt::is_bulk_queue_full`]).

use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{
    CustomField, CustomFieldId, FormId, KitApi, Subscriber, SubscriberId, SubscriberState, Tag,
    TagId, protocol, with_body,
};
use crate::{ApiError, KitRequest, KitResponse, TokenSource};

/// What Kit did with a bulk request.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkOutcome<R> {
    /// Processed at once (≤ 100 items).
    Done(R),
    /// Queued (202); the result goes to the `callback_url`, if one was given.
    Queued,
}

impl<R> BulkOutcome<R> {
    /// The result when processed at once.
    pub fn done(self) -> Option<R> {
        match self {
            Self::Done(r) => Some(r),
            Self::Queued => None,
        }
    }
}

/// Results of a bulk request: the items processed and those that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkResult<T> {
    /// Items as saved (empty for the delete endpoints, which list only failures).
    pub items: Vec<T>,
    /// Items Kit refused, with why.
    pub failures: Vec<BulkFailure>,
}

impl<T: DeserializeOwned> BulkResult<T> {
    /// Parses the synchronous answer (or a callback's body) of an endpoint whose result list
    /// is `key`.
    ///
    /// # Errors
    /// A message when the body does not have that shape.
    pub fn from_value(mut v: Value, key: Option<&str>) -> Result<Self, String> {
        let items = match key {
            Some(k) => serde_json::from_value(v.get_mut(k).map(Value::take).unwrap_or(json!([])))
                .map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        let failures =
            serde_json::from_value(v.get_mut("failures").map(Value::take).unwrap_or(json!([])))
                .map_err(|e| e.to_string())?;
        Ok(Self { items, failures })
    }
}

/// One refused item: Kit's messages and the item as sent (under `subscriber`, `tag`,
/// `tagging`, `subscription`, … depending on the endpoint).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BulkFailure {
    /// Kit's messages, e.g. `Email address is invalid`.
    #[serde(default)]
    pub errors: Vec<String>,
    /// The other members of the failure object.
    #[serde(flatten)]
    pub item: Map<String, Value>,
}

/// An item of `POST /v4/bulk/subscribers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkSubscriber {
    /// Email address (the upsert key).
    pub email_address: String,
    /// First name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// State.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<SubscriberState>,
}

/// A tag/subscriber pair of `/v4/bulk/tags/subscribers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkTagging {
    /// Tag.
    pub tag_id: TagId,
    /// Subscriber.
    pub subscriber_id: SubscriberId,
}

/// An item of `POST /v4/bulk/forms/subscribers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkFormAddition {
    /// Form.
    pub form_id: FormId,
    /// Subscriber.
    pub subscriber_id: SubscriberId,
    /// Referrer URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

/// An item of `POST /v4/bulk/custom_fields/subscribers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkCustomFieldValue {
    /// Subscriber.
    pub subscriber_id: SubscriberId,
    /// Custom field.
    pub subscriber_custom_field_id: CustomFieldId,
    /// Value.
    pub value: String,
}

/// A value as Kit reports it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomFieldValue {
    /// Subscriber.
    pub subscriber_id: SubscriberId,
    /// Custom field.
    pub subscriber_custom_field_id: CustomFieldId,
    /// Value.
    #[serde(default)]
    pub value: Option<String>,
}

fn body_with(key: &str, items: Value, callback_url: Option<&str>) -> Value {
    let mut body = Map::new();
    body.insert(key.to_owned(), items);
    let mut body = Value::Object(body);
    if let Some(url) = callback_url {
        body["callback_url"] = json!(url);
    }
    body
}

fn outcome<T: DeserializeOwned>(
    response: &KitResponse,
    key: Option<&str>,
) -> Result<BulkOutcome<BulkResult<T>>, ApiError> {
    if response.status == StatusCode::ACCEPTED {
        return Ok(BulkOutcome::Queued);
    }
    let v: Value = response.json()?;
    BulkResult::from_value(v, key)
        .map(BulkOutcome::Done)
        .map_err(|e| protocol(response, &e))
}

impl<S: TokenSource + Sync> KitApi<'_, S> {
    async fn bulk<T: DeserializeOwned>(
        &self,
        request: KitRequest,
        body: &Value,
        key: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<T>>, ApiError> {
        let response = self.send(with_body(request, body)?).await?;
        outcome(&response, key)
    }

    /// `POST /v4/bulk/subscribers`: upsert many.
    ///
    /// # Errors
    /// 422 for an empty list; 413 when the queue is full; 403 over the subscriber limit.
    pub async fn bulk_upsert_subscribers(
        &self,
        subscribers: &[BulkSubscriber],
        callback_url: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<Subscriber>>, ApiError> {
        let body = body_with("subscribers", json!(subscribers), callback_url);
        self.bulk(
            KitRequest::post("/v4/bulk/subscribers"),
            &body,
            Some("subscribers"),
        )
        .await
    }

    /// `POST /v4/bulk/tags`: create many (existing ones are returned as they are).
    ///
    /// # Errors
    /// 422 for an empty list; 413.
    pub async fn bulk_create_tags(
        &self,
        names: &[&str],
        callback_url: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<Tag>>, ApiError> {
        let items: Vec<Value> = names.iter().map(|n| json!({ "name": n })).collect();
        let body = body_with("tags", json!(items), callback_url);
        self.bulk(KitRequest::post("/v4/bulk/tags"), &body, Some("tags"))
            .await
    }

    /// `DELETE /v4/bulk/tags`: only failures come back.
    ///
    /// # Errors
    /// 422 for an empty list; 413.
    pub async fn bulk_delete_tags(
        &self,
        ids: &[TagId],
        callback_url: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<Value>>, ApiError> {
        let items: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
        let body = body_with("tags", json!(items), callback_url);
        self.bulk(KitRequest::delete("/v4/bulk/tags"), &body, None)
            .await
    }

    /// `POST /v4/bulk/tags/subscribers`: tag many.
    ///
    /// # Errors
    /// 422 for an empty list; 413.
    pub async fn bulk_tag(
        &self,
        taggings: &[BulkTagging],
        callback_url: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<Subscriber>>, ApiError> {
        let body = body_with("taggings", json!(taggings), callback_url);
        self.bulk(
            KitRequest::post("/v4/bulk/tags/subscribers"),
            &body,
            Some("subscribers"),
        )
        .await
    }

    /// `DELETE /v4/bulk/tags/subscribers`: untag many; only failures come back.
    ///
    /// # Errors
    /// 422 for an empty list; 413.
    pub async fn bulk_untag(
        &self,
        taggings: &[BulkTagging],
        callback_url: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<Value>>, ApiError> {
        let body = body_with("taggings", json!(taggings), callback_url);
        self.bulk(KitRequest::delete("/v4/bulk/tags/subscribers"), &body, None)
            .await
    }

    /// `POST /v4/bulk/forms/subscribers`: add many to forms.
    ///
    /// # Errors
    /// 422 for an empty list; 413.
    pub async fn bulk_add_to_forms(
        &self,
        additions: &[BulkFormAddition],
        callback_url: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<Subscriber>>, ApiError> {
        let body = body_with("additions", json!(additions), callback_url);
        self.bulk(
            KitRequest::post("/v4/bulk/forms/subscribers"),
            &body,
            Some("subscribers"),
        )
        .await
    }

    /// `POST /v4/bulk/custom_fields`: create many.
    ///
    /// # Errors
    /// 422 for an empty list; 413.
    pub async fn bulk_create_custom_fields(
        &self,
        labels: &[&str],
        callback_url: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<CustomField>>, ApiError> {
        let items: Vec<Value> = labels.iter().map(|l| json!({ "label": l })).collect();
        let body = body_with("custom_fields", json!(items), callback_url);
        self.bulk(
            KitRequest::post("/v4/bulk/custom_fields"),
            &body,
            Some("custom_fields"),
        )
        .await
    }

    /// `POST /v4/bulk/custom_fields/subscribers`: set many values.
    ///
    /// # Errors
    /// 422 for an empty list; 413.
    pub async fn bulk_set_custom_field_values(
        &self,
        values: &[BulkCustomFieldValue],
        callback_url: Option<&str>,
    ) -> Result<BulkOutcome<BulkResult<CustomFieldValue>>, ApiError> {
        let body = body_with("custom_field_values", json!(values), callback_url);
        self.bulk(
            KitRequest::post("/v4/bulk/custom_fields/subscribers"),
            &body,
            Some("custom_field_values"),
        )
        .await
    }
}
