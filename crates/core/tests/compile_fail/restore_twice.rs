//! A consumed pending row resumes the install once: it is not `Clone`, and `into_pending`
//! consumes it.
use kit_oauth_core::*;

fn twice(consumed: ConsumedPending, state: CsrfState) {
    let _one = consumed.into_pending(CsrfState::new(state.expose_secret()));
    let _two = consumed.into_pending(state);
}

fn main() {}
