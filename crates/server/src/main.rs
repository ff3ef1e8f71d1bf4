//! `kit-oauth-server`: the token broker binary.
//!
//! Until the server issue lands this binary says honestly what it is and what is not built yet.

fn main() {
    println!(
        "kit-oauth-server {}: the Kit OAuth token broker.\n\
         The server (install endpoints, broker API, dashboard, demo mode) is not built yet.\n\
         What exists today: the domain core (crates/core). Run `cargo test --workspace` to see it work.",
        env!("CARGO_PKG_VERSION")
    );
}
