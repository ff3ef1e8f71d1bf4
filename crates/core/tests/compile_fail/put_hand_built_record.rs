//! The store's compare-and-swap write takes only what the flow made of a grant (`Settled`): a
//! hand-built record — here one claiming the grant ended for a reason the flow never stores on
//! a row — cannot be written through the port.
use kit_oauth_core::*;

async fn forge<S: ConnectionStore>(store: &S, read: &ConnectionRecord) {
    let forged = ConnectionRecord {
        grant: Grant::Ended(UnauthorizedReason::Denied),
        ..read.clone()
    };
    let _ = store.put(&forged, read.version).await;
}

fn main() {}
