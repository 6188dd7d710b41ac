#!/usr/bin/env bash
# Build the one-folder bundle (dist/inspector/) and an archive of it (dist/inspector-<version>-<os>-<arch>.tar.gz).
# Usage: packaging/build.sh            (uses .venv, installs PyInstaller into it when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "run ./dev test (or set PYTHON) first to create the environment" >&2; exit 2; }
"$PY" -m PyInstaller --version >/dev/null 2>&1 || "$PY" -m pip install -q "pyinstaller>=6.5"
start=$(date +%s)
"$PY" -m PyInstaller packaging/inspector.spec --noconfirm --clean --log-level WARN \
  --distpath dist --workpath build/pyinstaller
version=$("$PY" -c "import inspector; print(inspector.__version__)")
archive="dist/inspector-${version}-$(uname -s | tr A-Z a-z)-$(uname -m).tar.gz"
tar -C dist -czf "$archive" inspector
end=$(date +%s)
echo "bundle: dist/inspector ($(du -sh dist/inspector | cut -f1)), archive: $archive ($(du -sh "$archive" | cut -f1)), build time: $((end - start)) s"
