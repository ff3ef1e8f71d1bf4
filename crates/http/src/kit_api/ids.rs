//! Kit's ids are JSON integers (docs/kit-api-v4.md §0); a newtype per resource keeps a tag id
//! from being passed where a subscriber id is expected.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

macro_rules! id {
    ($(#[$doc:meta] $name:ident),* $(,)?) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u64> for $name {
            fn from(id: u64) -> Self {
                Self(id)
            }
        }

        // Integers as documented; `POST /subscribers/filter` answers ids as strings, so those
        // are read too.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(untagged)]
                enum Raw {
                    Int(u64),
                    Text(String),
                }
                match Raw::deserialize(d)? {
                    Raw::Int(n) => Ok(Self(n)),
                    Raw::Text(s) => s.parse().map(Self).map_err(serde::de::Error::custom),
                }
            }
        }
    )*};
}

id! {
    /// A subscriber's id.
    SubscriberId,
    /// A tag's id.
    TagId,
    /// A custom field's id.
    CustomFieldId,
    /// A form's id.
    FormId,
    /// A sequence's id.
    SequenceId,
    /// A broadcast's id.
    BroadcastId,
    /// A legacy webhook's id.
    WebhookId,
    /// A purchase's id.
    PurchaseId,
    /// A segment's id.
    SegmentId,
    /// An email template's id.
    EmailTemplateId,
}
