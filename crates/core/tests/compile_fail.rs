//! Forbidden transitions do not compile (trybuild).
//!
//! The expected compiler output lives beside each case (`compile_fail/*.stderr`); regenerate it
//! with `TRYBUILD=overwrite cargo test -p kit-oauth-core --test compile_fail` after a toolchain
//! update, and read the diff: each must still fail for the reason its doc comment states.

#[test]
fn forbidden_transitions_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile_fail/*.rs");
}
