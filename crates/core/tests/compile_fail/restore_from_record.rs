//! A stored pending record (plain data, `Clone`) cannot be turned into a pending install: only
//! the store, consuming the row, gets the `Restore` that makes a `ConsumedPending`.
use kit_oauth_core::*;

fn again(record: &PendingRecord, state: CsrfState) -> Connection<Pending> {
    record.clone().into_pending(state)
}

fn forged() -> Restore {
    Restore(())
}

fn main() {}
