//! `GET /v4/account` (docs/kit-api-v4.md §2), whole: [`crate::KitClient::account`] reads only
//! what identifies the account; apps also want the plan, the sender address and the time zone.

use serde::{Deserialize, Serialize};

use super::KitApi;
use crate::{ApiError, KitRequest, TokenSource};

/// The user who installed the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountUser {
    /// Login email.
    pub email: String,
    /// User id.
    pub id: u64,
}

/// The account's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountTimezone {
    /// IANA name, `America/New_York`.
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub friendly_name: Option<String>,
    /// `-05:00`.
    #[serde(default)]
    pub utc_offset: Option<String>,
}

/// The Kit account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDetails {
    /// Account id.
    pub id: u64,
    /// Account name.
    pub name: String,
    /// Plan, e.g. `creator`.
    #[serde(default)]
    pub plan_type: Option<String>,
    /// Primary sender address.
    #[serde(default)]
    pub primary_email_address: Option<String>,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<String>,
    /// Time zone.
    #[serde(default)]
    pub timezone: Option<AccountTimezone>,
}

/// `{"user":{…},"account":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The user.
    pub user: AccountUser,
    /// The account.
    pub account: AccountDetails,
}

impl<S: TokenSource + Sync> KitApi<'_, S> {
    /// `GET /v4/account`.
    ///
    /// # Errors
    /// As [`crate::KitClient::send`].
    pub async fn account(&self) -> Result<Account, ApiError> {
        Ok(self.call(KitRequest::get("/v4/account"), None).await?.1)
    }
}
