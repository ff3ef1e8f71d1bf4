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
