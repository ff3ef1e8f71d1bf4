//! Forms and sequences (docs/kit-api-v4.md §6): list, add a subscriber by id or email, list
//! their subscribers.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    FormId, KitApi, KitList, Saved, SequenceId, Subscriber, SubscriberId, SubscriberState,
    with_body,
};
use crate::{ApiError, KitRequest, TokenSource};

/// Kit's form object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Form {
    /// Id.
    pub id: FormId,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: String,
    /// `embed` or `hosted`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `inline`, `modal`, … (`null` for hosted forms).
    #[serde(default)]
    pub format: Option<String>,
    /// Script URL to embed the form.
    #[serde(default)]
    pub embed_js: Option<String>,
    /// Page URL of the form.
    #[serde(default)]
    pub embed_url: Option<String>,
    /// Whether it is archived.
    #[serde(default)]
    pub archived: bool,
    /// Public uid.
    #[serde(default)]
    pub uid: Option<String>,
}

/// Kit's sequence object (the fields an app needs; unknown ones are ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sequence {
    /// Id.
    pub id: SequenceId,
    /// Name.
    pub name: String,
    /// Paused.
    #[serde(default)]
    pub hold: bool,
    /// Subscribers may go through it again.
    #[serde(default)]
    pub repeat: bool,
    /// Whether it accepts subscribers (adding by email to an inactive one is 422).
    #[serde(default)]
    pub active: bool,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Days it sends on.
    #[serde(default)]
    pub send_days: Vec<String>,
    /// Hour it sends at.
    #[serde(default)]
    pub send_hour: Option<u32>,
    /// Time zone of `send_hour`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Subscribers in it.
    #[serde(default)]
    pub subscriber_count: Option<u64>,
}

/// Filters of `GET /v4/forms`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormFilter {
    /// `active` (Kit's default), `archived`, `trashed` or `all`.
    pub status: Option<String>,
    /// `embed` or `hosted`.
    pub kind: Option<String>,
}

/// Filters of the subscriber lists of a tag, form or sequence. Dates are `yyyy-mm-dd`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberFilter {
    /// `None` = Kit's default (active only); `Some(None)` = every state.
    pub status: Option<Option<SubscriberState>>,
    /// Subscriber created after.
    pub created_after: Option<String>,
    /// Subscriber created before.
    pub created_before: Option<String>,
    /// Tagged / added after (`tagged_after` or `added_after`).
    pub since: Option<String>,
    /// Tagged / added before.
    pub until: Option<String>,
}

impl MemberFilter {
    pub(crate) fn apply(&self, mut r: KitRequest, verb: &str) -> KitRequest {
        match self.status {
            None => {}
            Some(None) => r = r.query("status", "all"),
            Some(Some(s)) => {
                let s = serde_json::to_value(s)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                r = r.query("status", s);
            }
        }
        let pairs = [
            ("created_after".to_owned(), &self.created_after),
            ("created_before".to_owned(), &self.created_before),
            (format!("{verb}_after"), &self.since),
            (format!("{verb}_before"), &self.until),
        ];
        for (name, value) in pairs {
            if let Some(v) = value {
                r = r.query(name, v.clone());
            }
        }
        r
    }
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// `GET /v4/forms`.
    pub fn list_forms(&self, filter: &FormFilter) -> KitList<'a, S, Form> {
        let mut r = KitRequest::get("/v4/forms");
        if let Some(s) = &filter.status {
            r = r.query("status", s.clone());
        }
        if let Some(k) = &filter.kind {
            r = r.query("type", k.clone());
        }
        self.list(r, "forms")
    }

    /// `POST /v4/forms/{form}/subscribers/{id}` with an optional referrer.
    ///
    /// # Errors
    /// 404 for an unknown form or subscriber.
    pub async fn add_to_form(
        &self,
        form: FormId,
        subscriber: SubscriberId,
        referrer: Option<&str>,
    ) -> Result<Saved<Subscriber>, ApiError> {
        let r = KitRequest::post(format!("/v4/forms/{form}/subscribers/{subscriber}"));
        let body = match referrer {
            Some(r) => json!({ "referrer": r }),
            None => json!({}),
        };
        self.saved(with_body(r, &body)?, "subscriber").await
    }

    /// `POST /v4/forms/{form}/subscribers` with `{"email_address","referrer"?}`.
    ///
    /// # Errors
    /// 404 for an unknown form or email address.
    pub async fn add_to_form_by_email(
        &self,
        form: FormId,
        email: &str,
        referrer: Option<&str>,
    ) -> Result<Saved<Subscriber>, ApiError> {
        let r = KitRequest::post(format!("/v4/forms/{form}/subscribers"));
        let mut body = json!({ "email_address": email });
        if let Some(referrer) = referrer {
            body["referrer"] = json!(referrer);
        }
        self.saved(with_body(r, &body)?, "subscriber").await
    }

    /// `GET /v4/forms/{form}/subscribers` (`added_after`/`added_before`).
    pub fn form_subscribers(
        &self,
        form: FormId,
        filter: &MemberFilter,
    ) -> KitList<'a, S, Subscriber> {
        let r = filter.apply(
            KitRequest::get(format!("/v4/forms/{form}/subscribers")),
            "added",
        );
        self.list(r, "subscribers")
    }

    /// `GET /v4/sequences`.
    pub fn list_sequences(&self) -> KitList<'a, S, Sequence> {
        self.list(KitRequest::get("/v4/sequences"), "sequences")
    }

    /// `POST /v4/sequences/{sequence}/subscribers/{id}`.
    ///
    /// # Errors
    /// 404 for an unknown sequence or subscriber.
    pub async fn add_to_sequence(
        &self,
        sequence: SequenceId,
        subscriber: SubscriberId,
    ) -> Result<Saved<Subscriber>, ApiError> {
        let r = KitRequest::post(format!("/v4/sequences/{sequence}/subscribers/{subscriber}"));
        self.saved(with_body(r, &json!({}))?, "subscriber").await
    }

    /// `POST /v4/sequences/{sequence}/subscribers` with `{"email_address"}`.
    ///
    /// # Errors
    /// 404; 422 `Sequence is inactive`.
    pub async fn add_to_sequence_by_email(
        &self,
        sequence: SequenceId,
        email: &str,
    ) -> Result<Saved<Subscriber>, ApiError> {
        let r = KitRequest::post(format!("/v4/sequences/{sequence}/subscribers"));
        self.saved(
            with_body(r, &json!({ "email_address": email }))?,
            "subscriber",
        )
        .await
    }

    /// `GET /v4/sequences/{sequence}/subscribers`.
    pub fn sequence_subscribers(
        &self,
        sequence: SequenceId,
        filter: &MemberFilter,
    ) -> KitList<'a, S, Subscriber> {
        let r = filter.apply(
            KitRequest::get(format!("/v4/sequences/{sequence}/subscribers")),
            "added",
        );
        self.list(r, "subscribers")
    }
}
