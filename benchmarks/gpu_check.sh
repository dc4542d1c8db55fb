#!/usr/bin/env bash
# The GPU checks of issue 22, on one CUDA machine (under 8 minutes on one GPU): the cuda-marked
# tests, then benchmarks/gpu_check.py (planner training steps at 49x49 and 99x99 with peak memory,
# ilqr at batch 1, 64 and 1024, a bf16-autocast planner step). Output: gpu_check.txt (or $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check.txt}"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check.sh: this torch build sees no CUDA device')"
{
    echo "== cuda-marked tests"
    python -m pytest -m cuda -q -p no:cacheprovider
    echo "== benchmarks/gpu_check.py"
    python benchmarks/gpu_check.py --device cuda
} 2>&1 | tee "$out.tmp"
mv "$out.tmp" "$out"
