//! Tags (docs/kit-api-v4.md §4): CRUD, tagging and untagging by id or email, a tag's
//! subscribers.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{KitApi, KitList, MemberFilter, Saved, Subscriber, SubscriberId, TagId, with_body};
use crate::{ApiError, KitRequest, TokenSource};

/// Kit's tag object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Id.
    pub id: TagId,
    /// Name (unique per account, case-insensitively).
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// Subscribers with the tag, when listed with `include=subscriber_count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_count: Option<u64>,
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// `GET /v4/tags`, with `include=subscriber_count` when `counts`.
    pub fn list_tags(&self, counts: bool) -> KitList<'a, S, Tag> {
        let mut r = KitRequest::get("/v4/tags");
        if counts {
            r = r.query("include", "subscriber_count");
        }
        self.list(r, "tags")
    }

    /// `POST /v4/tags`: [`Saved::Existing`] when a tag of that name exists.
    ///
    /// # Errors
    /// 422 `Name can't be blank`.
    pub async fn create_tag(&self, name: &str) -> Result<Saved<Tag>, ApiError> {
        let r = with_body(KitRequest::post("/v4/tags"), &json!({ "name": name }))?;
        self.saved(r, "tag").await
    }

    /// `PUT /v4/tags/{id}`.
    ///
    /// # Errors
    /// 404; 422 for a blank name.
    pub async fn update_tag(&self, id: TagId, name: &str) -> Result<Tag, ApiError> {
        let r = with_body(
            KitRequest::put(format!("/v4/tags/{id}")),
            &json!({ "name": name }),
        )?;
        Ok(self.call(r, Some("tag")).await?.1)
    }

    /// `DELETE /v4/tags/{id}` (204).
    ///
    /// # Errors
    /// 404.
    pub async fn delete_tag(&self, id: TagId) -> Result<(), ApiError> {
        self.empty(KitRequest::delete(format!("/v4/tags/{id}")))
            .await
    }

    /// `POST /v4/tags/{tag}/subscribers/{id}`: [`Saved::Existing`] if already tagged.
    ///
    /// # Errors
    /// 404 for an unknown tag or subscriber.
    pub async fn tag_subscriber(
        &self,
        tag: TagId,
        subscriber: SubscriberId,
    ) -> Result<Saved<Subscriber>, ApiError> {
        let r = KitRequest::post(format!("/v4/tags/{tag}/subscribers/{subscriber}"));
        self.saved(with_body(r, &json!({}))?, "subscriber").await
    }

    /// `POST /v4/tags/{tag}/subscribers` with `{"email_address"}`.
    ///
    /// # Errors
    /// 404 for an unknown tag or email address.
    pub async fn tag_by_email(
        &self,
        tag: TagId,
        email: &str,
    ) -> Result<Saved<Subscriber>, ApiError> {
        let r = KitRequest::post(format!("/v4/tags/{tag}/subscribers"));
        self.saved(
            with_body(r, &json!({ "email_address": email }))?,
            "subscriber",
        )
        .await
    }

    /// `DELETE /v4/tags/{tag}/subscribers/{id}` (204).
    ///
    /// # Errors
    /// 404 for an unknown tag or subscriber.
    pub async fn untag_subscriber(
        &self,
        tag: TagId,
        subscriber: SubscriberId,
    ) -> Result<(), ApiError> {
        self.empty(KitRequest::delete(format!(
            "/v4/tags/{tag}/subscribers/{subscriber}"
        )))
        .await
    }

    /// `DELETE /v4/tags/{tag}/subscribers` with `{"email_address"}` in the body, as Kit's PHP
    /// SDK sends it.
    ///
    /// # Errors
    /// 404 for an unknown tag or email address.
    pub async fn untag_by_email(&self, tag: TagId, email: &str) -> Result<(), ApiError> {
        let r = KitRequest::delete(format!("/v4/tags/{tag}/subscribers"));
        self.empty(with_body(r, &json!({ "email_address": email }))?)
            .await
    }

    /// `GET /v4/tags/{tag}/subscribers` (`tagged_after`/`tagged_before` from the filter's
    /// `since`/`until`).
    pub fn tag_subscribers(&self, tag: TagId, filter: &MemberFilter) -> KitList<'a, S, Subscriber> {
        let r = filter.apply(
            KitRequest::get(format!("/v4/tags/{tag}/subscribers")),
            "tagged",
        );
        self.list(r, "subscribers")
    }
}
