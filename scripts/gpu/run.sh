#!/usr/bin/env bash
# The one device call of issue 8 (carry .export and .whl). Runs, on one GPU, side by side:
#   - BCL, 200 epochs, seed 0;  - BCL+RCL (balance 1, scale 1.2, margin 0.5), 200 epochs, seed 0
# then benchmarks/epoch_speed.py at full size (ours vs peer-style, 1 vs 4 trials sharing the GPU).
# Results go to $OUT (JSON + logs). TINY=1 shrinks everything to a few steps (CPU dry run).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import pydantic" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
extra=()
if [ "${TINY:-0}" = 1 ]; then
  extra=(--set train.epochs=1 --set train.max_steps_per_epoch=2 --set data.test_limit=200)
fi
study=studies/reproduce_bcl.yaml
python3 -m rcl_study.train $study --set loss.preset=bcl "${extra[@]}" \
  --out "$OUT/bcl.json" > "$OUT/bcl.log" 2>&1 &
p1=$!
python3 -m rcl_study.train $study --set loss.preset=bcl+rcl --set loss.balance=1.0 \
  --set loss.scale=1.2 --set loss.margin=0.5 "${extra[@]}" \
  --out "$OUT/bcl_rcl.json" > "$OUT/bcl_rcl.log" 2>&1 &
p2=$!
wait $p1; echo "bcl exit $?"
wait $p2; echo "bcl+rcl exit $?"
if [ "${TINY:-0}" = 1 ]; then
  python3 benchmarks/epoch_speed.py --synthetic --images 512 --workers 2 --json "$OUT/speed.json"
else
  python3 benchmarks/epoch_speed.py --data .export/cifar10_lt_ir100.npz.xz --concurrent 4 \
    --json "$OUT/speed.json"
fi
tail -n 3 "$OUT"/*.log
