//! Custom fields (docs/kit-api-v4.md §5): CRUD. The `key` follows the label; `name` does not.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{CustomFieldId, KitApi, KitList, Saved, with_body};
use crate::{ApiError, KitRequest, TokenSource};

/// Kit's custom field object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomField {
    /// Id.
    pub id: CustomFieldId,
    /// Internal name, `ck_field_1_last_name`.
    pub name: String,
    /// The key used in a subscriber's `fields`, `last_name`.
    pub key: String,
    /// The label, `Last name`.
    pub label: String,
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// `GET /v4/custom_fields`.
    pub fn list_custom_fields(&self) -> KitList<'a, S, CustomField> {
        self.list(KitRequest::get("/v4/custom_fields"), "custom_fields")
    }

    /// `POST /v4/custom_fields`: [`Saved::Existing`] when the label exists.
    ///
    /// # Errors
    /// 422 `Label can't be blank`.
    pub async fn create_custom_field(&self, label: &str) -> Result<Saved<CustomField>, ApiError> {
        let r = with_body(
            KitRequest::post("/v4/custom_fields"),
            &json!({ "label": label }),
        )?;
        self.saved(r, "custom_field").await
    }

    /// `PUT /v4/custom_fields/{id}`: relabel.
    ///
    /// # Errors
    /// 404; 422 for a blank label.
    pub async fn update_custom_field(
        &self,
        id: CustomFieldId,
        label: &str,
    ) -> Result<CustomField, ApiError> {
        let r = KitRequest::put(format!("/v4/custom_fields/{id}"));
        Ok(self
            .call(
                with_body(r, &json!({ "label": label }))?,
                Some("custom_field"),
            )
            .await?
            .1)
    }

    /// `DELETE /v4/custom_fields/{id}` (204).
    ///
    /// # Errors
    /// 404; 422 `Unable to destroy the custom field.`
    pub async fn delete_custom_field(&self, id: CustomFieldId) -> Result<(), ApiError> {
        self.empty(KitRequest::delete(format!("/v4/custom_fields/{id}")))
            .await
    }
}
