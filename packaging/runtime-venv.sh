#!/usr/bin/env bash
# A line PC's install in a virtual environment: `pip install ".[runtime]"` from this checkout, no torch, no Qt.
# Usage: packaging/runtime-venv.sh [DEST] [EXTRA_PACKAGE ...]   (default DEST: build/runtime-venv)
# Made once (about a minute), then brought up to date: the project is reinstalled from the checkout
# every time (seconds), so the environment never runs older code than the tree.
# Used by packaging/build.sh --runtime (with PyInstaller as an extra package) and tests/test_runtime_only.py.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-build/runtime-venv}
shift || true
[ -x "$DEST/bin/python" ] || "${PYTHON:-python3}" -m venv "$DEST"
"$DEST/bin/pip" install -q ".[runtime]" "$@"
if "$DEST/bin/python" -c "import torch" 2>/dev/null; then
  echo "$DEST has torch: a runtime-only environment must not" >&2
  exit 1
fi
echo "$DEST"
