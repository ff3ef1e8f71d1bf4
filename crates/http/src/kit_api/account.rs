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

/// `GET /v4/account/creator_profile`'s `profile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatorProfile {
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// One-line description.
    #[serde(default)]
    pub byline: Option<String>,
    /// Longer description.
    #[serde(default)]
    pub bio: Option<String>,
    /// Avatar.
    #[serde(default)]
    pub image_url: Option<String>,
    /// Public profile page.
    #[serde(default)]
    pub profile_url: Option<String>,
}

/// `GET /v4/account/email_stats`'s `stats` (rates in percent). Kit documents more fields than
/// these; the rest are kept in `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailStats {
    /// Emails sent in the period.
    pub sent: u64,
    /// Emails clicked.
    pub clicked: u64,
    /// Emails opened.
    pub opened: u64,
    /// The period, e.g. `last_90`.
    pub email_stats_mode: String,
    /// Start of the period.
    pub starting: String,
    /// End of the period.
    pub ending: String,
    /// Opens per email sent, in %.
    #[serde(default)]
    pub open_rate: Option<f64>,
    /// Clicks per email sent, in %.
    #[serde(default)]
    pub click_rate: Option<f64>,
    /// Every other field Kit sends.
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// `GET /v4/account/growth_stats`'s `stats`; times are in the account's sending time zone
/// (`…-05:00`), not UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrowthStats {
    /// Subscribers who cancelled in the period.
    pub cancellations: u64,
    /// New minus cancelled (may be negative).
    pub net_new_subscribers: i64,
    /// Subscribers who joined in the period.
    pub new_subscribers: u64,
    /// Subscribers at the end of the period.
    pub subscribers: u64,
    /// Start of the period.
    pub starting: String,
    /// End of the period.
    pub ending: String,
}

#[derive(Serialize)]
struct Colors<'a> {
    colors: &'a [String],
}

impl<S: TokenSource + Sync> KitApi<'_, S> {
    /// `GET /v4/account/colors`: the account's brand colors (`#008000`).
    ///
    /// # Errors
    /// As [`crate::KitClient::send`].
    pub async fn account_colors(&self) -> Result<Vec<String>, ApiError> {
        Ok(self
            .call(KitRequest::get("/v4/account/colors"), Some("colors"))
            .await?
            .1)
    }

    /// `PUT /v4/account/colors`: replaces the colors (at most 10 hex codes).
    ///
    /// # Errors
    /// 422 `Colors <code> is not a valid hex color code.`; otherwise as
    /// [`crate::KitClient::send`].
    pub async fn set_account_colors(&self, colors: &[String]) -> Result<Vec<String>, ApiError> {
        let request = super::with_body(KitRequest::put("/v4/account/colors"), &Colors { colors })?;
        Ok(self.call(request, Some("colors")).await?.1)
    }

    /// `GET /v4/account/creator_profile`.
    ///
    /// # Errors
    /// 404 when the account has no creator profile; otherwise as [`crate::KitClient::send`].
    pub async fn creator_profile(&self) -> Result<CreatorProfile, ApiError> {
        Ok(self
            .call(
                KitRequest::get("/v4/account/creator_profile"),
                Some("profile"),
            )
            .await?
            .1)
    }

    /// `GET /v4/account/email_stats`: the last 90 days.
    ///
    /// # Errors
    /// As [`crate::KitClient::send`].
    pub async fn email_stats(&self) -> Result<EmailStats, ApiError> {
        Ok(self
            .call(KitRequest::get("/v4/account/email_stats"), Some("stats"))
            .await?
            .1)
    }

    /// `GET /v4/account/growth_stats` between two dates (`YYYY-MM-DD`, both inclusive); Kit's
    /// default is the last 90 days.
    ///
    /// # Errors
    /// 422 `Starting date is incorrectly formatted. Use YYYY-MM-DD.` (or `Ending …`);
    /// otherwise as [`crate::KitClient::send`].
    pub async fn growth_stats(
        &self,
        starting: Option<&str>,
        ending: Option<&str>,
    ) -> Result<GrowthStats, ApiError> {
        let mut request = KitRequest::get("/v4/account/growth_stats");
        if let Some(s) = starting {
            request = request.query("starting", s);
        }
        if let Some(e) = ending {
            request = request.query("ending", e);
        }
        Ok(self.call(request, Some("stats")).await?.1)
    }
}
