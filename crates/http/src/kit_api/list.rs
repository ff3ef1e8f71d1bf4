//! Lists as lazy streams following Kit's cursors (docs/kit-api-v4.md §1): a page is fetched
//! only when the stream is polled past the previous one, so `take(n)` costs only the pages it
//! needs.

use futures_util::stream::{self, Stream, StreamExt as _, TryStreamExt as _};
use kit_oauth_core::ConnectionId;
use serde::de::DeserializeOwned;

use crate::{ApiError, KitClient, KitRequest, Pagination, TokenSource};

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage<T> {
    /// The items, in Kit's order.
    pub items: Vec<T>,
    /// Kit's cursors.
    pub pagination: Pagination,
    /// All items matching the filter, when `include_total_count` was asked for.
    pub total_count: Option<u64>,
}

/// A list request; see [`KitList::items`] and [`KitList::pages`].
#[derive(Debug)]
#[must_use]
pub struct KitList<'a, S, T> {
    client: &'a KitClient<S>,
    connection: ConnectionId,
    request: KitRequest,
    items_key: &'static str,
    per_page: Option<u32>,
    total: bool,
    after: Option<String>,
    _items: std::marker::PhantomData<fn() -> T>,
}

struct Cursor<'a, S> {
    client: &'a KitClient<S>,
    connection: ConnectionId,
    request: KitRequest,
    items_key: &'static str,
    after: Option<String>,
    done: bool,
}

impl<'a, S: TokenSource + Sync, T: DeserializeOwned + Send + 'a> KitList<'a, S, T> {
    pub(crate) fn new(
        client: &'a KitClient<S>,
        connection: ConnectionId,
        request: KitRequest,
        items_key: &'static str,
    ) -> Self {
        Self {
            client,
            connection,
            request,
            items_key,
            per_page: None,
            total: false,
            after: None,
            _items: std::marker::PhantomData,
        }
    }

    /// Items per page: Kit's default is 500, its maximum 1000.
    pub fn per_page(mut self, n: u32) -> Self {
        self.per_page = Some(n);
        self
    }

    /// Asks Kit for `total_count` (on every page, see [`ListPage::total_count`]).
    pub fn include_total_count(mut self, on: bool) -> Self {
        self.total = on;
        self
    }

    /// Starts after this cursor (an `end_cursor` from an earlier page).
    pub fn after(mut self, cursor: impl Into<String>) -> Self {
        self.after = Some(cursor.into());
        self
    }

    /// The pages, fetched lazily until `has_next_page` is false.
    pub fn pages(self) -> impl Stream<Item = Result<ListPage<T>, ApiError>> + 'a {
        let mut request = self.request;
        if let Some(n) = self.per_page {
            request = request.query("per_page", n.to_string());
        }
        if self.total {
            request = request.query("include_total_count", "true");
        }
        let cursor = Cursor {
            client: self.client,
            connection: self.connection,
            request,
            items_key: self.items_key,
            after: self.after,
            done: false,
        };
        stream::try_unfold(cursor, |mut c| async move {
            if c.done {
                return Ok(None);
            }
            let page = c.next::<T>().await?;
            Ok(Some((page, c)))
        })
    }

    /// Every item, page after page.
    pub fn items(self) -> impl Stream<Item = Result<T, ApiError>> + 'a {
        self.pages()
            .map_ok(|page| stream::iter(page.items.into_iter().map(Ok)))
            .try_flatten()
    }

    /// The first page only.
    ///
    /// # Errors
    /// As [`KitClient::send`], or [`ApiError::Protocol`] for a malformed page.
    pub async fn first_page(self) -> Result<ListPage<T>, ApiError> {
        let pages = self.pages();
        futures_util::pin_mut!(pages);
        match pages.next().await {
            Some(page) => page,
            None => Err(ApiError::Protocol {
                status: 200,
                excerpt: "no page".to_owned(),
            }),
        }
    }
}

impl<S: TokenSource + Sync> Cursor<'_, S> {
    async fn next<T: DeserializeOwned>(&mut self) -> Result<ListPage<T>, ApiError> {
        let mut request = self.request.clone();
        if let Some(after) = &self.after {
            request = request.query("after", after.clone());
        }
        let response = self.client.send(&self.connection, &request).await;
        let response = response.inspect_err(|_| self.done = true)?;
        let protocol = |what: String| ApiError::Protocol {
            status: response.status.as_u16(),
            excerpt: what,
        };
        let mut value: serde_json::Value = response.json()?;
        let items = value
            .get_mut(self.items_key)
            .map(serde_json::Value::take)
            .ok_or_else(|| protocol(format!("no `{}` list in the page", self.items_key)))?;
        let items: Vec<T> =
            serde_json::from_value(items).map_err(|e| protocol(format!("unexpected item: {e}")))?;
        let pagination: Pagination = value
            .get_mut("pagination")
            .map(serde_json::Value::take)
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| protocol(format!("malformed pagination: {e}")))?
            .unwrap_or_default();
        let total_count = value.get("total_count").and_then(serde_json::Value::as_u64);
        match (&pagination.end_cursor, pagination.has_next_page) {
            (Some(cursor), true) if Some(cursor) != self.after.as_ref() => {
                self.after = Some(cursor.clone());
            }
            (_, true) => {
                self.done = true;
                return Err(protocol(
                    "has_next_page without a new end_cursor; stopping to avoid a loop".into(),
                ));
            }
            (_, false) => self.done = true,
        }
        Ok(ListPage {
            items,
            pagination,
            total_count,
        })
    }
}
