//! The import transition: `Unauthorized --import(account, tokens)--> Authorized`, for a grant
//! an app obtained outside this library (its own hand-written OAuth) and hands over.
//!
//! The caller has already proved the grant live at Kit — `GET /v4/account` answered for the
//! access token, or one refresh rotated the pair — so the tokens go straight to `Authorized`,
//! exactly as an install's `CodeGrant::authorize` does once Kit has exchanged the code.

use crate::ids::ConnectionId;
use crate::token::TokenSet;

use super::{Authorized, Connection, Granted, KitAccount, Unauthorized};

impl Connection<Unauthorized> {
    /// Adopts a grant proven live at Kit. Consumes the `Unauthorized`, so one value imports one
    /// grant; the id is the existing connection's when this replaces one, else a fresh one.
    #[must_use]
    pub fn import(
        self,
        id: ConnectionId,
        account: KitAccount,
        tokens: TokenSet,
    ) -> Connection<Authorized> {
        Connection {
            state: Authorized(Granted {
                id,
                tenant: self.state.tenant,
                account,
                tokens,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::clock::Timestamp;
    use crate::ids::{KitAccountId, TenantName};
    use crate::secret::{AccessToken, RefreshToken};

    #[test]
    fn an_import_keeps_the_tenant_and_holds_exactly_the_proven_grant() {
        let now = Timestamp::from_unix_seconds(1_750_000_000);
        let tokens = TokenSet::from_parts(
            AccessToken::new("a"),
            RefreshToken::new("r"),
            None,
            now,
            now.saturating_add(Duration::from_secs(3600)),
        );
        let account = KitAccount {
            id: KitAccountId::parse("42").unwrap(),
            name: "Imported".into(),
            primary_email: None,
        };
        let id = ConnectionId::parse("conn-1").unwrap();
        let tenant = TenantName::parse("shop-a").unwrap();
        let connection = Connection::<Unauthorized>::new(Some(tenant.clone())).import(
            id.clone(),
            account.clone(),
            tokens,
        );
        assert_eq!(connection.id(), &id);
        assert_eq!(connection.tenant(), Some(&tenant));
        assert_eq!(connection.account(), &account);
        assert_eq!(connection.tokens().refresh().expose_secret(), "r");
        assert_eq!(connection.tokens().access().expose_secret(), "a");
    }
}
