//! The removal transition: a connection leaves storage. `Unauthorized --remove--> Removed`
//! after Kit revoked the grant (or it had already ended), and, when an operator forces it
//! without Kit's confirmation, `Authorized --remove_unrevoked--> Removed`, which says that the
//! grant may still live at Kit. [`crate::store::ConnectionStore::delete`] takes the [`Removed`],
//! so a row is deleted only as the flow's last step for a connection it read back.

use crate::ids::ConnectionId;

use super::{Authorized, Connection, Unauthorized};

/// Evidence that the flow removed a stored connection: what the store's `delete` takes.
///
/// Not `Clone`, and made only by [`Connection::<Unauthorized>::remove`] and
/// [`Connection::<Authorized>::remove_unrevoked`], each consuming the connection.
#[derive(Debug, PartialEq, Eq)]
pub struct Removed {
    id: ConnectionId,
    grant_left_at_kit: bool,
}

impl Removed {
    /// The connection to delete.
    #[must_use]
    pub fn id(&self) -> &ConnectionId {
        &self.id
    }

    /// Whether the grant was still live when it was removed (Kit was not told): the audit
    /// trail must say so.
    #[must_use]
    pub fn grant_left_at_kit(&self) -> bool {
        self.grant_left_at_kit
    }
}

impl Connection<Unauthorized> {
    /// Removes an ended connection (revoked, or refused by Kit): nothing is left at Kit.
    ///
    /// # Errors
    /// Gives the connection back (boxed: it is large, and this path is rare) when it was
    /// never stored: a fresh install has no row.
    pub fn remove(self) -> Result<Removed, Box<Self>> {
        match self.state.id {
            Some(id) => Ok(Removed {
                id,
                grant_left_at_kit: false,
            }),
            None => Err(Box::new(self)),
        }
    }
}

impl Connection<Authorized> {
    /// Removes a connection whose grant Kit did not revoke (refused, or unreachable): the
    /// grant lives on at Kit until the creator uninstalls the app there.
    #[must_use]
    pub fn remove_unrevoked(self) -> Removed {
        Removed {
            id: self.state.0.id,
            grant_left_at_kit: true,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::flow::UnauthorizedReason;
    use crate::ids::TenantName;

    #[test]
    fn only_a_stored_ended_connection_is_removed_without_a_grant_left_at_kit() {
        let fresh = Connection::<Unauthorized>::new(Some(TenantName::parse("t").unwrap()));
        let back = fresh.remove().unwrap_err();
        assert_eq!(back.reason(), &UnauthorizedReason::NotInstalled);

        let id = ConnectionId::parse("conn-9").unwrap();
        let ended = Connection::<Unauthorized>::from_stored(
            Some(id.clone()),
            None,
            None,
            UnauthorizedReason::Revoked,
        );
        let removed = ended.remove().unwrap();
        assert_eq!(removed.id(), &id);
        assert!(!removed.grant_left_at_kit());
    }
}
