//! Shared helpers for the workspace-level test suites in `tests/tests/`.
//!
//! The suites that cross crates (end-to-end over loopback, the property suite against the
//! sandbox, the browser test) live here so that no adapter crate has to depend on another.
