#!/usr/bin/env bash
# Build a one-folder bundle and an archive of it.
# Usage: packaging/build.sh            the full app (window, training, torch): dist/inspector/ and
#                                      dist/inspector-<version>-<os>-<arch>.tar.gz (uses .venv; installs PyInstaller into it when missing)
#        packaging/build.sh --runtime  a line PC's (scores exports, no torch, no Qt): dist/inspector-runtime/ and
#                                      dist/inspector-runtime-<version>-<os>-<arch>.tar.gz, built in a runtime-only
#                                      environment (packaging/runtime-venv.sh, RUNTIME_VENV, default build/runtime-venv);
#                                      .venv (torch) makes the self-test set it carries (packaging/selftest_set.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "run ./dev test (or set PYTHON) first to create the environment" >&2; exit 2; }
start=$(date +%s)
version=$("$PY" -c "import inspector; print(inspector.__version__)")
platform="$(uname -s | tr A-Z a-z)-$(uname -m)"
if [ "${1:-}" = "--runtime" ]; then
  name=inspector-runtime
  venv=${RUNTIME_VENV:-build/runtime-venv}
  packaging/runtime-venv.sh "$venv" "pyinstaller>=6.5" >/dev/null
  rm -rf build/runtime-selftest
  OMP_NUM_THREADS=1 "$PY" packaging/selftest_set.py build/runtime-selftest >/dev/null
  INSPECTOR_SELFTEST_SET="$PWD/build/runtime-selftest" "$venv/bin/python" -m PyInstaller packaging/inspector-runtime.spec \
    --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller-runtime
else
  name=inspector
  "$PY" -m PyInstaller --version >/dev/null 2>&1 || "$PY" -m pip install -q "pyinstaller>=6.5"
  "$PY" -m PyInstaller packaging/inspector.spec --noconfirm --clean --log-level WARN \
    --distpath dist --workpath build/pyinstaller
fi
archive="dist/${name}-${version}-${platform}.tar.gz"
tar -C dist -cf - "$name" | gzip -9 > "$archive"
end=$(date +%s)
echo "bundle: dist/$name ($(du -sh "dist/$name" | cut -f1)), archive: $archive ($(du -sh "$archive" | cut -f1)), build time: $((end - start)) s"
