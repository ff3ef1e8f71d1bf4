# Thin wrappers over cargo. The README's two commands (`cargo run`, `cargo test --workspace`)
# never need `just`; `bash .ci/ensure-just` installs it (from PyPI, or crates.io).

# The server in demo mode (embedded sandbox, SQLite).
run:
    cargo run

# Every suite, as CI runs it.
test:
    cargo test --workspace

# Formatting and lints, as CI checks them.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs on a clean clone.
ci:
    bash .ci/run

# Criterion benchmarks of every crate (figures go to docs/benchmarks.md).
bench:
    cargo bench --workspace

# Multi-process load harness: the real sandbox and broker processes, every scenario (about
# 25 min on 2 cores, soak 10 min of it); figures go to docs/benchmarks.md ("Load harness").
bench-load:
    cargo build --release -p kit-sandbox -p kit-oauth-server -p kit-oauth-bench
    "${CARGO_TARGET_DIR:-target}/release/kit-oauth-bench" storm fleet steady install hot crash pg-restart soak
    "${CARGO_TARGET_DIR:-target}/release/kit-oauth-bench" fleet --db postgres

# End-to-end suites: the server binary beside the sandbox (SQLite, PostgreSQL, headless Chromium).
e2e:
    cargo test -p kit-oauth-server --test e2e --test demo --test browser

# Every cargo-fuzz target in fuzz/ for `seconds` each (CI: 30); fails on any crash.
fuzz seconds="30":
    FUZZ_SECONDS={{seconds}} bash .ci/fuzz
