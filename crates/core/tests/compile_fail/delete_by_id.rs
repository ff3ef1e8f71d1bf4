//! A row is deleted only as the flow's removal (`Removed`), not by a bare id.
use kit_oauth_core::*;

async fn by_id<S: ConnectionStore>(store: &S, id: &ConnectionId) {
    let _ = store.delete(id).await;
}

fn main() {}
