#!/usr/bin/env bash
# The GPU check in under 5 minutes: one epoch of the default method and of seg-skip-ganomaly with
# mixed precision on CUDA, inference images/s at batch 1, 32 and 256 at 128 px for torch and for
# ONNX Runtime's CUDA provider, and CUDA scores against CPU scores (bench/gpu_check.py says how).
# Run it whenever a GPU machine is lent and record its figures in bench/RESULTS.md ("GPU"); the
# project never needs one: without CUDA it says so in one line and exits 0.
#   bench/gpu_check.sh [gpu_check.py options, e.g. --train-images 256]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
BOUND_S=${GPU_CHECK_SECONDS:-290}  # the whole run; each part has its own, smaller cap
rc=0
timeout --kill-after=10 "$BOUND_S" "$PY" bench/gpu_check.py "$@" || rc=$?
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  echo "gpu_check: stopped at its ${BOUND_S} s bound; its JSON (bench/out/gpu-check-*.json unless --out) holds the methods finished before" >&2
fi
exit "$rc"
