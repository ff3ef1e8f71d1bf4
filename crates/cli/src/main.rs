//! `kit-oauth`: the admin command line (connections, refresh, revoke, keys, migrate, doctor).
//!
//! Until the CLI issue lands this binary says honestly what it is and what is not built yet.

fn main() {
    println!(
        "kit-oauth {}: the Kit OAuth admin command line.\n\
         Its commands (migrate, connections, token, refresh, revoke, keys rotate, doctor) are not built yet.",
        env!("CARGO_PKG_VERSION")
    );
}
