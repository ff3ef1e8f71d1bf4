//! `Removed` is made only by the flow's removal transitions (`remove`, `remove_unrevoked`),
//! which consume the connection: it cannot be assembled from an id.
use kit_oauth_core::*;

fn forge(id: ConnectionId) -> Removed {
    Removed {
        id,
        grant_left_at_kit: false,
    }
}

fn main() {}
