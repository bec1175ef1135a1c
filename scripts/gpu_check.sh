#!/usr/bin/env bash
# The GPU check (issue 33), under 5 minutes on one GPU: the CUDA tests, the CPU-vs-GPU parity
# of a 2-epoch training, and the SHD-size scale benchmark. Run from the repository root in
# the project's environment (README: "Run the tests"); results land in ${OUT:-gpu_check}/.
#   bash scripts/gpu_check.sh
set -euo pipefail
out=${OUT:-gpu_check}
mkdir -p "$out"
python - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA GPU visible to torch: nothing to check"
print("GPU:", torch.cuda.get_device_name(), "torch", torch.__version__, "CUDA", torch.version.cuda)
PY
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$out/nvidia-smi.csv"
echo "== CUDA tests"
pytest -q -n 0 tests/test_placement.py 2>&1 | tee "$out/tests.txt"
echo "== CPU vs GPU: 2 epochs of yinyang_h30_ws"
python scripts/path_parity.py experiment=yinyang_h30_ws --epochs 2 --device cuda \
    --json "$out/parity_yinyang.json" | tee "$out/parity_yinyang.txt"
echo "== scale: SHD size, shd_ms and 2x256, CPU and GPU"
timeout 200 python scripts/bench_scale.py --size shd --batches 10 --devices cuda,cpu \
    --json "$out/bench_scale_shd.json" | tee "$out/bench_scale_shd.txt"
