#!/usr/bin/env bash
# The baseline comparison of docs/benchmarks.md: kit-oauth's `storm` and `fleet` shapes run
# against a typical app built on Authlib's auto-refresh (app.py), two OS processes sharing one
# SQLite token store, against kit-sandbox with --rotation reuse-detection.
#
# Usage: benches/baselines/authlib/run.sh [storm] [fleet] [--callers K] [--connections M]
#          [--processes P] [--threads T] [--runs R] [--access-ttl S] [--no-reuse-detection]
# Defaults: both scenarios, K=100, M=1000, P=2, T=8 (fleet threads per process), R=1.
# Environment: CARGO_TARGET_DIR (where kit-sandbox is built), KIT_SANDBOX_BIN (use that binary,
# skip the build), PYTHON (for install.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"

if [[ ! -x "$here/.venv/bin/python" ]]; then
  "$here/install.sh"
fi

if [[ -n "${KIT_SANDBOX_BIN:-}" ]]; then
  sandbox="$KIT_SANDBOX_BIN"
else
  (cd "$repo" && cargo build --quiet --release -p kit-sandbox)
  sandbox="${CARGO_TARGET_DIR:-$repo/target}/release/kit-sandbox"
fi
[[ -x "$sandbox" ]] || { echo "run.sh: no kit-sandbox binary at $sandbox" >&2; exit 2; }

command_line="benches/baselines/authlib/run.sh${*:+ $*}"
exec "$here/.venv/bin/python" "$here/bench.py" --sandbox-bin "$sandbox" \
  --command-line "$command_line" "$@"
