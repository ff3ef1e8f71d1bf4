//! A connection record (plain data) cannot be turned into a typed connection by hand: there is
//! no public constructor, only the store's `Restore`.
use kit_oauth_core::*;

fn forge(record: &ConnectionRecord) -> Connection<Authorized> {
    Connection::<Authorized>::restore(
        record.id.clone(),
        record.tenant.clone(),
        record.account.clone(),
        record.grant.clone(),
    )
}

fn main() {}
