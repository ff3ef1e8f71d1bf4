//! Kit API v4, typed: the calls an app makes with a connection's fresh token.
//!
//! [`KitClient::api`] gives a [`KitApi`] for one connection; every call goes through
//! [`KitClient::send`], so it gets the same bearer injection, forced refresh on "expired" and
//! 429/5xx retry rules as any other call. Paths, bodies, status codes and error strings follow
//! `docs/kit-api-v4.md` (built from Kit's OpenAPI spec and its SDKs' live-API tests).
//!
//! - Requests and responses are serde structs with Kit's field names; ids are newtypes
//!   ([`SubscriberId`], [`TagId`], …).
//! - Writes that Kit answers 201 for a new resource and 200 for an existing one return
//!   [`Saved`], which says which.
//! - Every list is a [`KitList`]: a lazy `Stream` of items or pages following `end_cursor`,
//!   with `per_page` and `include_total_count`.
//! - Failures are [`ApiError`]; [`KitErrorExt`] reads Kit's status and `errors` strings out of
//!   it (404 `Not Found`, 422 with its messages, 403, 413 for a full bulk queue).
//!
//! ```no_run
//! # async fn demo<S: kit_oauth_http::TokenSource + Sync>(
//! #     client: &kit_oauth_http::KitClient<S>,
//! #     connection: kit_oauth_core::ConnectionId,
//! # ) -> Result<(), kit_oauth_http::ApiError> {
//! use futures_util::TryStreamExt as _;
//! use kit_oauth_http::kit_api::{NewSubscriber, SubscriberFilter};
//!
//! let api = client.api(connection);
//! let saved = api.upsert_subscriber(&NewSubscriber::email("ada@example.com")).await?;
//! let tag = api.create_tag("customers").await?.into_inner();
//! api.tag_subscriber(tag.id, saved.value().subscriber.id).await?;
//! let everyone: Vec<_> = api
//!     .list_subscribers(&SubscriberFilter::default())
//!     .per_page(1000)
//!     .items()
//!     .try_collect()
//!     .await?;
//! # let _ = everyone;
//! # Ok(())
//! # }
//! ```

use http::StatusCode;
use kit_oauth_core::ConnectionId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{ApiError, KitClient, KitRequest, KitResponse, TokenSource};

mod account;
mod broadcasts;
mod budget;
mod bulk;
mod bulk_async;
mod catalog;
mod error;
mod fields;
mod filter;
mod forms;
mod ids;
mod list;
mod subscribers;
mod tags;
mod webhooks;

pub use account::{
    Account, AccountDetails, AccountTimezone, AccountUser, CreatorProfile, EmailStats, GrowthStats,
};
pub use broadcasts::{
    Broadcast, BroadcastFilter, BroadcastInput, BroadcastStats, EmailTemplateRef,
};
pub use budget::{KIT_LIMIT, KIT_WINDOW, RateBudget, SWEEP_ABOVE};
pub use bulk::{
    BulkCustomFieldValue, BulkFailure, BulkFormAddition, BulkOutcome, BulkResult, BulkSubscriber,
    BulkTagging, CustomFieldValue,
};
pub use bulk_async::{BulkCallbacks, BulkWaitError, PendingBulk};
pub use catalog::{EmailTemplate, NewPurchase, Product, Purchase, Segment};
pub use error::KitErrorExt;
pub use fields::CustomField;
pub use filter::{EngagementCount, FilterCondition, FilteredSubscriber};
pub use forms::{Form, FormFilter, MemberFilter, Sequence};
pub use ids::{
    BroadcastId, CustomFieldId, EmailTemplateId, FormId, PurchaseId, SegmentId, SequenceId,
    SubscriberId, TagId, WebhookId,
};
pub use list::{KitList, ListPage};
pub use subscribers::{
    NewSubscriber, SortField, SortOrder, Subscriber, SubscriberFilter, SubscriberState,
    SubscriberTag, SubscriberUpdate, Upserted,
};
pub use tags::Tag;
pub use webhooks::{Webhook, WebhookEvent};

/// Whether a write created the resource (Kit's 201), found it already there (200), or was
/// accepted for later processing (202: more than 10 custom fields at once).
#[derive(Debug, Clone, PartialEq)]
pub enum Saved<T> {
    /// 201: new.
    Created(T),
    /// 200: it existed (or the link was already there); nothing new was made.
    Existing(T),
    /// 202: accepted, applied asynchronously.
    Accepted(T),
}

impl<T> Saved<T> {
    /// The resource, however it was saved.
    pub fn into_inner(self) -> T {
        match self {
            Self::Created(v) | Self::Existing(v) | Self::Accepted(v) => v,
        }
    }
    /// The resource, borrowed.
    pub fn value(&self) -> &T {
        match self {
            Self::Created(v) | Self::Existing(v) | Self::Accepted(v) => v,
        }
    }
    /// Whether Kit answered 201.
    pub fn is_created(&self) -> bool {
        matches!(self, Self::Created(_))
    }

    fn from_status(status: StatusCode, value: T) -> Self {
        match status {
            StatusCode::CREATED => Self::Created(value),
            StatusCode::ACCEPTED => Self::Accepted(value),
            _ => Self::Existing(value),
        }
    }
}

/// Kit's API v4 for one connection; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct KitApi<'a, S> {
    client: &'a KitClient<S>,
    connection: ConnectionId,
}

impl<S: TokenSource> KitClient<S> {
    /// The typed API v4 for `connection`.
    pub fn api(&self, connection: ConnectionId) -> KitApi<'_, S> {
        KitApi {
            client: self,
            connection,
        }
    }
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// The connection this handle calls for.
    pub fn connection(&self) -> &ConnectionId {
        &self.connection
    }

    /// Through the client's one retry loop, within its rate budget when it has one
    /// ([`KitClient::with_rate_budget`]).
    async fn send(&self, request: KitRequest) -> Result<KitResponse, ApiError> {
        self.client.send(&self.connection, &request).await
    }

    /// Sends and reads the JSON body, unwrapping `{"<key>": T}` when a key is given.
    async fn call<T: DeserializeOwned>(
        &self,
        request: KitRequest,
        key: Option<&str>,
    ) -> Result<(StatusCode, T), ApiError> {
        let response = self.send(request).await?;
        let value = unwrap_key(&response, key)?;
        let parsed = serde_json::from_value(value).map_err(|e| protocol(&response, &e))?;
        Ok((response.status, parsed))
    }

    async fn saved<T: DeserializeOwned>(
        &self,
        request: KitRequest,
        key: &str,
    ) -> Result<Saved<T>, ApiError> {
        let (status, value) = self.call(request, Some(key)).await?;
        Ok(Saved::from_status(status, value))
    }

    /// A `204 No Content` call.
    async fn empty(&self, request: KitRequest) -> Result<(), ApiError> {
        self.send(request).await.map(drop)
    }

    fn list<T: DeserializeOwned + Send + 'a>(
        &self,
        request: KitRequest,
        items_key: &'static str,
    ) -> KitList<'a, S, T> {
        KitList::new(self.client, self.connection.clone(), request, items_key)
    }
}

fn protocol(response: &KitResponse, e: &dyn std::fmt::Display) -> ApiError {
    ApiError::Protocol {
        status: response.status.as_u16(),
        excerpt: format!("unexpected shape: {e}"),
    }
}

fn unwrap_key(response: &KitResponse, key: Option<&str>) -> Result<serde_json::Value, ApiError> {
    let mut value: serde_json::Value = response.json()?;
    match key {
        None => Ok(value),
        Some(key) => value
            .get_mut(key)
            .map(serde_json::Value::take)
            .ok_or_else(|| protocol(response, &format_args!("no `{key}` in the answer"))),
    }
}

/// A JSON body for `request`.
fn with_body<B: Serialize + ?Sized>(request: KitRequest, body: &B) -> Result<KitRequest, ApiError> {
    request.json(body)
}
