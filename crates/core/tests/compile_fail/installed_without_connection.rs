//! `Installed` has no public fields: it is made only by `Installed::new` from a
//! `&Connection<Authorized>` (which adds fresh refresh health), never assembled by hand.
use kit_oauth_core::*;

fn forge(connection: &Connection<Authorized>, at: Timestamp) -> Installed<'_> {
    Installed {
        connection,
        next_refresh_at: at,
        at,
    }
}

fn main() {}
