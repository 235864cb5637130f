#!/usr/bin/env bash
# One short GPU check (under 5 minutes on an H100/H200), from the repository root or anywhere:
#   benchmarks/gpu_check.sh            # everything
#   benchmarks/gpu_check.sh --quick    # tests + CLAP + s/epoch + ensemble, no full 5-fold run
# Installs nothing: it uses .venv as scripts/setup.sh made it from requirements/lock.txt (the torch
# wheel there is the CUDA build). Prints, in order:
#   1. the GPU and torch's CUDA build;
#   2. the suite's GPU-marked tests (tests/test_gpu.py: training on cuda, ensemble cuda vs cpu,
#      CLAP random-weight embedding cuda vs cpu); they skip, with the reason, where CUDA is absent;
#   3. benchmarks/bench_gpu.py: CLAP audio clips/s at batch 32 and 64 (random weights), training
#      s/epoch and the full default 5-fold wall time at BSD10k size, the ensemble on 3,246 items.
# Exit status: that of the tests, else 2 when there is no CUDA device, else the benchmark's.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
if [ ! -x "$PY" ] || ! ls .venv/.bst-lock-* >/dev/null 2>&1; then
    echo "gpu_check: no finished .venv here; run scripts/setup.sh first (it installs requirements/lock.txt)." >&2
    exit 2
fi
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 RAY_USAGE_STATS_ENABLED=0
export CUBLAS_WORKSPACE_CONFIG=${CUBLAS_WORKSPACE_CONFIG:-:4096:8}  # deterministic cuBLAS (training asks for it)
start=$(date +%s)

echo "== 1. device"
"$PY" -c 'import torch; print("torch", torch.__version__, "CUDA build", torch.version.cuda, "available", torch.cuda.is_available()); [print(" ", i, torch.cuda.get_device_name(i)) for i in range(torch.cuda.device_count())]'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "  (no nvidia-smi)"

echo "== 2. GPU-marked tests"
"$PY" -m pytest -q -m gpu -rs -p no:cacheprovider tests/test_gpu.py
tests=$?
[ $tests -ne 0 ] && [ $tests -ne 5 ] && { echo "gpu_check: GPU tests failed ($tests)"; exit $tests; }

echo "== 3. GPU figures"
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: CUDA is not available here; the tests above were skipped. Nothing to measure."
    exit 2
fi
extra=()
[ "${1:-}" = "--quick" ] && extra=(--skip-full)
"$PY" benchmarks/bench_gpu.py --device cuda "${extra[@]}"
bench=$?
echo "gpu_check: done in $(( $(date +%s) - start )) s"
exit $bench
