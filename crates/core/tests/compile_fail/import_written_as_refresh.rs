//! A refresh commit takes only what the refresh transition made (`Renewed`): an `Authorized`
//! from an import (or an install) cannot be written as a refresh, with its health reset to a
//! success that never happened.
use kit_oauth_core::*;

async fn forge<S: ConnectionStore>(store: &S, account: KitAccount, tokens: TokenSet, now: Timestamp) {
    let id = ConnectionId::parse("conn-1").unwrap();
    let imported = Connection::<Unauthorized>::new(None).import(id, account, tokens);
    let settled = Settled::Refreshed {
        connection: &imported,
        next_refresh_at: now,
        at: now,
    };
    let _ = store.put(&settled, Version::INITIAL).await;
}

fn main() {}
