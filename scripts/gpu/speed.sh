#!/usr/bin/env bash
# The speed benchmarks, as their own short device call after the ablation call:
#   1. benchmarks/epoch_speed.py: seconds per epoch of our trainer vs a peer-style pipeline at full
#      size, 1 vs 4 trials sharing the GPU ($OUT/speed.json);
#   2. benchmarks/pack_speed.py --device cuda: K = 1, 2, 8 ablation variants packed in one process
#      vs K separate processes, 2 epochs of full CIFAR-10-LT IR 100 ($OUT/pack_speed.jsonl).
# Carry .export and .whl; on the device (timeout_s 300: each part is cut at its own limit):
#     OUT=$OUT bash scripts/gpu/speed.sh        (log: $OUT/speed.log)
# EPOCH_S / PACK_S (150 s each) bound the two parts; setup is under `timeout` too. TINY=1: the CPU rehearsal (512 synthetic
# images for epoch_speed; pack_speed on its reduced CPU ResNet-32, K = 1 2).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/rcl_gpu_out}  # outside the repository
PY=${PY:-python3}
EPOCH_S=${EPOCH_S:-150}
PACK_S=${PACK_S:-150}
mkdir -p "$OUT"
if ls .whl/*.whl > /dev/null 2>&1 && ! timeout 30 "$PY" -c "import pydantic" 2> /dev/null; then
  timeout -k 5 60 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/site .whl/*.whl || exit 2
fi
export PYTHONPATH=$PWD:/tmp/site:${PYTHONPATH:-} PYTHONUNBUFFERED=1
timeout 20 nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/speed.log" 2>&1 \
  || true
if [ "${TINY:-0}" = 1 ]; then
  args=(--synthetic --images 512 --workers 2)
  pack=(--only resnet32 --k 1 2 --epochs 1 --images 64 --batch 16)
else
  args=(--data .export/cifar10_lt_ir100.npz.xz --concurrent 4)
  pack=(--only resnet32 --device cuda --data .export/cifar10_lt_ir100.npz.xz --k 1 2 8 --epochs 2)
fi
echo "== epoch_speed" >> "$OUT/speed.log"
timeout -k 5 "$EPOCH_S" "$PY" benchmarks/epoch_speed.py "${args[@]}" --json "$OUT/speed.json" \
  >> "$OUT/speed.log" 2>&1
rc1=$?
echo "== pack_speed (exit of epoch_speed: $rc1)" >> "$OUT/speed.log"
set -o pipefail
timeout -k 5 "$PACK_S" "$PY" benchmarks/pack_speed.py "${pack[@]}" 2>> "$OUT/speed.log" \
  | tee -a "$OUT/speed.log" | grep '^{' > "$OUT/pack_speed.jsonl"
rc2=$?
echo "== exits: epoch_speed $rc1, pack_speed $rc2" >> "$OUT/speed.log"
tail -n 14 "$OUT/speed.log"
[ "$rc1" = 0 ] && [ "$rc2" = 0 ]
