//! An install is committed only from the `Connection<Authorized>` the flow returned
//! (`Installed`): a hand-built record with tokens nobody exchanged cannot be inserted.
use kit_oauth_core::*;

async fn forge<S: ConnectionStore>(store: &S, read: &ConnectionRecord) {
    let _ = store.upsert_installed(read).await;
}

fn main() {}
