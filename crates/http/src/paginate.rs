//! Cursor pagination over [`KitClient`] (`after`, `per_page`, `pagination.end_cursor`).

use std::marker::PhantomData;

use kit_oauth_core::ConnectionId;
use serde::de::DeserializeOwned;

use crate::api_error::ApiError;
use crate::kit_client::KitClient;
use crate::redact::excerpt;
use crate::request::KitRequest;
use crate::token_source::TokenSource;

impl<S: TokenSource> KitClient<S> {
    /// Walks a cursor-paginated list (`after`, `per_page`, `pagination.end_cursor`,
    /// `pagination.has_next_page`); `items_key` names the array (`subscribers`, `tags`, …).
    pub fn paginate<T: DeserializeOwned>(
        &self,
        connection: ConnectionId,
        request: KitRequest,
        items_key: impl Into<String>,
        per_page: Option<u32>,
    ) -> Paginator<'_, S, T> {
        Paginator {
            client: self,
            connection,
            request,
            items_key: items_key.into(),
            per_page,
            after: None,
            done: false,
            _items: PhantomData,
        }
    }
}

/// Kit's `pagination` object.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct Pagination {
    /// Whether an earlier page exists.
    pub has_previous_page: bool,
    /// Whether a later page exists.
    pub has_next_page: bool,
    /// Cursor of the first item.
    pub start_cursor: Option<String>,
    /// Cursor of the last item: the next page's `after`.
    pub end_cursor: Option<String>,
    /// Page size.
    pub per_page: Option<u32>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// The cursors.
    pub pagination: Pagination,
}

/// Iterates the pages of a list; see [`KitClient::paginate`].
#[derive(Debug)]
pub struct Paginator<'a, S, T> {
    client: &'a KitClient<S>,
    connection: ConnectionId,
    request: KitRequest,
    items_key: String,
    per_page: Option<u32>,
    after: Option<String>,
    done: bool,
    _items: PhantomData<fn() -> T>,
}

impl<S: TokenSource, T: DeserializeOwned> Paginator<'_, S, T> {
    /// The next page, or `None` after the last one.
    ///
    /// # Errors
    /// [`ApiError`] from the call; [`ApiError::Protocol`] when the body lacks the items or
    /// the pagination, or a server claims a next page without a new cursor (which would
    /// otherwise loop forever).
    pub async fn next_page(&mut self) -> Result<Option<Page<T>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let mut request = self.request.clone();
        if let Some(n) = self.per_page {
            request = request.set_query("per_page", n.to_string());
        }
        if let Some(after) = &self.after {
            request = request.set_query("after", after.clone());
        }
        let response = self.client.send(&self.connection, &request).await;
        let response = response.inspect_err(|_| self.done = true)?;
        let mut value: serde_json::Value = response.json()?;
        let protocol = |what: &str| ApiError::Protocol {
            status: response.status.as_u16(),
            excerpt: what.to_owned(),
        };
        let items = value
            .get_mut(&self.items_key)
            .map(serde_json::Value::take)
            .ok_or_else(|| protocol("the list is missing from the page"))?;
        let items: Vec<T> = serde_json::from_value(items).map_err(|e| ApiError::Protocol {
            status: response.status.as_u16(),
            excerpt: excerpt(e.to_string().as_bytes(), &[]),
        })?;
        let pagination: Pagination = value
            .get_mut("pagination")
            .map(serde_json::Value::take)
            .map(serde_json::from_value)
            .transpose()
            .map_err(|_| protocol("the pagination object is malformed"))?
            .unwrap_or_default();
        if pagination.has_next_page {
            match &pagination.end_cursor {
                Some(cursor) if Some(cursor) != self.after.as_ref() => {
                    self.after = Some(cursor.clone());
                }
                _ => {
                    self.done = true;
                    return Err(protocol(
                        "has_next_page without a new end_cursor; stopping to avoid a loop",
                    ));
                }
            }
        } else {
            self.done = true;
        }
        Ok(Some(Page { items, pagination }))
    }

    /// Every remaining item, stopping with an error past `max_items`.
    ///
    /// # Errors
    /// As [`Paginator::next_page`], and [`ApiError::InvalidRequest`] past `max_items`.
    pub async fn collect_all(mut self, max_items: usize) -> Result<Vec<T>, ApiError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page.items);
            if all.len() > max_items {
                return Err(ApiError::InvalidRequest(format!(
                    "the list has more than {max_items} items"
                )));
            }
        }
        Ok(all)
    }
}
