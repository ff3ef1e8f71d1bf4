//! Broadcasts (docs/kit-api-v4.md §7): CRUD and stats.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{BroadcastId, EmailTemplateId, KitApi, KitList, with_body};
use crate::{ApiError, KitRequest, TokenSource};

/// The template a broadcast uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTemplateRef {
    /// Id.
    pub id: EmailTemplateId,
    /// Name.
    pub name: String,
}

/// Kit's broadcast object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    /// Id.
    pub id: BroadcastId,
    /// Creation time.
    pub created_at: String,
    /// Subject line.
    #[serde(default)]
    pub subject: Option<String>,
    /// Preview text.
    #[serde(default)]
    pub preview_text: Option<String>,
    /// Internal description.
    #[serde(default)]
    pub description: Option<String>,
    /// HTML content (left out with `slim`).
    #[serde(default)]
    pub content: Option<String>,
    /// Whether it is published on the creator's profile.
    #[serde(default)]
    pub public: Option<bool>,
    /// Publication time.
    #[serde(default)]
    pub published_at: Option<String>,
    /// Scheduled send time; `null` for a draft.
    #[serde(default)]
    pub send_at: Option<String>,
    /// Sender address.
    #[serde(default)]
    pub email_address: Option<String>,
    /// Template.
    #[serde(default)]
    pub email_template: Option<EmailTemplateRef>,
    /// Recipients: one group (`all`|`any`|`none`) of `{type: segment|tag, ids}`.
    #[serde(default)]
    pub subscriber_filter: Option<Value>,
    /// `draft`, `scheduled`, `sending`, `completed` or `aborted`.
    #[serde(default)]
    pub status: Option<String>,
    /// Public URL.
    #[serde(default)]
    pub public_url: Option<String>,
}

/// Writable fields of a broadcast; unset fields are left out of the body.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BroadcastInput {
    /// Subject line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Preview text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_text: Option<String>,
    /// Internal description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// HTML content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Publish on the profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    /// ISO 8601 send time (no zone = UTC); `Some(None)` sends `null` (a draft).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_at: Option<Option<String>>,
    /// Sender address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    /// Template (422 `Email template not found` for an unknown one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_template_id: Option<EmailTemplateId>,
    /// Recipients, as Kit's JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscriber_filter: Option<Value>,
}

/// Filters of `GET /v4/broadcasts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BroadcastFilter {
    /// One status.
    pub status: Option<String>,
    /// Sent after this date.
    pub sent_after: Option<String>,
    /// Sent before this date.
    pub sent_before: Option<String>,
    /// Leave the content out.
    pub slim: bool,
}

/// `{"id","stats":{…}}` of `GET /v4/broadcasts/{id}/stats` and `/v4/broadcasts/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastStats {
    /// The broadcast.
    pub id: BroadcastId,
    /// Kit's figures (`recipients`, `open_rate` in %, `emails_opened`, `click_rate`,
    /// `unsubscribes`, `total_clicks`, `status`, `progress`, …), kept as sent.
    pub stats: Map<String, Value>,
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// `GET /v4/broadcasts`.
    pub fn list_broadcasts(&self, filter: &BroadcastFilter) -> KitList<'a, S, Broadcast> {
        let mut r = KitRequest::get("/v4/broadcasts");
        for (k, v) in [
            ("status", &filter.status),
            ("sent_after", &filter.sent_after),
            ("sent_before", &filter.sent_before),
        ] {
            if let Some(v) = v {
                r = r.query(k, v.clone());
            }
        }
        if filter.slim {
            r = r.query("slim", "true");
        }
        self.list(r, "broadcasts")
    }

    /// `POST /v4/broadcasts` (201).
    ///
    /// # Errors
    /// 403; 422 `Email template not found` or an invalid filter.
    pub async fn create_broadcast(&self, input: &BroadcastInput) -> Result<Broadcast, ApiError> {
        let r = with_body(KitRequest::post("/v4/broadcasts"), input)?;
        Ok(self.call(r, Some("broadcast")).await?.1)
    }

    /// `GET /v4/broadcasts/{id}`.
    ///
    /// # Errors
    /// 404.
    pub async fn broadcast(&self, id: BroadcastId) -> Result<Broadcast, ApiError> {
        let r = KitRequest::get(format!("/v4/broadcasts/{id}"));
        Ok(self.call(r, Some("broadcast")).await?.1)
    }

    /// `PUT /v4/broadcasts/{id}`.
    ///
    /// # Errors
    /// 404; 422 `Broadcast is already sending.`
    pub async fn update_broadcast(
        &self,
        id: BroadcastId,
        input: &BroadcastInput,
    ) -> Result<Broadcast, ApiError> {
        let r = with_body(KitRequest::put(format!("/v4/broadcasts/{id}")), input)?;
        Ok(self.call(r, Some("broadcast")).await?.1)
    }

    /// `DELETE /v4/broadcasts/{id}` (204).
    ///
    /// # Errors
    /// 404; 422 `Broadcast is already sending.`
    pub async fn delete_broadcast(&self, id: BroadcastId) -> Result<(), ApiError> {
        self.empty(KitRequest::delete(format!("/v4/broadcasts/{id}")))
            .await
    }

    /// `GET /v4/broadcasts/{id}/stats`.
    ///
    /// # Errors
    /// 404.
    pub async fn broadcast_stats(&self, id: BroadcastId) -> Result<BroadcastStats, ApiError> {
        let r = KitRequest::get(format!("/v4/broadcasts/{id}/stats"));
        Ok(self.call(r, Some("broadcast")).await?.1)
    }

    /// `GET /v4/broadcasts/stats`: every broadcast's stats, paged.
    pub fn list_broadcast_stats(&self) -> KitList<'a, S, BroadcastStats> {
        self.list(KitRequest::get("/v4/broadcasts/stats"), "broadcasts")
    }
}
