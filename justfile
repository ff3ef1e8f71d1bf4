# Thin wrappers over cargo. The README's two commands (`cargo run`, `cargo test --workspace`)
# never need `just`; install it with `pip install rust-just` or `cargo install just --locked`.

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

# Multi-process load harness: not wired yet (issue "Proof: load harness").
bench-load:
    @echo "the load harness is not built yet (see the 'Proof' issue)" && exit 1

# End-to-end suites: the server binary beside the sandbox, on SQLite and PostgreSQL.
e2e:
    cargo test -p kit-oauth-server --test e2e --test demo

# Fuzz targets: not wired yet (issue "Proof: ... fuzzing").
fuzz:
    @echo "fuzz targets are not built yet (see the 'Proof' issue)" && exit 1
