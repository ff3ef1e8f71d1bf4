//! There is no way into `Expired` without evidence: no public `expire_now`.
use kit_oauth_core::*;

fn forced(authorized: Connection<Authorized>) -> Connection<Expired> {
    authorized.expire_now()
}

fn main() {}
