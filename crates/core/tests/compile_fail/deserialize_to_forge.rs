//! No state deserializes: JSON cannot forge an `Expired` (or a `Pending`) without a clock or
//! a callback.
use kit_oauth_core::*;

fn forge(json: &str) -> Connection<Expired> {
    serde_json::from_str(json).unwrap()
}

fn forge_pending(json: &str) -> Connection<Pending> {
    serde_json::from_str(json).unwrap()
}

fn main() {}
