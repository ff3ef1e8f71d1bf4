#!/usr/bin/env bash
# Installs the baseline (Authlib + requests, exact pins) from PyPI into authlib/.venv.
# Usage: benches/baselines/authlib/install.sh   (needs python3.11 or python3 >= 3.9 on PATH)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [[ ! -x "$here/.venv/bin/python" ]]; then
  "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  --require-virtualenv -r "$here/requirements.txt"
"$here/.venv/bin/python" -c 'import authlib, requests; print(f"baseline installed: Authlib {authlib.__version__}, requests {requests.__version__}")'
