//! An authorized connection cannot be duplicated, so one `Authorized` gives at most one
//! `Expired`: cloning it to observe it twice does not compile.
use kit_oauth_core::*;

fn twice(authorized: Connection<Authorized>, clock: &ManualClock) {
    let copy = authorized.clone();
    let _one = authorized.observe(clock);
    let _two = copy.observe(clock);
}

fn main() {}
