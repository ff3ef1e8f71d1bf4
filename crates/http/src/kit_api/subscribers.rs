//! Subscribers (docs/kit-api-v4.md §3): list with every filter, upsert by email, get, update,
//! unsubscribe, and a subscriber's tags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{KitApi, KitList, Saved, SubscriberId, TagId, with_body};
use crate::{ApiError, KitRequest, TokenSource};

/// A subscriber's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriberState {
    /// Receives email.
    Active,
    /// Not confirmed (double opt-in) or created inactive.
    Inactive,
    /// Email bounced.
    Bounced,
    /// Marked as spam.
    Complained,
    /// Unsubscribed.
    Cancelled,
}

impl SubscriberState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Bounced => "bounced",
            Self::Complained => "complained",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Kit's subscriber object. The extras appear only where Kit adds them: `canceled_at` on a
/// single get (or `include=canceled_at`), `added_at`/`referrer` in form and sequence lists,
/// `tagged_at` in tag lists, `tags` with `include=tags`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscriber {
    /// Id.
    pub id: SubscriberId,
    /// First name, if known.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Email address.
    pub email_address: String,
    /// State.
    pub state: SubscriberState,
    /// Creation time, `2023-02-17T11:43:55Z`.
    pub created_at: String,
    /// Custom field values by key (`null` when unset). Absent with `slim=true`.
    #[serde(default)]
    pub fields: BTreeMap<String, Option<String>>,
    /// When the subscriber unsubscribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canceled_at: Option<String>,
    /// When the subscriber was tagged (tag subscriber lists, tagging answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagged_at: Option<String>,
    /// When the subscriber was added (form and sequence lists and answers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_at: Option<String>,
    /// The form subscription's referrer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// The subscriber's tags, with `include=tags`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<SubscriberTag>>,
}

/// A tag as listed for a subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberTag {
    /// Tag id.
    pub id: TagId,
    /// Tag name.
    pub name: String,
    /// When it was applied (`GET /subscribers/{id}/tags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagged_at: Option<String>,
}

/// `POST /v4/subscribers`: create, or update the first name and fields of an existing one.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewSubscriber {
    /// The key of the upsert.
    pub email_address: String,
    /// First name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Initial state (Kit ignores it for an existing subscriber).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<SubscriberState>,
    /// Custom field values by key; more than 10 make Kit answer 202 and apply them later.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Option<String>>,
}

impl NewSubscriber {
    /// Just an email address.
    pub fn email(email: impl Into<String>) -> Self {
        Self {
            email_address: email.into(),
            ..Self::default()
        }
    }
    /// With a first name.
    #[must_use]
    pub fn first_name(mut self, name: impl Into<String>) -> Self {
        self.first_name = Some(name.into());
        self
    }
    /// With a custom field value.
    #[must_use]
    pub fn field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(key.into(), Some(value.into()));
        self
    }
}

/// The answer to an upsert: the subscriber, and Kit's warnings (unknown custom field keys are
/// ignored and reported here).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Upserted {
    /// The subscriber as saved.
    pub subscriber: Subscriber,
    /// Kit's warnings.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `PUT /v4/subscribers/{id}` (Kit does not change `state` this way: unsubscribe instead).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubscriberUpdate {
    /// New email address (422 `Email address has already been taken` if another has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    /// New first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Custom field values by key (`None` clears one).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Option<String>>,
}

/// Order of `GET /v4/subscribers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// Kit's default.
    Id,
    /// Last change.
    UpdatedAt,
    /// Unsubscription time; Kit requires `status=cancelled` with it.
    CancelledAt,
}

/// Sort direction (Kit's default: descending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// Filters of `GET /v4/subscribers`. Dates are `yyyy-mm-dd` (full ISO 8601 also works).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriberFilter {
    /// `None` = Kit's default (active only); `Some(None)` = every state (`status=all`).
    pub status: Option<Option<SubscriberState>>,
    /// Exact email address.
    pub email_address: Option<String>,
    /// Created after this date.
    pub created_after: Option<String>,
    /// Created before this date.
    pub created_before: Option<String>,
    /// Updated after this date.
    pub updated_after: Option<String>,
    /// Updated before this date.
    pub updated_before: Option<String>,
    /// Order.
    pub sort_field: Option<SortField>,
    /// Direction.
    pub sort_order: Option<SortOrder>,
    /// Extras: `attribution`, `tags`, `location`, `canceled_at`.
    pub include: Vec<String>,
    /// Leave custom fields out.
    pub slim: bool,
}

impl SubscriberFilter {
    fn apply(&self, mut r: KitRequest) -> KitRequest {
        match self.status {
            None => {}
            Some(None) => r = r.query("status", "all"),
            Some(Some(s)) => r = r.query("status", s.as_str()),
        }
        let dates = [
            ("email_address", &self.email_address),
            ("created_after", &self.created_after),
            ("created_before", &self.created_before),
            ("updated_after", &self.updated_after),
            ("updated_before", &self.updated_before),
        ];
        for (name, value) in dates {
            if let Some(v) = value {
                r = r.query(name, v.clone());
            }
        }
        if let Some(f) = self.sort_field {
            let f = match f {
                SortField::Id => "id",
                SortField::UpdatedAt => "updated_at",
                SortField::CancelledAt => "cancelled_at",
            };
            r = r.query("sort_field", f);
        }
        if let Some(o) = self.sort_order {
            r = r.query(
                "sort_order",
                if o == SortOrder::Asc { "asc" } else { "desc" },
            );
        }
        if !self.include.is_empty() {
            r = r.query("include", self.include.join(","));
        }
        if self.slim {
            r = r.query("slim", "true");
        }
        r
    }
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// `GET /v4/subscribers`.
    pub fn list_subscribers(&self, filter: &SubscriberFilter) -> KitList<'a, S, Subscriber> {
        self.list(
            filter.apply(KitRequest::get("/v4/subscribers")),
            "subscribers",
        )
    }

    /// `POST /v4/subscribers`: upsert by email. [`Saved::Created`] for a new subscriber,
    /// [`Saved::Existing`] when the email was known (only the first name and fields change).
    ///
    /// # Errors
    /// 422 `Email address is invalid`; otherwise as [`crate::KitClient::send`].
    pub async fn upsert_subscriber(&self, s: &NewSubscriber) -> Result<Saved<Upserted>, ApiError> {
        let (status, v) = self
            .call(with_body(KitRequest::post("/v4/subscribers"), s)?, None)
            .await?;
        Ok(Saved::from_status(status, v))
    }

    /// `GET /v4/subscribers/{id}`.
    ///
    /// # Errors
    /// 404 for an unknown id.
    pub async fn subscriber(&self, id: SubscriberId) -> Result<Subscriber, ApiError> {
        let r = KitRequest::get(format!("/v4/subscribers/{id}"));
        Ok(self.call(r, Some("subscriber")).await?.1)
    }

    /// `PUT /v4/subscribers/{id}`.
    ///
    /// # Errors
    /// 404; 422 `Email address has already been taken` or `Email address is invalid`.
    pub async fn update_subscriber(
        &self,
        id: SubscriberId,
        update: &SubscriberUpdate,
    ) -> Result<Saved<Upserted>, ApiError> {
        let r = with_body(KitRequest::put(format!("/v4/subscribers/{id}")), update)?;
        let (status, v) = self.call(r, None).await?;
        Ok(Saved::from_status(status, v))
    }

    /// `POST /v4/subscribers/{id}/unsubscribe` (204).
    ///
    /// # Errors
    /// 404 for an unknown id.
    pub async fn unsubscribe(&self, id: SubscriberId) -> Result<(), ApiError> {
        let r = KitRequest::post(format!("/v4/subscribers/{id}/unsubscribe"));
        self.empty(with_body(r, &serde_json::json!({}))?).await
    }

    /// `GET /v4/subscribers/{id}/tags`.
    pub fn subscriber_tags(&self, id: SubscriberId) -> KitList<'a, S, SubscriberTag> {
        self.list(
            KitRequest::get(format!("/v4/subscribers/{id}/tags")),
            "tags",
        )
    }
}
