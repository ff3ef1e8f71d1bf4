//! Purchases, segments and email templates (docs/kit-api-v4.md §10).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{EmailTemplateId, KitApi, KitList, PurchaseId, SegmentId, SubscriberId, with_body};
use crate::{ApiError, KitRequest, TokenSource};

/// A purchased product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Name.
    pub name: String,
    /// The product's id in the app.
    pub pid: String,
    /// The line item's id in the app.
    pub lid: String,
    /// Quantity.
    pub quantity: u32,
    /// Unit price.
    pub unit_price: f64,
    /// SKU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
}

/// Kit's purchase object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Purchase {
    /// Id.
    pub id: PurchaseId,
    /// The app's transaction id.
    pub transaction_id: String,
    /// `paid`, …
    #[serde(default)]
    pub status: Option<String>,
    /// Buyer.
    pub email_address: String,
    /// The buyer's subscriber.
    #[serde(default)]
    pub subscriber_id: Option<SubscriberId>,
    /// ISO 4217 code.
    pub currency: String,
    /// Time of the purchase.
    #[serde(default)]
    pub transaction_time: Option<String>,
    /// Subtotal.
    #[serde(default)]
    pub subtotal: Option<f64>,
    /// Discount.
    #[serde(default)]
    pub discount: Option<f64>,
    /// Tax.
    #[serde(default)]
    pub tax: Option<f64>,
    /// Total.
    #[serde(default)]
    pub total: Option<f64>,
    /// Products.
    #[serde(default)]
    pub products: Vec<Product>,
}

/// `POST /v4/purchases` (sent wrapped in `purchase`, as the spec documents).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NewPurchase {
    /// The app's transaction id.
    pub transaction_id: String,
    /// Buyer.
    pub email_address: String,
    /// Buyer's first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// ISO 4217 code.
    pub currency: String,
    /// ISO 8601 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_time: Option<String>,
    /// Subtotal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subtotal: Option<f64>,
    /// Tax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tax: Option<f64>,
    /// Shipping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping: Option<f64>,
    /// Discount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discount: Option<f64>,
    /// Total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// `paid`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Products.
    pub products: Vec<Product>,
}

/// Kit's segment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Id.
    pub id: SegmentId,
    /// Name.
    pub name: String,
    /// Creation time.
    pub created_at: String,
}

/// Kit's email template object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTemplate {
    /// Id.
    pub id: EmailTemplateId,
    /// Name.
    pub name: String,
    /// Whether it is the account's default.
    #[serde(default)]
    pub is_default: bool,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
}

impl<'a, S: TokenSource + Sync> KitApi<'a, S> {
    /// `GET /v4/purchases`.
    pub fn list_purchases(&self) -> KitList<'a, S, Purchase> {
        self.list(KitRequest::get("/v4/purchases"), "purchases")
    }

    /// `GET /v4/purchases/{id}`.
    ///
    /// # Errors
    /// 404.
    pub async fn purchase(&self, id: PurchaseId) -> Result<Purchase, ApiError> {
        let r = KitRequest::get(format!("/v4/purchases/{id}"));
        Ok(self.call(r, Some("purchase")).await?.1)
    }

    /// `POST /v4/purchases` (201).
    ///
    /// # Errors
    /// 422 for missing or invalid fields.
    pub async fn create_purchase(&self, purchase: &NewPurchase) -> Result<Purchase, ApiError> {
        let r = with_body(
            KitRequest::post("/v4/purchases"),
            &json!({ "purchase": purchase }),
        )?;
        Ok(self.call(r, Some("purchase")).await?.1)
    }

    /// `GET /v4/segments`.
    pub fn list_segments(&self) -> KitList<'a, S, Segment> {
        self.list(KitRequest::get("/v4/segments"), "segments")
    }

    /// `GET /v4/email_templates`.
    pub fn list_email_templates(&self) -> KitList<'a, S, EmailTemplate> {
        self.list(KitRequest::get("/v4/email_templates"), "email_templates")
    }
}
