//! The names of the states, for messages, metrics, list filters and the `state` column. The
//! states themselves are types ([`crate::flow`]); a stored row is typed again only through
//! [`crate::restore::Restore`].

use std::fmt;

use serde::{Deserialize, Serialize};

#[cfg(doc)]
use crate::flow::{Authorized, Expired, Pending, Unauthorized};

/// The name of a state, for messages, metrics and the `state` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    /// [`Unauthorized`].
    Unauthorized,
    /// [`Pending`].
    Pending,
    /// [`Authorized`].
    Authorized,
    /// [`Expired`].
    Expired,
}

impl StateName {
    /// The lower-case name (`"authorized"`, …).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Pending => "pending",
            Self::Authorized => "authorized",
            Self::Expired => "expired",
        }
    }

    /// Parses [`StateName::as_str`]'s output.
    #[must_use]
    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Unauthorized,
            Self::Pending,
            Self::Authorized,
            Self::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for StateName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names_round_trip() {
        for s in [
            StateName::Unauthorized,
            StateName::Pending,
            StateName::Authorized,
            StateName::Expired,
        ] {
            assert_eq!(StateName::parse(s.as_str()), Some(s));
        }
        assert_eq!(StateName::parse("gone"), None);
    }
}
