//! `AnyConnection`: a connection with its state erased, for storage round-trips.
//!
//! Getting a typed state back is a checked match ([`TryFrom`]), never a cast; a failed check
//! returns the connection untouched, so nothing is lost.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::WrongState;
use crate::flow::{Authorized, Connection, Expired, KitAccount, Pending, Unauthorized};
use crate::ids::{ConnectionId, TenantName};

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

/// A connection in any state (not `Clone`, like the pending and expired states it erases).
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "data", rename_all = "snake_case")]
pub enum AnyConnection {
    /// No usable grant.
    Unauthorized(Connection<Unauthorized>),
    /// Install in progress.
    Pending(Connection<Pending>),
    /// Working grant.
    Authorized(Connection<Authorized>),
    /// Grant due for refresh.
    Expired(Connection<Expired>),
}

impl AnyConnection {
    /// Which state this is.
    #[must_use]
    pub const fn state_name(&self) -> StateName {
        match self {
            Self::Unauthorized(_) => StateName::Unauthorized,
            Self::Pending(_) => StateName::Pending,
            Self::Authorized(_) => StateName::Authorized,
            Self::Expired(_) => StateName::Expired,
        }
    }

    /// The connection id (none for a fresh install that has not completed).
    #[must_use]
    pub fn id(&self) -> Option<&ConnectionId> {
        match self {
            Self::Unauthorized(c) => c.id(),
            Self::Pending(c) => c.reinstall_of(),
            Self::Authorized(c) => Some(c.id()),
            Self::Expired(c) => Some(c.id()),
        }
    }

    /// The tenant.
    #[must_use]
    pub fn tenant(&self) -> Option<&TenantName> {
        match self {
            Self::Unauthorized(c) => c.tenant(),
            Self::Pending(c) => c.tenant(),
            Self::Authorized(c) => c.tenant(),
            Self::Expired(c) => c.tenant(),
        }
    }

    /// The Kit account, when known.
    #[must_use]
    pub fn account(&self) -> Option<&KitAccount> {
        match self {
            Self::Unauthorized(c) => c.account(),
            Self::Pending(_) => None,
            Self::Authorized(c) => Some(c.account()),
            Self::Expired(c) => Some(c.account()),
        }
    }
}

macro_rules! erase_and_check {
    ($($state:ident),*) => {$(
        impl From<Connection<$state>> for AnyConnection {
            fn from(connection: Connection<$state>) -> Self {
                Self::$state(connection)
            }
        }

        impl TryFrom<AnyConnection> for Connection<$state> {
            type Error = (WrongState, AnyConnection);

            /// The typed connection, or the reason and the untouched original.
            fn try_from(any: AnyConnection) -> Result<Self, Self::Error> {
                match any {
                    AnyConnection::$state(connection) => Ok(connection),
                    other => Err((
                        WrongState {
                            expected: StateName::$state,
                            found: other.state_name(),
                        },
                        other,
                    )),
                }
            }
        }
    )*};
}

erase_and_check!(Unauthorized, Pending, Authorized, Expired);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_conversion_returns_the_original_on_mismatch() {
        let original = Connection::<Unauthorized>::new(None);
        let any = AnyConnection::from(original.clone());
        let (err, back) = Connection::<Authorized>::try_from(any).unwrap_err();
        assert_eq!(err.expected, StateName::Authorized);
        assert_eq!(err.found, StateName::Unauthorized);
        assert_eq!(back, AnyConnection::from(original));
        assert!(Connection::<Unauthorized>::try_from(back).is_ok());
    }

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
