//! What the broker does when the person chose Deny on Kit's consent page.
//!
//! Kit sends `error=access_denied&state=…` to the callback. The pending install for that state
//! is consumed (only by the browser that started it: a stranger's forged denial leaves the
//! person's install usable), and the person goes back to the Kit page the App Store opened the
//! install from, with `success=true` removed, so Kit shows the app as not installed rather
//! than the broker showing a dead end.

use kit_oauth_core::{
    ConnectionStore, ConnectionStoreExt as _, CsrfState, PendingTake, Sha256Hash,
};

use crate::error::InstallError;
use crate::install::InstallFlow;

/// The outcome of a denied install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declined {
    /// The pending install was this browser's and is gone: send the person here (Kit's saved
    /// `redirect` without `success`).
    BackToKit(String),
    /// The state belongs to an install another browser started; it was left alone.
    OtherBrowser,
    /// No pending install has this state (never started here, already used, or purged).
    Unknown,
}

impl<E, S: ConnectionStore> InstallFlow<E, S> {
    /// Consumes the pending install `state` names, if this browser started it, and says where
    /// to send the person.
    ///
    /// # Errors
    /// A storage error.
    pub async fn declined(
        &self,
        state: &CsrfState,
        browser_binding: Option<&str>,
    ) -> Result<Declined, InstallError> {
        let binding = browser_binding.map(|b| Sha256Hash::of(b.as_bytes()));
        let taken = self
            .manager
            .inner
            .store
            .consume_pending(&state.fingerprint(), binding.as_ref())
            .await?;
        Ok(match taken {
            PendingTake::Taken(consumed) => {
                let mut url = consumed.record().kit_redirect.url().clone();
                let kept: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(name, _)| name != "success")
                    .map(|(name, value)| (name.into_owned(), value.into_owned()))
                    .collect();
                if kept.is_empty() {
                    url.set_query(None);
                } else {
                    url.query_pairs_mut().clear().extend_pairs(kept);
                }
                Declined::BackToKit(url.to_string())
            }
            PendingTake::OtherBrowser => Declined::OtherBrowser,
            PendingTake::Unknown => Declined::Unknown,
        })
    }
}
