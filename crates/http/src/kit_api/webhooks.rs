//! Legacy webhooks `/v4/webhooks` (docs/kit-api-v4.md §8): list, create, delete, with Kit's
//! event names as an enum.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::{CustomFieldId, FormId, KitApi, KitList, SequenceId, TagId, WebhookId, with_body};
use crate::{ApiError, KitRequest, TokenSource};

/// A legacy webhook event and its parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookEvent {
    /// `subscriber.subscriber_activate`.
    SubscriberActivate,
    /// `subscriber.subscriber_unsubscribe`.
    SubscriberUnsubscribe,
    /// `subscriber.subscriber_bounce`.
    SubscriberBounce,
    /// `subscriber.subscriber_complain`.
    SubscriberComplain,
    /// `subscriber.form_subscribe` for one form.
    FormSubscribe(FormId),
    /// `subscriber.course_subscribe` for one sequence.
    CourseSubscribe(SequenceId),
    /// `subscriber.course_complete` for one sequence.
    CourseComplete(SequenceId),
    /// `subscriber.link_click` for one URL (`initiator_value`).
    LinkClick(String),
    /// `subscriber.product_purchase` for one product.
    ProductPurchase(u64),
    /// `subscriber.tag_add` for one tag.
    TagAdd(TagId),
    /// `subscriber.tag_remove` for one tag.
    TagRemove(TagId),
    /// `purchase.purchase_create`.
    PurchaseCreate,
    /// `custom_field.field_created`.
    FieldCreated,
    /// `custom_field.field_deleted`.
    FieldDeleted,
    /// `custom_field.field_value_updated` for one field.
    FieldValueUpdated(CustomFieldId),
}

impl WebhookEvent {
    /// The documented name, with its prefix (`subscriber.tag_add`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::SubscriberActivate => "subscriber.subscriber_activate",
            Self::SubscriberUnsubscribe => "subscriber.subscriber_unsubscribe",
            Self::SubscriberBounce => "subscriber.subscriber_bounce",
            Self::SubscriberComplain => "subscriber.subscriber_complain",
            Self::FormSubscribe(_) => "subscriber.form_subscribe",
            Self::CourseSubscribe(_) => "subscriber.course_subscribe",
            Self::CourseComplete(_) => "subscriber.course_complete",
            Self::LinkClick(_) => "subscriber.link_click",
            Self::ProductPurchase(_) => "subscriber.product_purchase",
            Self::TagAdd(_) => "subscriber.tag_add",
            Self::TagRemove(_) => "subscriber.tag_remove",
            Self::PurchaseCreate => "purchase.purchase_create",
            Self::FieldCreated => "custom_field.field_created",
            Self::FieldDeleted => "custom_field.field_deleted",
            Self::FieldValueUpdated(_) => "custom_field.field_value_updated",
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({ "name": self.name() });
        match self {
            Self::FormSubscribe(id) => v["form_id"] = json!(id),
            Self::CourseSubscribe(id) | Self::CourseComplete(id) => v["sequence_id"] = json!(id),
            Self::LinkClick(url) => v["initiator_value"] = json!(url),
            Self::ProductPurchase(id) => v["product_id"] = json!(id),
            Self::TagAdd(id) | Self::TagRemove(id) => v["tag_id"] = json!(id),
            Self::FieldValueUpdated(id) => v["custom_field_id"] = json!(id),
            _ => {}
        }
        v
    }

    /// Reads Kit's echo (`{"name":"tag_add","tag_id":44}`, prefix dropped) or the request form.
    fn from_json(m: &Map<String, Value>) -> Result<Self, String> {
        let full = m.get("name").and_then(Value::as_str).unwrap_or_default();
        let name = full.rsplit('.').next().unwrap_or_default();
        let num = |key: &str| -> Result<u64, String> {
            m.get(key)
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
                .ok_or_else(|| format!("event {name} without a numeric {key}"))
        };
        // Kit's PHP SDK names the sequence parameter `course_id`.
        let sequence = || {
            num("sequence_id")
                .or_else(|_| num("course_id"))
                .map(SequenceId)
        };
        Ok(match name {
            "subscriber_activate" => Self::SubscriberActivate,
            "subscriber_unsubscribe" => Self::SubscriberUnsubscribe,
            "subscriber_bounce" => Self::SubscriberBounce,
            "subscriber_complain" => Self::SubscriberComplain,
            "form_subscribe" => Self::FormSubscribe(FormId(num("form_id")?)),
            "course_subscribe" => Self::CourseSubscribe(sequence()?),
            "course_complete" => Self::CourseComplete(sequence()?),
            "link_click" => Self::LinkClick(
                m.get("initiator_value")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            "product_purchase" => Self::ProductPurchase(num("product_id")?),
            "tag_add" => Self::TagAdd(TagId(num("tag_id")?)),
            "tag_remove" => Self::TagRemove(TagId(num("tag_id")?)),
            "purchase_create" => Self::PurchaseCreate,
            "field_created" => Self::FieldCreated,
            "field_deleted" => Self::FieldDeleted,
            "field_value_updated" => {
                Self::FieldValueUpdated(CustomFieldId(num("custom_field_id")?))
            }
            other => return Err(format!("unknown webhook event {other:?}")),
        })
    }
}

impl Serialize for WebhookEvent {
    fn serialize<Z: Serializer>(&self, s: Z) -> Result<Z::Ok, Z::Error> {
        self.to_json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for WebhookEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Map::deserialize(d)?;
        Self::from_json(&m).map_err(serde::de::Error::custom)
    }
}

/// Kit's legacy webhook object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Id.
    pub id: WebhookId,
    /// The account it belongs to.
    #[serde(default)]
    pub account_id: Option<u64>,
    /// The event.
    pub event: WebhookEvent,
    /// Where Kit POSTs.
    pub target_url: String,
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// `GET /v4/webhooks`.
    pub fn list_webhooks(&self) -> KitList<'a, S, Webhook> {
        self.list(KitRequest::get("/v4/webhooks"), "webhooks")
    }

    /// `POST /v4/webhooks` (201).
    ///
    /// # Errors
    /// 422 `` `event` and `target` parameters must be provided ``.
    pub async fn create_webhook(
        &self,
        target_url: &str,
        event: &WebhookEvent,
    ) -> Result<Webhook, ApiError> {
        let body = json!({ "target_url": target_url, "event": event });
        let r = with_body(KitRequest::post("/v4/webhooks"), &body)?;
        Ok(self.call(r, Some("webhook")).await?.1)
    }

    /// `DELETE /v4/webhooks/{id}` (204).
    ///
    /// # Errors
    /// 404; 422 `Unable to destroy the webhook.`
    pub async fn delete_webhook(&self, id: WebhookId) -> Result<(), ApiError> {
        self.empty(KitRequest::delete(format!("/v4/webhooks/{id}")))
            .await
    }
}
